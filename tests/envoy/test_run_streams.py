"""Run routes through a real Envoy, in raw HTTP: OpenAI's SSE framing byte for byte, and the
JSON run when `stream` is false."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sovereign_server.gateway import Gateway
from tests.conftest import merged_deltas, reply_events

pytestmark = pytest.mark.envoy

FRAME = re.compile(rb"event: ([a-z._]+)\ndata: (.+)")


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def assistant_id(http: httpx.Client) -> str:
    return str(http.post("/assistants", json={"model": "builtin"}).json()["id"])


def new_thread(http: httpx.Client, text: str) -> str:
    return str(http.post("/threads", json={"messages": [{"role": "user", "content": text}]}).json()["id"])


def stream_bytes(http: httpx.Client, path: str, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with http.stream("POST", path, json=body) as response:
        return response, b"".join(response.iter_bytes())


def frames(body: bytes) -> list[tuple[str, Any]]:
    assert body.endswith(b"\n\n")
    parsed = []
    for frame in body[:-2].split(b"\n\n"):
        match = FRAME.fullmatch(frame)
        assert match, frame
        name, data = match.group(1).decode(), match.group(2)
        parsed.append((name, data.decode() if data == b"[DONE]" else json.loads(data)))
    return parsed


def test_streamed_run_is_openai_sse_byte_for_byte(http: httpx.Client, assistant_id: str) -> None:
    thread_id = new_thread(http, "alpha beta")
    response, body = stream_bytes(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert "grpc-status" not in response.headers
    events = frames(body)
    assert merged_deltas([name for name, _ in events]) == reply_events()
    assert body.endswith(b"event: done\ndata: [DONE]\n\n")
    deltas = [data for name, data in events if name == "thread.message.delta"]
    message_id = events[5][1]["id"]
    for delta in deltas:
        text = delta["delta"]["content"][0]["text"]["value"]
        assert delta == {
            "id": message_id,
            "object": "thread.message.delta",
            "delta": {"content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]},
        }
    assert "".join(d["delta"]["content"][0]["text"]["value"] for d in deltas) == "You said: alpha beta"


def test_stream_objects_equal_what_the_json_routes_return(http: httpx.Client, assistant_id: str) -> None:
    thread_id = new_thread(http, "same bytes")
    _, body = stream_bytes(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    events = dict(frames(body))
    run = events["thread.run.completed"]
    assert type(run["created_at"]) is int
    assert type(run["usage"]["total_tokens"]) is int
    assert run == http.get(f"/threads/{thread_id}/runs/{run['id']}").json()
    message = events["thread.message.completed"]
    assert message == http.get(f"/threads/{thread_id}/messages/{message['id']}").json()
    step = events["thread.run.step.completed"]
    assert step == http.get(f"/threads/{thread_id}/runs/{run['id']}/steps/{step['id']}").json()


def test_run_without_stream_is_one_json_run(http: httpx.Client, assistant_id: str) -> None:
    thread_id = new_thread(http, "no stream")
    response = http.post(f"/threads/{thread_id}/runs", json={"assistant_id": assistant_id})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    run = response.json()
    assert (run["object"], run["status"], run["thread_id"]) == ("thread.run", "queued", thread_id)
    assert (run["started_at"], run["completed_at"], run["usage"], run["last_error"]) == (None, None, None, None)
    assert run["truncation_strategy"] == {"type": "auto", "last_messages": None}
    assert (run["tool_choice"], run["response_format"], run["parallel_tool_calls"]) == ("auto", "auto", True)


def test_errors_before_the_stream_are_http_errors(http: httpx.Client, assistant_id: str) -> None:
    response, body = stream_bytes(http, "/threads/thread_missing/runs", {"assistant_id": assistant_id, "stream": True})
    assert response.status_code == 404
    assert json.loads(body) == {
        "error": {
            "message": "No thread found with id 'thread_missing'.",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_create_thread_and_run_stream_begins_with_the_thread(http: httpx.Client, assistant_id: str) -> None:
    _, body = stream_bytes(
        http,
        "/threads/runs",
        {"assistant_id": assistant_id, "stream": True, "thread": {"messages": [{"role": "user", "content": "x"}]}},
    )
    events = frames(body)
    assert events[0][0] == "thread.created"
    assert events[0][1]["object"] == "thread"
    assert events[-2][0] == "thread.run.completed"


def test_include_array_parameter_of_run_steps_is_accepted(http: httpx.Client, assistant_id: str) -> None:
    thread_id = new_thread(http, "steps")
    _, body = stream_bytes(http, f"/threads/{thread_id}/runs", {"assistant_id": assistant_id, "stream": True})
    run_id = dict(frames(body))["thread.run.completed"]["id"]
    steps = http.get(
        f"/threads/{thread_id}/runs/{run_id}/steps",
        params={"include[]": "step_details.tool_calls[*].file_search.results[*].content"},
    )
    assert steps.status_code == 200
    assert [step["type"] for step in steps.json()["data"]] == ["message_creation"]
