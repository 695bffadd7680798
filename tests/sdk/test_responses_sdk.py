"""The Responses API end to end with the official `openai` SDK through a real Envoy, on the
built-in engine at zero token delay (it answers `You said: <the last user message>`, and calls a
function tool the message names)."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseFunctionToolCall, ResponseOutputMessage

pytestmark = pytest.mark.sdk

PRICE_TOOL: Any = {
    "type": "function",
    "name": "get_price",
    "description": "The last price of a ticker.",
    "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]},
    "strict": False,
}
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def text(item: Any) -> str:
    """The text of a message item's first content part."""
    return str(item.content[0].text)


def merged(names: list[str]) -> list[str]:
    """Event names with each run of text deltas as one (how many there are depends on the text)."""
    return [name for index, name in enumerate(names) if not (index and name == names[index - 1] == TEXT_EVENTS[4])]


def test_a_text_input_gets_a_completed_response_in_openais_shape(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input="What is RSI?", instructions="Be brief.")
    assert isinstance(response, Response)
    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", "builtin")
    assert response.output_text == "You said: What is RSI?"
    [message] = response.output
    assert isinstance(message, ResponseOutputMessage)
    assert (message.role, message.status, message.content[0].type) == ("assistant", "completed", "output_text")
    assert message.id.startswith("msg_")
    assert response.instructions == "Be brief."
    assert response.usage is not None
    # "Be brief." and "What is RSI?" are 5 prompt tokens; "You said: What is RSI?" is 5 completion tokens.
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (5, 5, 10)
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert response.completed_at is not None
    assert (response.error, response.incomplete_details, response.previous_response_id) == (None, None, None)
    assert (response.parallel_tool_calls, response.tool_choice, response.tools) == (True, "auto", [])
    assert (response.temperature, response.top_p, response.background) == (1.0, 1.0, False)
    assert response.to_dict()["store"] is True
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "text"


def test_an_item_list_input_is_read_in_order(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(
        model="builtin",
        input=[
            {"role": "developer", "content": "Answer briefly."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]},
            {"role": "assistant", "content": "noted"},
            {"role": "user", "content": [{"type": "input_text", "text": "second"}]},
        ],
        metadata={"desk": "fx"},
    )
    assert response.output_text == "You said: second"
    assert response.metadata == {"desk": "fx"}
    items = openai_client.responses.input_items.list(response.id, order="asc")
    assert [(item.type, getattr(item, "role", None)) for item in items] == [
        ("message", "developer"),
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]


def test_stream_true_yields_typed_events_in_openais_order(openai_client: OpenAI) -> None:
    events = list(openai_client.responses.create(model="builtin", input="stream this", stream=True))
    assert merged([event.type for event in events]) == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == "You said: stream this"
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "You said: stream this"
    assert events[0].type == "response.created"
    assert events[0].response.status == "in_progress"
    assert events[0].response.output == []


def test_the_stream_helper_gives_text_deltas_and_the_final_response(openai_client: OpenAI) -> None:
    texts: list[str] = []
    with openai_client.responses.stream(model="builtin", input="one two three") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                texts.append(event.delta)
        final = stream.get_final_response()
    assert "".join(texts) == "You said: one two three"
    assert final.output_text == "You said: one two three"
    assert final.status == "completed"


def test_a_response_is_retrieved_then_deleted(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input="keep me")
    retrieved = openai_client.responses.retrieve(response.id)
    assert retrieved.model_dump() == response.model_dump()
    openai_client.responses.delete(response.id)
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.responses.retrieve(response.id)
    assert raised.value.code is None or isinstance(raised.value.code, str)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.delete(response.id)


def test_a_response_not_stored_is_not_retrievable(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input="forget me", store=False)
    assert (response.status, response.output_text) == ("completed", "You said: forget me")
    assert response.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(model="builtin", input="next", previous_response_id=response.id)


def test_input_items_page_and_auto_page(openai_client: OpenAI) -> None:
    inputs: Any = [{"role": "user", "content": f"message {n}"} for n in range(5)]
    response = openai_client.responses.create(model="builtin", input=inputs)
    first = openai_client.responses.input_items.list(response.id, limit=2, order="asc")
    assert [text(item) for item in first.data] == ["message 0", "message 1"]
    assert first.has_more
    envelope = first.to_dict()
    assert (envelope["first_id"], envelope["last_id"]) == (first.data[0].id, first.data[-1].id)
    every = [text(item) for item in openai_client.responses.input_items.list(response.id, limit=2)]
    assert every == [f"message {n}" for n in reversed(range(5))]
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.responses.input_items.list(response.id, after="msg_nope")
    assert raised.value.param == "after"


def test_previous_response_id_chains_the_context(openai_client: OpenAI) -> None:
    first = openai_client.responses.create(model="builtin", input="my name is Ada", instructions="Be brief.")
    second = openai_client.responses.create(model="builtin", input="what is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    # Instructions are not carried over.
    assert second.instructions is None
    assert second.output_text == "You said: what is my name?"
    assert first.usage is not None
    assert second.usage is not None
    # The chain is read: the first input and output, then the new input (but not "Be brief.").
    assert second.usage.input_tokens == (first.usage.input_tokens - 2) + first.usage.output_tokens + 4
    with pytest.raises(openai.NotFoundError) as raised:
        openai_client.responses.create(model="builtin", input="x", previous_response_id="resp_nope")
    assert raised.value.param == "previous_response_id"


def test_a_function_tool_round_trip(openai_client: OpenAI) -> None:
    first = openai_client.responses.create(
        model="builtin", input='get_price {"ticker": "AAPL"}', tools=[PRICE_TOOL], tool_choice="auto"
    )
    [call] = first.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.type, call.name, call.arguments, call.status) == (
        "function_call",
        "get_price",
        '{"ticker": "AAPL"}',
        "completed",
    )
    assert call.id is not None
    assert call.id.startswith("fc_")
    assert call.call_id.startswith("call_")
    assert first.tools[0].name == "get_price"  # type: ignore[union-attr]
    second = openai_client.responses.create(
        model="builtin",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "187.5"}],
        tools=[PRICE_TOOL],
    )
    assert second.output_text == "get_price returned: 187.5"
    # The call's item can also be given back by hand, as stateless clients do.
    given_back: Any = call.model_dump(exclude_none=True)
    third = openai_client.responses.create(
        model="builtin",
        input=[
            {"role": "user", "content": 'get_price {"ticker": "AAPL"}'},
            given_back,
            {"type": "function_call_output", "call_id": call.call_id, "output": "188"},
        ],
    )
    assert third.output_text == "get_price returned: 188"


