"""Runs as they happen: the built-in engine paced at 0.2 s a token, so a test can act mid-run.
Through a real Envoy with the official SDK (and raw HTTP for the SSE comment lines)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.beta import Assistant

from sovereign_server.gateway import Gateway

pytestmark = pytest.mark.sdk

TOKEN_DELAY = 0.2
PRICE_TOOL: Any = {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"token_delay": TOKEN_DELAY, "run_expires_in": 1, "stream_heartbeat": 0.05}


@pytest.fixture(scope="module")
def assistant(openai_client: OpenAI) -> Assistant:
    return openai_client.beta.assistants.create(model="builtin", tools=[PRICE_TOOL])


def words(count: int) -> str:
    return " ".join(f"w{index}" for index in range(count))


def test_polling_sees_queued_then_in_progress_then_completed(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": words(3)}])
    run = openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    statuses = [run.status]
    deadline = time.monotonic() + 20
    while statuses[-1] not in ("completed", "failed") and time.monotonic() < deadline:
        status = openai_client.beta.threads.runs.retrieve(run.id, thread_id=thread.id).status
        if status != statuses[-1]:
            statuses.append(status)
        time.sleep(0.02)
    assert statuses == ["queued", "in_progress", "completed"]


def test_a_reply_is_readable_while_it_grows(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": words(10)}])
    run = openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    time.sleep(TOKEN_DELAY * 5)
    growing = openai_client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert growing.status == "in_progress"
    partial = growing.content[0].text.value  # type: ignore[union-attr]
    assert "You said: w0".startswith(partial) or partial.startswith("You said: w0")
    assert partial != "You said: " + words(10)
    final = openai_client.beta.threads.runs.poll(run.id, thread_id=thread.id, poll_interval_ms=50)
    assert final.status == "completed"
    done = openai_client.beta.threads.messages.retrieve(growing.id, thread_id=thread.id)
    assert (done.status, done.content[0].text.value) == ("completed", "You said: " + words(10))  # type: ignore[union-attr]
    assert done.completed_at is not None


def test_a_client_leaving_mid_stream_does_not_stop_the_run(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": words(4)}])
    stream = openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    run_id = ""
    for event in stream:
        if event.event == "thread.run.created":
            run_id = event.data.id
        if event.event == "thread.message.delta":
            break
    stream.close()
    final = openai_client.beta.threads.runs.poll(run_id, thread_id=thread.id, poll_interval_ms=50)
    assert final.status == "completed"
    reply = openai_client.beta.threads.messages.list(thread.id).data[0]
    assert reply.content[0].text.value == "You said: " + words(4)  # type: ignore[union-attr]


def test_cancel_mid_stream_ends_the_run_within_one_token(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": words(30)}])
    names: list[str] = []
    run_id = ""
    names_at_cancel = 0
    with openai_client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True) as stream:
        for event in stream:
            names.append(event.event)
            if event.event == "thread.run.created":
                run_id = event.data.id
            if event.event == "thread.message.delta" and not names_at_cancel and names.count(event.event) == 2:
                answer = openai_client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
                assert answer.status == "cancelling"
                names_at_cancel = len(names)
    after_cancel = names[names_at_cancel:]
    # At most the token already on its way, then the run winds down.
    assert after_cancel.count("thread.message.delta") <= 1
    assert [name for name in after_cancel if name != "thread.message.delta"] == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
    ]
    run = openai_client.beta.threads.runs.retrieve(run_id, thread_id=thread.id)
    assert run.status == "cancelled"
    assert run.cancelled_at is not None
    reply = openai_client.beta.threads.messages.list(thread.id).data[0]
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "run_cancelled"
    step = openai_client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "cancelled"


def test_a_run_waiting_for_tool_outputs_expires(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "get_price now"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    deadline = time.monotonic() + 10
    while run.status == "requires_action" and time.monotonic() < deadline:
        time.sleep(0.1)
        run = openai_client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "expired"
    assert run.required_action is None
    step = openai_client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired"
    assert step.expired_at is not None


def test_long_silences_carry_sse_comment_heartbeats(gateway: Gateway, assistant: Assistant) -> None:
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as http:
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
        with http.stream(
            "POST", f"/threads/{thread['id']}/runs", json={"assistant_id": assistant.id, "stream": True}
        ) as response:
            body = b"".join(response.iter_bytes())
    assert b"\n: keep-alive\n\n" in body or body.startswith(b": keep-alive\n\n")
    assert body.endswith(b"event: done\ndata: [DONE]\n\n")
