"""The Conversations API, and the bridge between it and the Assistants API, end to end with the
official `openai` SDK through a real Envoy: a conversation is a thread, its items are the thread's
messages, and either id works in either API."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI

pytestmark = pytest.mark.sdk

PRICE_TOOL: Any = {"type": "function", "name": "get_price", "parameters": {"type": "object"}, "strict": False}


def texts(items: Any) -> list[str]:
    return [item.content[0].text for item in items]


def part_type(item: Any) -> str:
    return str(item.content[0].type)


def test_a_conversation_is_created_read_updated_and_deleted(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create(
        items=[{"type": "message", "role": "user", "content": "Hello!"}], metadata={"topic": "demo"}
    )
    assert conversation.id.startswith("conv_")
    assert (conversation.object, conversation.metadata) == ("conversation", {"topic": "demo"})
    assert openai_client.conversations.retrieve(conversation.id) == conversation
    updated = openai_client.conversations.update(conversation.id, metadata={"topic": "fx"})
    assert updated.metadata == {"topic": "fx"}
    deleted = openai_client.conversations.delete(conversation.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (conversation.id, "conversation.deleted", True)
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.conversations.retrieve(conversation.id)
    assert "Conversation with id" in raised.value.message


def test_items_are_created_listed_retrieved_and_deleted(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create()
    created = openai_client.conversations.items.create(
        conversation.id,
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello!"}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "How are you?"}]},
        ],
    )
    assert texts(created.data) == ["Hello!", "How are you?"]
    assert (created.first_id, created.last_id, created.has_more) == (created.data[0].id, created.data[1].id, False)
    listed = openai_client.conversations.items.list(conversation.id, order="asc")
    assert [item.id for item in listed.data] == [item.id for item in created.data]
    first_id = created.data[0].id
    assert first_id is not None
    item = openai_client.conversations.items.retrieve(first_id, conversation_id=conversation.id)
    assert item.type == "message"
    assert part_type(item) == "input_text"
    # Deleting an item answers the conversation, as OpenAI does.
    answered = openai_client.conversations.items.delete(first_id, conversation_id=conversation.id)
    assert answered.id == conversation.id
    assert answered.object == "conversation"
    assert texts(openai_client.conversations.items.list(conversation.id)) == ["How are you?"]
    with pytest.raises(openai.NotFoundError):
        openai_client.conversations.items.retrieve(first_id, conversation_id=conversation.id)


def test_items_auto_page_by_last_id(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create(
        items=[{"role": "user", "content": f"item {n}"} for n in range(7)]
    )
    page = openai_client.conversations.items.list(conversation.id, limit=3, order="asc")
    assert page.has_more
    assert len(page.data) == 3
    every = list(openai_client.conversations.items.list(conversation.id, limit=3, order="asc"))
    assert texts(every) == [f"item {n}" for n in range(7)]
    assert texts(openai_client.conversations.items.list(conversation.id, limit=2)) == [
        f"item {n}" for n in reversed(range(7))
    ]


def test_at_most_twenty_items_at_a_time(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create()
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.conversations.items.create(
            conversation.id,
            items=[{"role": "user", "content": "x"}] * 21,
        )
    assert raised.value.param == "items"
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.conversations.create(items=[{"role": "user"}])  # type: ignore[list-item]
    assert raised.value.param == "items[0].content"
    with pytest.raises(openai.NotFoundError):
        openai_client.conversations.items.create("conv_nope", items=[{"role": "user", "content": "x"}])


def test_a_response_in_a_conversation_adds_its_input_and_output(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create(items=[{"role": "user", "content": "earlier"}])
    first = openai_client.responses.create(model="builtin", input="first", conversation=conversation.id)
    assert first.conversation is not None
    assert first.conversation.id == conversation.id
    second = openai_client.responses.create(model="builtin", input="second", conversation={"id": conversation.id})
    assert second.output_text == "You said: second"
    items = list(openai_client.conversations.items.list(conversation.id, order="asc"))
    assert [(item.type, item.role) for item in items] == [  # type: ignore[union-attr]
        ("message", "user"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert items[2].id == first.output[0].id
    assert part_type(items[2]) == "output_text"
    # The context was the whole conversation.
    assert first.usage is not None
    assert second.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.responses.create(
            model="builtin", input="x", conversation=conversation.id, previous_response_id=first.id
        )
    assert raised.value.code == "mutually_exclusive_parameters"


def test_function_calls_and_outputs_are_items_of_the_conversation(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create()
    call = openai_client.responses.create(
        model="builtin", input='get_price {"ticker": "AAPL"}', tools=[PRICE_TOOL], conversation=conversation.id
    ).output[0]
    assert call.type == "function_call"
    answer = openai_client.responses.create(
        model="builtin",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "42"}],
        tools=[PRICE_TOOL],
        conversation=conversation.id,
    )
    assert answer.output_text == "get_price returned: 42"
    items = list(openai_client.conversations.items.list(conversation.id, order="asc"))
    assert [item.type for item in items] == ["message", "function_call", "function_call_output", "message"]
    # The Assistants API sees only its own kind of messages in the same thread.
    messages = openai_client.beta.threads.messages.list(conversation.id, order="asc").data
    assert [m.content[0].text.value for m in messages] == [  # type: ignore[union-attr]
        'get_price {"ticker": "AAPL"}',
        "get_price returned: 42",
    ]


def test_an_assistants_thread_is_continued_by_a_response(openai_client: OpenAI) -> None:
    assistant = openai_client.beta.assistants.create(model="builtin")
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "from Assistants"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    # The thread is a conversation: its messages are items, under its thread_ id.
    conversation = openai_client.conversations.retrieve(thread.id)
    assert (conversation.id, conversation.object) == (thread.id, "conversation")
    assert texts(openai_client.conversations.items.list(thread.id, order="asc")) == [
        "from Assistants",
        "You said: from Assistants",
    ]
    response = openai_client.responses.create(model="builtin", input="from Responses", conversation=thread.id)
    assert response.output_text == "You said: from Responses"
    messages = openai_client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.content[0].text.value for m in messages][-2:] == [  # type: ignore[union-attr]
        "from Responses",
        "You said: from Responses",
    ]
    # And an Assistants run reads what the response added.
    again = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert again.usage is not None
    assert run.usage is not None
    assert again.usage.prompt_tokens > run.usage.prompt_tokens


def test_a_conversation_is_a_thread_for_the_assistants_api(openai_client: OpenAI) -> None:
    conversation = openai_client.conversations.create(items=[{"role": "user", "content": "from Conversations"}])
    thread = openai_client.beta.threads.retrieve(conversation.id)
    assert thread.id == conversation.id
    assistant = openai_client.beta.assistants.create(model="builtin")
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=conversation.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    items = list(openai_client.conversations.items.list(conversation.id, order="asc"))
    assert texts(items) == ["from Conversations", "You said: from Conversations"]
    assert part_type(items[1]) == "output_text"


def test_a_conversation_with_an_active_run_takes_no_items(openai_client: OpenAI) -> None:
    assistant = openai_client.beta.assistants.create(
        model="builtin", tools=[{"type": "function", "function": {"name": "get_price"}}]
    )
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "get_price"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "requires_action"
    with pytest.raises(openai.BadRequestError):
        openai_client.conversations.items.create(thread.id, items=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        openai_client.responses.create(model="builtin", input="x", conversation=thread.id)
    openai_client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
