"""Background responses end to end with the official `openai` SDK through a real Envoy: created
queued, polled, followed, resumed after a sequence number, cancelled. The built-in engine waits
between tokens here, so that a response is still running while the test acts on it."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response

pytestmark = pytest.mark.sdk

TOKEN_DELAY = 0.02
LONG = " ".join(f"word{n}" for n in range(60))


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"token_delay": TOKEN_DELAY}


def wait_for(openai_client: OpenAI, response_id: str, *statuses: str) -> Response:
    deadline = time.monotonic() + 20
    while True:
        response = openai_client.responses.retrieve(response_id)
        if response.status in statuses or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


def test_a_background_response_is_queued_then_polled_to_its_end(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input="poll me", background=True)
    assert (response.status, response.background, response.output) == ("queued", True, [])
    ended = wait_for(openai_client, response.id, "completed")
    assert ended.status == "completed"
    assert ended.output_text == "You said: poll me"


def test_a_running_response_shows_its_output_so_far(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input=LONG, background=True)
    deadline = time.monotonic() + 10
    partial = openai_client.responses.retrieve(response.id)
    while not partial.output and time.monotonic() < deadline:
        time.sleep(0.02)
        partial = openai_client.responses.retrieve(response.id)
    assert partial.status == "in_progress"
    assert partial.output[0].to_dict()["status"] == "in_progress"
    assert ("You said: " + LONG).startswith(partial.output_text)
    openai_client.responses.cancel(response.id)


def test_a_background_stream_starts_queued_and_the_helper_follows_a_response_by_id(openai_client: OpenAI) -> None:
    events = list(openai_client.responses.create(model="builtin", input="both", background=True, stream=True))
    assert [event.type for event in events[:3]] == ["response.created", "response.queued", "response.in_progress"]
    assert events[0].response.status == "queued"  # type: ignore[union-attr]
    assert events[-1].type == "response.completed"
    with openai_client.responses.stream(response_id=events[0].response.id) as stream:  # type: ignore[union-attr]
        followed = [event.type for event in stream]
        final = stream.get_final_response()
    assert followed == [event.type for event in events]
    assert final.output_text == "You said: both"


def test_a_stream_resumes_after_a_sequence_number(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input=LONG, background=True)
    stream = openai_client.responses.retrieve(response.id, stream=True)
    seen = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta" and len(seen) > 8:
            break
    stream.close()
    last = seen[-1].sequence_number
    resumed = list(openai_client.responses.retrieve(response.id, stream=True, starting_after=last))
    assert resumed[0].sequence_number == last + 1
    assert [event.sequence_number for event in resumed] == list(range(last + 1, last + 1 + len(resumed)))
    assert resumed[-1].type == "response.completed"
    text = "".join(event.delta for event in [*seen, *resumed] if event.type == "response.output_text.delta")
    assert text == "You said: " + LONG
    # The stream helper skips what the client had, too.
    with openai_client.responses.stream(response_id=response.id, starting_after=last) as helper:
        assert next(event.sequence_number for event in helper) == last + 1


def test_a_background_response_is_cancelled(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input=LONG, background=True)
    stream = openai_client.responses.retrieve(response.id, stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    cancelled = openai_client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    assert cancelled.output[0].to_dict()["status"] == "incomplete"
    assert ("You said: " + LONG).startswith(cancelled.output_text)
    # The stream that was open ends: its item closes, and no terminal event follows (OpenAI has none).
    rest = [event.type for event in stream]
    assert rest[-1] == "response.output_item.done"
    assert "response.completed" not in rest
    assert openai_client.responses.retrieve(response.id).status == "cancelled"
    # Cancelling again answers the same response.
    assert openai_client.responses.cancel(response.id).status == "cancelled"


def test_only_a_background_response_can_be_cancelled(openai_client: OpenAI) -> None:
    response = openai_client.responses.create(model="builtin", input="quick")
    with pytest.raises(openai.BadRequestError) as raised:
        openai_client.responses.cancel(response.id)
    assert raised.value.code == "invalid_state"
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.cancel("resp_nope")
