"""Runs over gRPC, through the typed clients, against a real server on the built-in engine (zero token
delay). A run parked in `requires_action` stands in wherever a test needs an active run, so that no
test depends on timing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from google.protobuf import json_format, struct_pb2

from sovereign_assistant.v1 import assistant_pb2, run_pb2
from sovereign_client import AsyncSovereignClient, BadRequestError, NotFoundError, SovereignClient
from tests.conftest import ServerThread, merged_deltas, reply_events

pytestmark = pytest.mark.grpc

PRICE_TOOL: dict[str, Any] = {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}
PRICE_QUESTION = 'call get_price {"ticker": "AAPL"}'
PRICE_CALL_ID = "call_" + hashlib.sha256(f"get_price{PRICE_QUESTION}0".encode()).hexdigest()[:24]

# Which oneof payload each event carries; `done` carries none.
PAYLOADS = {
    "thread.created": "thread",
    "thread.run.created": "run",
    "thread.run.queued": "run",
    "thread.run.in_progress": "run",
    "thread.run.requires_action": "run",
    "thread.run.completed": "run",
    "thread.run.failed": "run",
    "thread.run.step.created": "step",
    "thread.run.step.in_progress": "step",
    "thread.run.step.completed": "step",
    "thread.run.step.failed": "step",
    "thread.run.step.delta": "step_delta",
    "thread.message.created": "message",
    "thread.message.in_progress": "message",
    "thread.message.delta": "message_delta",
    "thread.message.completed": "message",
    "thread.message.incomplete": "message",
    "done": None,
}


def names(events: Sequence[run_pb2.RunEvent]) -> list[str]:
    return [event.event for event in events]


def delta_text(events: Sequence[run_pb2.RunEvent]) -> str:
    return "".join(
        part.text.value
        for event in events
        if event.WhichOneof("data") == "message_delta"
        for part in event.message_delta.delta.content
    )


def json_of(value: struct_pb2.Value) -> Any:
    return json_format.MessageToDict(value)


def assert_payloads_match_names(events: Sequence[run_pb2.RunEvent]) -> None:
    assert [event.WhichOneof("data") for event in events] == [PAYLOADS[event.event] for event in events]


@pytest.fixture(scope="module")
async def assistant(client: AsyncSovereignClient) -> assistant_pb2.Assistant:
    return await client.assistants.create(model="builtin", instructions="Be brief.", tools=[PRICE_TOOL])


async def waiting_for_tools(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> run_pb2.Run:
    """A run parked in `requires_action`: active for as long as the test needs, without timing."""
    thread = await client.threads.create(messages=[{"role": "user", "content": PRICE_QUESTION}])
    run = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    return run


async def reply_text(client: AsyncSovereignClient, thread_id: str, run_id: str) -> str:
    messages = (await client.threads.messages.list(thread_id, run_id=run_id)).data
    assert len(messages) == 1
    return str(messages[0].content[0].text.value)


# ---------------------------------------------------------------- streaming


async def test_stream_yields_events_in_openai_order_with_typed_payloads(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "Hello there friend"}])
    events = [event async for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id)]

    assert merged_deltas(names(events)) == reply_events()
    assert_payloads_match_names(events)
    assert [event.run.status for event in events if event.WhichOneof("data") == "run"] == [
        "queued",
        "queued",
        "in_progress",
        "completed",
    ]
    run_ids = {event.run.id for event in events if event.WhichOneof("data") == "run"}
    assert len(run_ids) == 1
    completed_message = next(event.message for event in events if event.event == "thread.message.completed")
    assert delta_text(events) == completed_message.content[0].text.value == "You said: Hello there friend"
    assert {event.message_delta.id for event in events if event.event == "thread.message.delta"} == {
        completed_message.id
    }
    assert await reply_text(client, thread.id, run_ids.pop()) == "You said: Hello there friend"


async def test_completed_run_and_its_step_report_usage(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "Hello there friend"}])
    run = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)

    # Prompt: "Be brief." (2 tokens) and the user's 3 words; completion: "You said: Hello there friend".
    expected = {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}
    assert run.status == "completed"
    assert json_of(run.usage) == expected
    assert run.completed_at.HasField("number_value")
    [step] = (await client.threads.runs.steps.list(run.id, thread_id=thread.id)).data
    assert (step.type, step.status) == ("message_creation", "completed")
    assert json_of(step.usage) == expected


async def test_create_returns_the_queued_run_at_once_and_the_run_goes_on_without_the_stream(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = await client.threads.runs.create(thread.id, assistant_id=assistant.id)
    assert run.id.startswith("run_")
    assert (run.object, run.status, run.thread_id, run.assistant_id) == (
        "thread.run",
        "queued",
        thread.id,
        assistant.id,
    )
    assert (run.model, run.instructions) == ("builtin", "Be brief.")
    assert run.expires_at.HasField("number_value")
    assert run.usage.HasField("null_value")

    finished = await client.threads.runs.poll(run.id, thread_id=thread.id)
    assert finished.status == "completed"
    assert await reply_text(client, thread.id, run.id) == "You said: Hello"


async def test_create_and_poll_leaves_the_reply_in_the_thread_tagged_with_its_run(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "first"}])
    first = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)
    await client.threads.messages.create(thread.id, role="user", content="second")
    second = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)
    assert (first.status, second.status) == ("completed", "completed")

    messages = (await client.threads.messages.list(thread.id, order="asc")).data
    assert [(m.role, m.content[0].text.value) for m in messages] == [
        ("user", "first"),
        ("assistant", "You said: first"),
        ("user", "second"),
        ("assistant", "You said: second"),
    ]
    reply = messages[3]
    assert (reply.assistant_id.string_value, reply.run_id.string_value, reply.status) == (
        assistant.id,
        second.id,
        "completed",
    )
    assert [m.id for m in (await client.threads.messages.list(thread.id, run_id=second.id)).data] == [reply.id]


async def test_create_and_run_stream_starts_with_the_new_thread(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    events = [
        event
        async for event in client.threads.create_and_run_stream(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "Hi"}], "metadata": {"from": "grpc"}},
        )
    ]
    assert merged_deltas(names(events)) == ["thread.created", *reply_events()]
    assert_payloads_match_names(events)
    thread = events[0].thread
    assert dict(thread.metadata) == {"from": "grpc"}
    assert {event.run.thread_id for event in events if event.WhichOneof("data") == "run"} == {thread.id}
    assert delta_text(events) == "You said: Hi"


async def test_create_and_run_poll(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> None:
    run = await client.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "Hey"}]}
    )
    assert run.status == "completed"
    assert await reply_text(client, run.thread_id, run.id) == "You said: Hey"
    queued = await client.threads.create_and_run(assistant_id=assistant.id)
    assert queued.status == "queued"
    assert queued.thread_id.startswith("thread_")


# ---------------------------------------------------------------- tool calls


async def test_tool_call_round_trip(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> None:
    run = await waiting_for_tools(client, assistant)
    action = json_of(run.required_action)
    assert action == {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [
                {
                    "id": PRICE_CALL_ID,
                    "type": "function",
                    "function": {"name": "get_price", "arguments": '{"ticker": "AAPL"}'},
                }
            ]
        },
    }

    events = [
        event
        async for event in client.threads.runs.submit_tool_outputs_stream(
            run.id, thread_id=run.thread_id, tool_outputs=[{"tool_call_id": PRICE_CALL_ID, "output": "187.2"}]
        )
    ]
    assert merged_deltas(names(events)) == ["thread.run.step.completed", *reply_events()[1:]]
    assert_payloads_match_names(events)
    assert events[-2].run.status == "completed"
    assert delta_text(events) == "get_price returned: 187.2"
    assert await reply_text(client, run.thread_id, run.id) == "get_price returned: 187.2"

    tool_step, message_step = (await client.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc")).data
    assert (tool_step.type, tool_step.status) == ("tool_calls", "completed")
    assert json_format.MessageToDict(tool_step.step_details)["tool_calls"] == [
        {
            "id": PRICE_CALL_ID,
            "type": "function",
            "function": {"name": "get_price", "arguments": '{"ticker": "AAPL"}', "output": "187.2"},
        }
    ]
    assert tool_step.usage.HasField("struct_value")
    assert (message_step.type, message_step.status) == ("message_creation", "completed")
    message_id = json_format.MessageToDict(message_step.step_details)["message_creation"]["message_id"]
    assert (await client.threads.messages.retrieve(message_id, thread_id=run.thread_id)).run_id.string_value == run.id
    assert await client.threads.runs.steps.retrieve(tool_step.id, thread_id=run.thread_id, run_id=run.id) == tool_step


async def test_streaming_a_tool_call_shows_the_call_as_step_deltas(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": PRICE_QUESTION}])
    events = [event async for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id)]
    assert_payloads_match_names(events)
    assert names(events)[-2:] == ["thread.run.requires_action", "done"]
    deltas = [json_format.MessageToDict(e.step_delta.delta) for e in events if e.event == "thread.run.step.delta"]
    calls = [call for delta in deltas for call in delta["step_details"]["tool_calls"]]
    assert calls[0]["id"] == PRICE_CALL_ID
    assert calls[0]["function"]["name"] == "get_price"
    assert "".join(call["function"]["arguments"] for call in calls) == '{"ticker": "AAPL"}'


async def test_submit_tool_outputs_returns_the_queued_run_and_and_poll_waits_for_the_end(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    outputs = [{"tool_call_id": PRICE_CALL_ID, "output": "187.2"}]
    run = await waiting_for_tools(client, assistant)
    queued = await client.threads.runs.submit_tool_outputs(run.id, thread_id=run.thread_id, tool_outputs=outputs)
    assert (queued.id, queued.status) == (run.id, "queued")
    assert queued.required_action.HasField("null_value")
    assert (await client.threads.runs.poll(run.id, thread_id=run.thread_id)).status == "completed"

    other = await waiting_for_tools(client, assistant)
    done = await client.threads.runs.submit_tool_outputs_and_poll(
        other.id, thread_id=other.thread_id, tool_outputs=outputs
    )
    assert done.status == "completed"
    # Usage sums both generations: the call, and the reply after it.
    usage = json_of(done.usage)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] > 3


@pytest.mark.parametrize(
    ("tool_outputs", "param"),
    [
        ([], "tool_outputs"),
        ([{"tool_call_id": "call_unknown", "output": "1"}], "tool_outputs[0].tool_call_id"),
        ([{"output": "1"}], "tool_outputs[0].tool_call_id"),
    ],
)
async def test_bad_tool_outputs_are_rejected_and_the_run_still_waits(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant, tool_outputs: list[dict[str, str]], param: str
) -> None:
    run = await waiting_for_tools(client, assistant)
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.submit_tool_outputs(run.id, thread_id=run.thread_id, tool_outputs=tool_outputs)
    assert caught.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.param == param
    assert await client.threads.runs.retrieve(run.id, thread_id=run.thread_id) == run


async def test_tool_outputs_for_a_finished_run_are_rejected(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": PRICE_CALL_ID, "output": "1"}]
        )
    assert caught.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert await client.threads.runs.retrieve(run.id, thread_id=thread.id) == run


# ---------------------------------------------------------------- one active run per thread, cancelling


async def test_a_busy_thread_takes_no_second_run_and_no_message(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    run = await waiting_for_tools(client, assistant)
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.create(run.thread_id, assistant_id=assistant.id)
    assert caught.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.message == f"Thread {run.thread_id} already has an active run {run.id}."
    with pytest.raises(BadRequestError, match="already has an active run"):
        await client.threads.messages.create(run.thread_id, role="user", content="more")

    assert [r.id for r in (await client.threads.runs.list(run.thread_id)).data] == [run.id]
    assert len((await client.threads.messages.list(run.thread_id)).data) == 1


async def test_cancel_moves_a_waiting_run_to_cancelled_and_frees_the_thread(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    run = await waiting_for_tools(client, assistant)
    cancelling = await client.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert cancelling.status == "cancelling"
    cancelled = await client.threads.runs.poll(run.id, thread_id=run.thread_id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at.HasField("number_value")
    assert cancelled.required_action.HasField("null_value")
    [step] = (await client.threads.runs.steps.list(run.id, thread_id=run.thread_id)).data
    assert (step.type, step.status) == ("tool_calls", "cancelled")

    await client.threads.messages.create(run.thread_id, role="user", content="again")
    again = await client.threads.runs.create_and_poll(run.thread_id, assistant_id=assistant.id)
    assert again.status == "completed"


async def test_cancelling_a_finished_run_is_rejected(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.cancel(run.id, thread_id=thread.id)
    assert caught.value.status == grpc.StatusCode.FAILED_PRECONDITION
    assert "completed" in caught.value.message
    assert await client.threads.runs.retrieve(run.id, thread_id=thread.id) == run


# ---------------------------------------------------------------- failures and limits


async def test_engine_failure_fails_the_run_and_leaves_the_reply_incomplete(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "break [[engine-error]] please"}])
    events = [event async for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id)]
    assert_payloads_match_names(events)
    assert names(events)[-5:] == [
        "thread.message.delta",
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    run = events[-2].run
    assert run.status == "failed"
    assert json_of(run.last_error) == {"code": "server_error", "message": "The built-in engine was asked to fail."}
    assert run.failed_at.HasField("number_value")

    stored = await client.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert (stored.status, json_of(stored.last_error)["code"]) == ("failed", "server_error")
    [reply] = (await client.threads.messages.list(thread.id, run_id=run.id)).data
    assert reply.status == "incomplete"
    assert json_of(reply.incomplete_details) == {"reason": "run_failed"}
    assert reply.content[0].text.value == delta_text(events) == "You "
    [step] = (await client.threads.runs.steps.list(run.id, thread_id=thread.id)).data
    assert step.status == "failed"
    assert json_of(step.last_error)["code"] == "server_error"


async def test_max_completion_tokens_ends_the_run_incomplete(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    words = [f"w{index}" for index in range(300)]
    thread = await client.threads.create(messages=[{"role": "user", "content": " ".join(words)}])
    # 256 is the smallest limit OpenAI accepts.
    run = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id, max_completion_tokens=256)
    assert run.status == "incomplete"
    assert json_of(run.incomplete_details) == {"reason": "max_completion_tokens"}
    assert json_of(run.usage)["completion_tokens"] == 256
    # "You " and "said: " are two of the 256 tokens.
    assert await reply_text(client, thread.id, run.id) == "You said: " + " ".join(words[:254]) + " "
    [reply] = (await client.threads.messages.list(thread.id, run_id=run.id)).data
    assert (reply.status, json_of(reply.incomplete_details)) == ("incomplete", {"reason": "max_tokens"})


async def test_unknown_ids_are_not_found(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)
    runs = client.threads.runs
    with pytest.raises(NotFoundError):
        await runs.retrieve("run_missing", thread_id=thread.id)
    with pytest.raises(NotFoundError):
        await runs.retrieve(run.id, thread_id="thread_missing")
    with pytest.raises(NotFoundError):
        await runs.cancel("run_missing", thread_id=thread.id)
    with pytest.raises(NotFoundError):
        await runs.update("run_missing", thread_id=thread.id, metadata={"a": "b"})
    with pytest.raises(NotFoundError):
        await runs.submit_tool_outputs("run_missing", thread_id=thread.id, tool_outputs=[])
    with pytest.raises(NotFoundError):
        await runs.steps.list("run_missing", thread_id=thread.id)
    with pytest.raises(NotFoundError):
        await runs.steps.retrieve("step_missing", thread_id=thread.id, run_id=run.id)
    with pytest.raises(NotFoundError):
        await runs.list("thread_missing")


async def test_a_stream_raises_when_it_is_read(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create()
    events = client.threads.runs.stream(thread.id, assistant_id="asst_missing")
    with pytest.raises(NotFoundError) as caught:
        await anext(aiter(events))
    assert caught.value.status == grpc.StatusCode.NOT_FOUND
    with pytest.raises(NotFoundError):
        await client.threads.runs.create("thread_missing", assistant_id="asst_missing")
    assert list((await client.threads.runs.list(thread.id)).data) == []


# ---------------------------------------------------------------- options, metadata, listing


async def test_run_options_reach_the_run(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": PRICE_QUESTION}])
    run = await client.threads.runs.create_and_poll(
        thread.id,
        assistant_id=assistant.id,
        model="other-model",
        instructions="Be thorough.",
        additional_instructions="Cite sources.",
        additional_messages=[{"role": "user", "content": "and then?", "metadata": {"extra": "1"}}],
        tools=[],
        metadata={"purpose": "options"},
        temperature=0.25,
        top_p=0.5,
        max_prompt_tokens=500,
        max_completion_tokens=400,
        truncation_strategy={"type": "last_messages", "last_messages": 5},
        tool_choice="auto",
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
    )
    # `tools=[]` replaces the assistant's tools, so the question names no tool: a text reply.
    assert run.status == "completed"
    assert (run.model, run.instructions) == ("other-model", "Be thorough.\n\nCite sources.")
    assert list(run.tools) == []
    assert dict(run.metadata) == {"purpose": "options"}
    assert (run.temperature, run.top_p) == (0.25, 0.5)
    assert (json_of(run.max_prompt_tokens), json_of(run.max_completion_tokens)) == (500, 400)
    assert json_of(run.truncation_strategy) == {"type": "last_messages", "last_messages": 5}
    assert json_of(run.tool_choice) == "auto"
    assert run.parallel_tool_calls is False
    assert json_of(run.response_format) == {"type": "json_object"}
    # The additional message joins the thread before the run answers it.
    messages = (await client.threads.messages.list(thread.id, order="asc")).data
    assert [(m.role, m.content[0].text.value) for m in messages] == [
        ("user", PRICE_QUESTION),
        ("user", "and then?"),
        ("assistant", "You said: and then?"),
    ]
    assert dict(messages[1].metadata) == {"extra": "1"}


async def test_tool_choice_names_the_function_to_call(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "no names here"}])
    run = await client.threads.runs.create_and_poll(
        thread.id, assistant_id=assistant.id, tool_choice={"type": "function", "function": {"name": "get_price"}}
    )
    assert run.status == "requires_action"
    [call] = json_of(run.required_action)["submit_tool_outputs"]["tool_calls"]
    assert (call["function"]["name"], call["function"]["arguments"]) == ("get_price", "{}")
    await client.threads.runs.cancel(run.id, thread_id=thread.id)


async def test_a_bad_additional_message_names_its_index(
    client: AsyncSovereignClient, assistant: assistant_pb2.Assistant
) -> None:
    thread = await client.threads.create()
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.create(
            thread.id, assistant_id=assistant.id, additional_messages=[{"role": "robot", "content": "x"}]
        )
    assert caught.value.param == "additional_messages[0].role"


async def test_update_changes_a_runs_metadata(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> None:
    run = await waiting_for_tools(client, assistant)
    updated = await client.threads.runs.update(run.id, thread_id=run.thread_id, metadata={"stage": "review"})
    assert dict(updated.metadata) == {"stage": "review"}
    assert updated.status == "requires_action"
    assert await client.threads.runs.retrieve(run.id, thread_id=run.thread_id) == updated
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.update(run.id, thread_id=run.thread_id, metadata={f"k{i}": "v" for i in range(17)})
    assert caught.value.param == "metadata"


async def test_runs_list_pages_in_both_orders(client: AsyncSovereignClient, assistant: assistant_pb2.Assistant) -> None:
    thread = await client.threads.create()
    ids = []
    for index in range(5):
        await client.threads.messages.create(thread.id, role="user", content=str(index))
        ids.append((await client.threads.runs.create_and_poll(thread.id, assistant_id=assistant.id)).id)

    first = await client.threads.runs.list(thread.id, order="asc", limit=2)
    assert [r.id for r in first.data] == ids[:2]
    assert first.has_more
    assert (first.first_id.string_value, first.last_id.string_value) == (ids[0], ids[1])
    rest = await client.threads.runs.list(thread.id, order="asc", limit=10, after=first.last_id.string_value)
    assert [r.id for r in rest.data] == ids[2:]
    assert not rest.has_more
    newest = await client.threads.runs.list(thread.id, limit=2)
    assert [r.id for r in newest.data] == ids[::-1][:2]
    before = await client.threads.runs.list(thread.id, order="asc", before=ids[2])
    assert [r.id for r in before.data] == ids[:2]
    with pytest.raises(BadRequestError) as caught:
        await client.threads.runs.list(thread.id, limit=0)
    assert caught.value.param == "limit"


# ---------------------------------------------------------------- the synchronous client


def test_the_synchronous_client_streams_polls_and_submits(grpc_server: ServerThread) -> None:
    with SovereignClient(f"127.0.0.1:{grpc_server.port}") as client:
        assistant = client.assistants.create(model="builtin", tools=[PRICE_TOOL])
        thread = client.threads.create(messages=[{"role": "user", "content": "Hello sync"}])
        events = list(client.threads.runs.stream(thread.id, assistant_id=assistant.id))
        assert merged_deltas(names(events)) == reply_events()
        assert_payloads_match_names(events)
        assert delta_text(events) == "You said: Hello sync"

        waiting = client.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": PRICE_QUESTION}]}
        )
        assert waiting.status == "requires_action"
        with pytest.raises(BadRequestError, match="already has an active run"):
            client.threads.runs.create(waiting.thread_id, assistant_id=assistant.id)
        with pytest.raises(BadRequestError) as caught:
            client.threads.runs.submit_tool_outputs(waiting.id, thread_id=waiting.thread_id, tool_outputs=[])
        assert caught.value.param == "tool_outputs"
        done = client.threads.runs.submit_tool_outputs_and_poll(
            waiting.id, thread_id=waiting.thread_id, tool_outputs=[{"tool_call_id": PRICE_CALL_ID, "output": "187.2"}]
        )
        assert done.status == "completed"
        [reply] = client.threads.messages.list(waiting.thread_id, run_id=done.id).data
        assert reply.content[0].text.value == "get_price returned: 187.2"
        steps = client.threads.runs.steps.list(done.id, thread_id=done.thread_id, order="asc").data
        assert [step.type for step in steps] == ["tool_calls", "message_creation"]
        assert client.threads.runs.steps.retrieve(steps[1].id, thread_id=done.thread_id, run_id=done.id) == steps[1]

        updated = client.threads.runs.update(done.id, thread_id=done.thread_id, metadata={"k": "v"})
        assert dict(updated.metadata) == {"k": "v"}
        assert [r.id for r in client.threads.runs.list(done.thread_id).data] == [done.id]
        with pytest.raises(BadRequestError):
            client.threads.runs.cancel(done.id, thread_id=done.thread_id)
        with pytest.raises(NotFoundError):
            next(iter(client.threads.runs.stream("thread_missing", assistant_id=assistant.id)))
        with pytest.raises(NotFoundError):
            client.threads.runs.retrieve("run_missing", thread_id=done.thread_id)

        queued = client.threads.runs.create(thread.id, assistant_id=assistant.id)
        assert queued.status == "queued"
        assert client.threads.runs.poll(queued.id, thread_id=thread.id).status == "completed"
        first = next(iter(client.threads.create_and_run_stream(assistant_id=assistant.id)))
        assert first.event == "thread.created"


def test_event_payloads_serialise_as_openai_json(grpc_server: ServerThread) -> None:
    """The typed events carry the same JSON shapes OpenAI's stream does (spot check of one delta)."""
    with SovereignClient(f"127.0.0.1:{grpc_server.port}") as client:
        assistant = client.assistants.create(model="builtin")
        thread = client.threads.create(messages=[{"role": "user", "content": "x"}])
        delta = next(
            event
            for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id)
            if event.event == "thread.message.delta"
        )
        body = json.loads(json_format.MessageToJson(delta.message_delta, preserving_proto_field_name=True))
        assert body["object"] == "thread.message.delta"
        assert body["delta"]["content"][0]["type"] == "text"
        assert "You said: x".startswith(body["delta"]["content"][0]["text"]["value"])