def test_function_call_arguments_stream_as_deltas(openai_client: OpenAI) -> None:
    events = list(
        openai_client.responses.create(
            model="builtin", input='get_price {"ticker": "MSFT"}', tools=[PRICE_TOOL], stream=True
        )
    )
    names = [event.type for event in events]
    assert names[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert names[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [event.delta for event in events if event.type == "response.function_call_arguments.delta"]
    assert len(deltas) > 1
    assert "".join(deltas) == '{"ticker": "MSFT"}'
    done = next(event for event in events if event.type == "response.function_call_arguments.done")
    assert (done.to_dict()["name"], done.arguments) == ("get_price", '{"ticker": "MSFT"}')


def test_the_output_limit_makes_a_response_incomplete(openai_client: OpenAI) -> None:
    words = " ".join(f"w{n}" for n in range(40))
    response = openai_client.responses.create(model="builtin", input=words, max_output_tokens=16)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 16
    assert response.max_output_tokens == 16
    events = list(openai_client.responses.create(model="builtin", input=words, max_output_tokens=16, stream=True))
    assert events[-1].type == "response.incomplete"


def test_a_json_schema_format_is_accepted_and_echoed(openai_client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    text_config: Any = {"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}}
    response = openai_client.responses.create(
        model="builtin",
        input="json please",
        text=text_config,
        temperature=0.2,
        top_p=0.5,
    )
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert response.text.format.name == "answer"
    assert (response.temperature, response.top_p) == (0.2, 0.5)


def test_an_assistant_gives_a_response_its_model_instructions_and_tools(openai_client: OpenAI) -> None:
    assistant = openai_client.beta.assistants.create(
        model="builtin",
        instructions="You are a trading analyst.",
        tools=[{"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}],
    )
    response = openai_client.responses.create(prompt={"id": assistant.id}, input='get_price {"ticker": "X"}')
    assert response.model == "builtin"
    assert response.instructions == "You are a trading analyst."
    assert response.prompt is not None
    assert response.prompt.id == assistant.id
    assert response.output[0].type == "function_call"
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(prompt={"id": "asst_nope"}, input="x")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": "builtin", "input": "x", "max_output_tokens": 5}, "max_output_tokens"),
        ({"model": "builtin", "input": "x", "temperature": 3}, "temperature"),
        ({"model": "builtin", "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
        ({"model": "builtin", "input": [{"type": "input_file", "file_id": "f"}]}, "input[0].type"),
        ({"model": "builtin", "input": "x", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "builtin", "input": "x", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "builtin", "input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"model": "builtin", "input": "x", "include": ["everything"]}, "include[0]"),
        ({"model": "builtin", "input": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"model": "builtin", "input": "x", "prompt": {"id": "pmpt_1"}}, "prompt.id"),
        ({"model": "builtin", "input": "x", "background": True, "store": False}, "background"),
        ({"model": "builtin", "input": "x", "previous_response_id": "resp_1", "conversation": "conv_1"}, None),
    ],
)
def test_a_malformed_request_is_a_400_naming_its_param(openai_client: OpenAI, body: Any, param: str | None) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.post("/responses", body=body, cast_to=Response)
    assert raised.value.type == "invalid_request_error"
    if param is not None:
        assert raised.value.param == param
    else:
        assert raised.value.code == "mutually_exclusive_parameters"


def test_an_engine_failure_fails_the_response(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input="boom [[engine-error]]")
    assert response.status == "failed"
    assert response.error is not None
    assert response.error.code == "server_error"
    events = list(openai_client.responses.create(model="builtin", input="boom [[engine-error]]", stream=True))
    assert [event.type for event in events[-2:]] == ["error", "response.failed"]
    assert events[-2].code == "server_error"  # type: ignore[union-attr]


# A 1x1 PNG.
PNG = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def test_images_are_input_of_user_messages_only(openai_client: OpenAI) -> None:
    picture: Any = {"type": "input_image", "image_url": PNG, "detail": "low"}
    response = openai_client.responses.create(
        model="builtin", input=[{"role": "user", "content": [{"type": "input_text", "text": "look"}, picture]}]
    )
    assert response.status == "completed"
    [item] = openai_client.responses.input_items.list(response.id).data
    shown: Any = item.to_dict()
    assert shown["content"][1] == {"type": "input_image", "image_url": PNG, "file_id": None, "detail": "low"}
    from_assistant: Any = [{"role": "assistant", "content": [picture]}]
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.responses.create(model="builtin", input=from_assistant)
    assert raised.value.param == "input[0].content[0].type"
    unknown_file: Any = [{"role": "user", "content": [{"type": "input_image", "file_id": "file_nope"}]}]
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.responses.create(model="builtin", input=unknown_file)
    assert raised.value.param == "input[0].content[0].file_id"
