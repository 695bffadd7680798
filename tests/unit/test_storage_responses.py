"""Storage of the Responses and Conversations APIs: conversations are threads, their items are
messages (function calls and outputs among them), and responses are records of their own."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from sovereign_storage import (
    ActiveRunError,
    FunctionCallDetails,
    FunctionOutputDetails,
    IncompleteDetails,
    Item,
    LastError,
    MessageStatus,
    NewAssistant,
    NewMessage,
    NewRun,
    NotFoundError,
    PageRequest,
    Repository,
    ResponseRecord,
    ResponseStatus,
    TextContent,
    Usage,
    new_id,
)
from tests.unit.conftest import user_message

pytestmark = pytest.mark.unit

CALL = FunctionCallDetails("call_1", "get_price", '{"ticker": "AAPL"}')


def response(**fields: Any) -> ResponseRecord:
    values: dict[str, Any] = {
        "id": new_id("resp"),
        "created_at": 1_700_000_000,
        "status": ResponseStatus.IN_PROGRESS,
        "background": False,
        "store": True,
        "model": "m",
        "instructions": None,
        "input_items": (Item("msg_in", "user", content=(TextContent("hi"),)),),
        "output_items": (),
        "previous_response_id": None,
        "conversation_id": None,
        "prompt_id": None,
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "temperature": None,
        "top_p": None,
        "text_format": None,
        "max_output_tokens": None,
        "truncation": "disabled",
        "metadata": {},
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "completed_at": None,
    }
    return ResponseRecord(**(values | fields))


def function_items() -> list[NewMessage]:
    return [
        NewMessage(role="developer", content=(TextContent("Answer in French."),)),
        user_message("price?"),
        NewMessage(role="assistant", content=(), item_details=CALL),
        NewMessage(role="user", content=(), item_details=FunctionOutputDetails("call_1", "42")),
        NewMessage(role="assistant", content=(TextContent("42 euros"),)),
    ]


def test_a_conversation_is_a_thread_with_its_own_id_prefix(repo: Repository) -> None:
    conversation, _ = repo.create_thread({}, {"topic": "fx"}, [], prefix="conv")
    assert conversation.id.startswith("conv_")
    # Either API's id reaches the same record.
    assert repo.get_thread(conversation.id).metadata == {"topic": "fx"}
    thread, _ = repo.create_thread({}, {}, [])
    repo.add_items(thread.id, [user_message("from a thread")])
    assert [m.id for m in repo.list_messages(thread.id, PageRequest(), all_items=True).items]


def test_function_items_are_kept_in_order_but_hidden_from_the_assistants_api(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    added = repo.add_items(thread.id, function_items())
    assert [item.item_details for item in added] == [None, None, CALL, FunctionOutputDetails("call_1", "42"), None]
    assert added[2].id.startswith("fc_")
    assert added[3].id.startswith("fco_")
    assert added[0].id.startswith("msg_")

    every = repo.list_messages(thread.id, PageRequest(order="asc"), all_items=True).items
    assert [item.id for item in every] == [item.id for item in added]
    assistants = repo.list_messages(thread.id, PageRequest(order="asc")).items
    assert [message.id for message in assistants] == [added[1].id, added[4].id]
    # A cursor may still name a hidden item.
    after = repo.list_messages(thread.id, PageRequest(order="asc", after=added[2].id)).items
    assert [message.id for message in after] == [added[4].id]

    with pytest.raises(NotFoundError):
        repo.get_message(thread.id, added[2].id)
    assert repo.get_message(thread.id, added[2].id, all_items=True).item_details == CALL
    # Runs read every item, in order.
    assert [m.id for m in repo.thread_messages(thread.id)] == [item.id for item in added]


def test_items_keep_the_ids_they_come_with(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    added = repo.add_items(thread.id, [replace(user_message("x"), id="msg_given")])
    assert added[0].id == "msg_given"


def test_items_are_refused_while_a_run_is_active(repo: Repository) -> None:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    thread, _ = repo.create_thread({}, {}, [])
    repo.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
    with pytest.raises(ActiveRunError):
        repo.add_items(thread.id, [user_message("x")])
    # A response's output joins its conversation whatever runs there.
    assert repo.append_items(thread.id, [NewMessage(role="assistant", content=(TextContent("done"),))])


def test_a_response_is_stored_with_its_items_and_read_back(repo: Repository) -> None:
    record = response(
        output_items=(Item("fc_1", "assistant", details=CALL),),
        tools=[{"type": "function", "name": "get_price", "parameters": None, "strict": None}],
        text_format={"type": "json_object"},
        metadata={"k": "v"},
    )
    repo.create_response(record)
    assert repo.get_response(record.id) == record


def test_a_response_with_a_conversation_adds_its_input_to_it(repo: Repository) -> None:
    conversation, _ = repo.create_thread({}, {}, [], prefix="conv")
    record = response(conversation_id=conversation.id)
    repo.create_response(record, [replace(user_message("hi"), id="msg_in")])
    assert [m.id for m in repo.thread_messages(conversation.id)] == ["msg_in"]
    output = NewMessage(role="assistant", content=(TextContent("hello"),), id="msg_out")
    assert repo.append_items(conversation.id, [output])
    repo.delete_thread(conversation.id)
    assert not repo.append_items(conversation.id, [replace(output, id="msg_late")])
    # The response keeps its own copy of its items.
    assert repo.get_response(record.id).input_items == record.input_items


def test_a_response_status_changes_by_compare_and_set(repo: Repository) -> None:
    record = response()
    repo.create_response(record)
    output = (Item("msg_1", "assistant", content=(TextContent("hi"),)),)
    done = repo.transition_response(
        record.id,
        ResponseStatus.COMPLETED,
        [ResponseStatus.IN_PROGRESS],
        {"output_items": output, "usage": Usage(3, 2)},
    )
    assert done.applied
    assert done.record.status is ResponseStatus.COMPLETED
    assert done.record.output_items == output
    assert done.record.usage == Usage(3, 2)
    assert done.record.completed_at is not None
    late = repo.transition_response(record.id, ResponseStatus.CANCELLED, [ResponseStatus.IN_PROGRESS])
    assert not late.applied
    assert late.record.status is ResponseStatus.COMPLETED
    incomplete = response()
    repo.create_response(incomplete)
    ended = repo.transition_response(
        incomplete.id,
        ResponseStatus.INCOMPLETE,
        [ResponseStatus.IN_PROGRESS],
        {"incomplete_details": IncompleteDetails("max_output_tokens")},
    )
    assert ended.record.incomplete_details == IncompleteDetails("max_output_tokens")
    assert ended.record.completed_at is None


def test_a_chain_of_responses_is_read_oldest_first(repo: Repository) -> None:
    first = response()
    second = response(previous_response_id=first.id)
    third = response(previous_response_id=second.id)
    for record in (first, second, third):
        repo.create_response(record)
    assert [r.id for r in repo.response_chain(third.id)] == [first.id, second.id, third.id]
    repo.delete_response(first.id)
    assert [r.id for r in repo.response_chain(third.id)] == [second.id, third.id]
    with pytest.raises(NotFoundError):
        repo.get_response(first.id)
    with pytest.raises(NotFoundError):
        repo.delete_response(first.id)


def test_responses_belong_to_their_project(repo: Repository) -> None:
    record = response()
    repo.create_response(record)
    other = repo.scoped("proj_other")
    with pytest.raises(NotFoundError):
        other.get_response(record.id)
    with pytest.raises(NotFoundError):
        other.response_chain(record.id)
    with pytest.raises(NotFoundError):
        other.delete_response(record.id)
    conversation, _ = repo.create_thread({}, {}, [], prefix="conv")
    with pytest.raises(NotFoundError):
        other.create_response(response(conversation_id=conversation.id))
    assert not other.append_items(conversation.id, [user_message("x")])


def test_interrupted_responses_fail_at_the_next_start(repo: Repository) -> None:
    running, queued, done = response(), response(status=ResponseStatus.QUEUED), response()
    for record in (running, queued, done):
        repo.create_response(record)
    repo.transition_response(done.id, ResponseStatus.COMPLETED, [ResponseStatus.IN_PROGRESS])
    error = LastError("server_error", "stopped")
    ended = repo.end_interrupted_responses(error, [ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS])
    assert ended == [running.id, queued.id]
    assert repo.get_response(queued.id).status is ResponseStatus.FAILED
    assert repo.get_response(queued.id).error == error
    assert repo.get_response(done.id).status is ResponseStatus.COMPLETED


def test_an_item_in_progress_keeps_its_status(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    added = repo.add_items(thread.id, [NewMessage(role="assistant", content=(), status=MessageStatus.INCOMPLETE)])
    assert added[0].status is MessageStatus.INCOMPLETE
