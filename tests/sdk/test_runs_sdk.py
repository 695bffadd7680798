"""Runs end to end with the official `openai` SDK through a real Envoy, on the built-in engine at
zero token delay."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import Assistant
from openai.types.beta.threads import Run, TextDelta

from tests.conftest import merged_deltas, reply_events

pytestmark = pytest.mark.sdk

PRICE_TOOL: Any = {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}
STREAM_ORDER = reply_events(done=False)


@pytest.fixture(scope="module")
def assistant(openai_client: OpenAI) -> Assistant:
    return openai_client.beta.assistants.create(model="builtin", instructions="Be brief.", tools=[PRICE_TOOL])


def waiting_for_tools(openai_client: OpenAI, assistant: Assistant) -> Run:
    """A run parked in `requires_action`: active, with no timing involved."""
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": 'get_price {"ticker": "AAPL"}'}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "requires_action"
    return run


def test_create_returns_queued_at_once_and_polling_sees_it_complete(
    openai_client: OpenAI, assistant: Assistant
) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "Hello"}])
    run = openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "queued"
    assert run.object == "thread.run"
    assert (run.thread_id, run.assistant_id, run.model, run.instructions) == (
        thread.id,
        assistant.id,
        "builtin",
        "Be brief.",
    )
    assert run.expires_at is not None
    assert run.usage is None
    final = openai_client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=20)
    assert final.status == "completed"
    assert final.started_at is not None
    assert final.completed_at is not None
    assert final.expires_at is None
    assert final.usage is not None
    # "Be brief." and "Hello" are 3 prompt tokens; "You said: Hello" is 3 completion tokens.
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (3, 3, 6)


def test_create_and_poll_leaves_the_assistant_reply_in_the_thread(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "What is RSI"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    reply = openai_client.beta.threads.messages.list(thread.id).data[0]
    assert reply.role == "assistant"
    assert reply.status == "completed"
    assert reply.content[0].text.value == "You said: What is RSI"  # type: ignore[union-attr]
    assert (reply.assistant_id, reply.run_id) == (assistant.id, run.id)
    assert [m.id for m in openai_client.beta.threads.messages.list(thread.id, run_id=run.id)] == [reply.id]


def test_create_and_run_poll(openai_client: OpenAI, assistant: Assistant) -> None:
    run = openai_client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "fresh thread"}]},
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    messages = openai_client.beta.threads.messages.list(run.thread_id, order="asc").data
    assert [m.content[0].text.value for m in messages] == ["fresh thread", "You said: fresh thread"]  # type: ignore[union-attr]


def test_stream_yields_typed_events_in_openai_order(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "stream"}])
    events = list(openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    assert merged_deltas([event.event for event in events]) == STREAM_ORDER
    deltas = [
        event.data.delta.content[0].text.value  # type: ignore[union-attr,index]
        for event in events
        if event.event == "thread.message.delta"
    ]
    assert "".join(delta or "" for delta in deltas) == "You said: stream"
    completed = events[-1].data
    assert isinstance(completed, Run)
    assert completed.status == "completed"


def test_create_and_run_stream_starts_with_the_thread(openai_client: OpenAI, assistant: Assistant) -> None:
    events = list(
        openai_client.beta.threads.create_and_run(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}, stream=True
        )
    )
    assert [event.event for event in events[:3]] == ["thread.created", "thread.run.created", "thread.run.queued"]
    assert events[-1].event == "thread.run.completed"


def test_event_handler_receives_the_text_as_it_streams_and_the_final_run(
    openai_client: OpenAI, assistant: Assistant
) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "one two three"}])
    tokens: list[str] = []

    class Collector(AssistantEventHandler):
        def on_text_delta(self, delta: TextDelta, snapshot: Any) -> None:
            tokens.append(delta.value or "")

    with openai_client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Collector()
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
        text = stream.get_final_messages()[0].content[0].text.value  # type: ignore[union-attr]
    assert tokens
    assert "".join(tokens) == "You said: one two three"
    assert text == "You said: one two three"
    assert final.status == "completed"


def test_tool_call_round_trip_with_streamed_outputs(openai_client: OpenAI, assistant: Assistant) -> None:
    run = waiting_for_tools(openai_client, assistant)
    assert run.required_action is not None
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [(call.type, call.function.name, call.function.arguments) for call in calls] == [
        ("function", "get_price", '{"ticker": "AAPL"}')
    ]
    events = list(
        openai_client.beta.threads.runs.submit_tool_outputs(
            run.id,
            thread_id=run.thread_id,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "187.2"}],
            stream=True,
        )
    )
    assert [event.event for event in events[:4]] == [
        "thread.run.step.completed",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
    ]
    assert events[-1].event == "thread.run.completed"
    reply = openai_client.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.content[0].text.value == "get_price returned: 187.2"  # type: ignore[union-attr]
    steps = list(openai_client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id, order="asc"))
    assert [(step.type, step.status) for step in steps] == [
        ("tool_calls", "completed"),
        ("message_creation", "completed"),
    ]
    tool_step = openai_client.beta.threads.runs.steps.retrieve(steps[0].id, thread_id=run.thread_id, run_id=run.id)
    assert tool_step.step_details.tool_calls[0].function.output == "187.2"  # type: ignore[union-attr]
    assert tool_step.usage is not None


def test_submit_tool_outputs_and_poll(openai_client: OpenAI, assistant: Assistant) -> None:
    run = waiting_for_tools(openai_client, assistant)
    assert run.required_action is not None
    call_id = run.required_action.submit_tool_outputs.tool_calls[0].id
    done = openai_client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=run.thread_id,
        tool_outputs=[{"tool_call_id": call_id, "output": "1"}],
        poll_interval_ms=20,
    )
    assert done.status == "completed"
    assert done.required_action is None


@pytest.mark.parametrize(
    ("outputs", "param"),
    [([], "tool_outputs"), ([{"tool_call_id": "call_unknown", "output": "1"}], "tool_outputs[0].tool_call_id")],
)
def test_bad_tool_outputs_are_rejected_and_the_run_still_waits(
    openai_client: OpenAI, assistant: Assistant, outputs: list[Any], param: str
) -> None:
    run = waiting_for_tools(openai_client, assistant)
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.runs.submit_tool_outputs(run.id, thread_id=run.thread_id, tool_outputs=outputs)
    assert caught.value.param == param
    assert openai_client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id) == run


def test_one_active_run_per_thread(openai_client: OpenAI, assistant: Assistant) -> None:
    run = waiting_for_tools(openai_client, assistant)
    expected = f"Thread {run.thread_id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError, match=expected):
        openai_client.beta.threads.runs.create(thread_id=run.thread_id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError, match=expected):
        openai_client.beta.threads.messages.create(run.thread_id, role="user", content="more")
    assert len(openai_client.beta.threads.runs.list(run.thread_id).data) == 1


def test_cancel_moves_a_waiting_run_to_cancelled(openai_client: OpenAI, assistant: Assistant) -> None:
    run = waiting_for_tools(openai_client, assistant)
    cancelling = openai_client.beta.threads.runs.cancel(run.id, thread_id=run.thread_id)
    assert cancelling.status == "cancelling"
    final = openai_client.beta.threads.runs.poll(run.id, thread_id=run.thread_id, poll_interval_ms=20)
    assert final.status == "cancelled"
    assert final.cancelled_at is not None
    steps = openai_client.beta.threads.runs.steps.list(run.id, thread_id=run.thread_id).data
    assert [step.status for step in steps] == ["cancelled"]
    # The thread is free again.
    openai_client.beta.threads.messages.create(run.thread_id, role="user", content="next")


def test_cancelling_a_finished_run_is_rejected(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "x"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    with pytest.raises(openai.BadRequestError, match="Cannot cancel run with status 'completed'"):
        openai_client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert openai_client.beta.threads.runs.retrieve(run.id, thread_id=thread.id) == run


def test_list_update_and_retrieve_runs(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create()
    ids = []
    for text in ("a", "b", "c"):
        openai_client.beta.threads.messages.create(thread.id, role="user", content=text)
        ids.append(
            openai_client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
            ).id
        )
    assert [run.id for run in openai_client.beta.threads.runs.list(thread.id)] == ids[::-1]
    assert [
        run.id for run in openai_client.beta.threads.runs.list(thread.id, order="asc", limit=1, after=ids[0])
    ] == ids[1:]
    updated = openai_client.beta.threads.runs.update(ids[0], thread_id=thread.id, metadata={"reviewed": "yes"})
    assert updated.metadata == {"reviewed": "yes"}
    assert openai_client.beta.threads.runs.retrieve(ids[0], thread_id=thread.id).metadata == {"reviewed": "yes"}


def test_run_options_reach_the_run(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "old"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        model="other-model",
        instructions="Only numbers.",
        additional_instructions="Be exact.",
        additional_messages=[{"role": "user", "content": "added"}],
        temperature=0.3,
        top_p=0.8,
        tool_choice="none",
        parallel_tool_calls=False,
        truncation_strategy={"type": "last_messages", "last_messages": 1},
        metadata={"k": "v"},
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    assert (run.model, run.instructions) == ("other-model", "Only numbers.\n\nBe exact.")
    assert (run.temperature, run.top_p, run.tool_choice, run.parallel_tool_calls) == (0.3, 0.8, "none", False)
    assert run.truncation_strategy is not None
    assert (run.truncation_strategy.type, run.truncation_strategy.last_messages) == ("last_messages", 1)
    assert run.metadata == {"k": "v"}
    # Truncated to the last message: 4 instruction tokens + "added".
    assert run.usage is not None
    assert run.usage.prompt_tokens == 5
    texts = [m.content[0].text.value for m in openai_client.beta.threads.messages.list(thread.id, order="asc")]  # type: ignore[union-attr]
    assert texts == ["old", "added", "You said: added"]


def test_token_limits_end_runs_incomplete(openai_client: OpenAI, assistant: Assistant) -> None:
    long_text = " ".join(f"w{i}" for i in range(300))
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": long_text}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, poll_interval_ms=20
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage is not None
    assert run.usage.completion_tokens == 256
    reply = openai_client.beta.threads.messages.list(thread.id).data[0]
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_tokens"

    prompt_limited = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=256, poll_interval_ms=20
    )
    assert prompt_limited.status == "incomplete"
    assert prompt_limited.incomplete_details is not None
    assert prompt_limited.incomplete_details.reason == "max_prompt_tokens"


def test_engine_failure_fails_the_run_with_last_error(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "break [[engine-error]]"}])
    events = list(openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True))
    assert events[-1].event == "thread.run.failed"
    run = openai_client.beta.threads.runs.retrieve(events[-1].data.id, thread_id=thread.id)
    assert run.status == "failed"
    assert run.failed_at is not None
    assert run.last_error is not None
    assert (run.last_error.code, run.last_error.message) == ("server_error", "The built-in engine was asked to fail.")
    # A failed run still reports what it consumed: the prompt, and the one token before the failure.
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (4, 1)
    reply = openai_client.beta.threads.messages.list(thread.id).data[0]
    assert (reply.status, reply.content[0].text.value) == ("incomplete", "You ")  # type: ignore[union-attr]
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "run_failed"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c, t, a: c.beta.threads.runs.create(thread_id=t, assistant_id="asst_missing"), openai.NotFoundError),
        (lambda c, t, a: c.beta.threads.runs.create(thread_id="thread_missing", assistant_id=a), openai.NotFoundError),
        (lambda c, t, a: c.beta.threads.runs.retrieve("run_missing", thread_id=t), openai.NotFoundError),
        (lambda c, t, a: c.beta.threads.runs.steps.list("run_missing", thread_id=t), openai.NotFoundError),
        (
            lambda c, t, a: c.beta.threads.runs.create(thread_id=t, assistant_id=a, max_completion_tokens=10),
            openai.BadRequestError,
        ),
        (
            lambda c, t, a: c.beta.threads.runs.create(thread_id=t, assistant_id=a, tool_choice="always"),
            openai.BadRequestError,
        ),
        (
            lambda c, t, a: c.beta.threads.runs.create(
                thread_id=t, assistant_id=a, additional_messages=[{"role": "robot", "content": "x"}]
            ),
            openai.BadRequestError,
        ),
    ],
)
def test_bad_run_requests_are_rejected_and_create_nothing(
    openai_client: OpenAI, assistant: Assistant, call: Any, error: type[Exception]
) -> None:
    thread = openai_client.beta.threads.create()
    with pytest.raises(error):
        call(openai_client, thread.id, assistant.id)
    assert openai_client.beta.threads.runs.list(thread.id).data == []
    assert openai_client.beta.threads.messages.list(thread.id).data == []
