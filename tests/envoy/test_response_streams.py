"""Response routes through a real Envoy, in raw HTTP: OpenAI's SSE framing of response events
byte for byte (`event:` is the JSON's `type`, sequence numbers count from 0, no `[DONE]`), resumed
streams, the in-band error, and the JSON bodies of the other routes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sovereign_server.gateway import Gateway

pytestmark = pytest.mark.envoy

FRAME = re.compile(rb"event: ([a-z._]+)\ndata: (\{.+\})")


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as client:
        yield client


def stream_bytes(http: httpx.Client, method: str, path: str, **options: Any) -> tuple[httpx.Response, bytes]:
    with http.stream(method, path, **options) as response:
        return response, b"".join(response.iter_bytes())


def frames(body: bytes) -> list[tuple[str, Any]]:
    assert body.endswith(b"\n\n")
    parsed = []
    for frame in body[:-2].split(b"\n\n"):
        match = FRAME.fullmatch(frame)
        assert match, frame
        parsed.append((match.group(1).decode(), json.loads(match.group(2))))
    return parsed


def test_a_streamed_response_is_openai_sse_byte_for_byte(http: httpx.Client) -> None:
    response, body = stream_bytes(
        http, "POST", "/responses", json={"model": "builtin", "input": "alpha beta", "stream": True}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert "grpc-status" not in response.headers
    events = frames(body)
    assert b"[DONE]" not in body
    for number, (name, data) in enumerate(events):
        assert data["type"] == name
        assert data["sequence_number"] == number
    names = [name for name, _ in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    by_name = dict(events)
    item_id = by_name["response.output_item.added"]["item"]["id"]
    assert by_name["response.output_item.added"] == {
        "type": "response.output_item.added",
        "sequence_number": 2,
        "output_index": 0,
        "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []},
    }
    assert by_name["response.content_part.added"] == {
        "type": "response.content_part.added",
        "sequence_number": 3,
        "item_id": item_id,
        "output_index": 0,
        "content_index": 0,
        "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
    }
    deltas = [data for name, data in events if name == "response.output_text.delta"]
    for delta in deltas:
        assert set(delta) == {
            "type",
            "sequence_number",
            "item_id",
            "output_index",
            "content_index",
            "delta",
            "logprobs",
        }
        assert (delta["item_id"], delta["output_index"], delta["content_index"], delta["logprobs"]) == (
            item_id,
            0,
            0,
            [],
        )
    assert "".join(delta["delta"] for delta in deltas) == "You said: alpha beta"
    assert by_name["response.output_text.done"]["text"] == "You said: alpha beta"
    done = by_name["response.output_item.done"]["item"]
    assert done["status"] == "completed"
    assert done["content"] == [
        {"type": "output_text", "text": "You said: alpha beta", "annotations": [], "logprobs": []}
    ]
    completed = by_name["response.completed"]["response"]
    assert completed["status"] == "completed"
    assert completed["output"] == [done]
    assert type(completed["created_at"]) is int
    assert type(completed["usage"]["total_tokens"]) is int


def test_the_streamed_response_is_the_one_the_json_routes_return(http: httpx.Client) -> None:
    _, body = stream_bytes(http, "POST", "/responses", json={"model": "builtin", "input": "same bytes", "stream": True})
    completed = dict(frames(body))["response.completed"]["response"]
    retrieved = http.get(f"/responses/{completed['id']}")
    assert retrieved.headers["content-type"] == "application/json"
    assert retrieved.json() == completed
    # The gateway prints the same object from its protobuf message.
    created = http.post("/responses", json={"model": "builtin", "input": "x", "background": True}).json()
    cancelled = http.post(f"/responses/{created['id']}/cancel")
    assert cancelled.status_code == 200
    assert set(cancelled.json()) == set(completed)
    assert type(cancelled.json()["created_at"]) is int


def test_a_stored_response_streams_again_from_a_sequence_number(http: httpx.Client) -> None:
    created = http.post("/responses", json={"model": "builtin", "input": "once more"}).json()
    _, body = stream_bytes(http, "GET", f"/responses/{created['id']}", params={"stream": "true"})
    events = frames(body)
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    assert events[-1][1]["response"] == created
    _, rest = stream_bytes(http, "GET", f"/responses/{created['id']}", params={"stream": "true", "starting_after": 4})
    assert frames(rest) == events[5:]
    _, nothing = stream_bytes(
        http, "GET", f"/responses/{created['id']}", params={"stream": "true", "starting_after": 99}
    )
    assert nothing == b""


def test_a_failure_after_the_stream_began_is_an_error_event(http: httpx.Client) -> None:
    response, body = stream_bytes(
        http, "POST", "/responses", json={"model": "builtin", "input": "x [[engine-error]]", "stream": True}
    )
    assert response.status_code == 200
    events = frames(body)
    names = [name for name, _ in events]
    assert names[-2:] == ["error", "response.failed"]
    error = events[-2][1]
    assert error == {
        "type": "error",
        "sequence_number": error["sequence_number"],
        "code": "server_error",
        "message": "The built-in engine was asked to fail.",
        "param": None,
    }
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "server_error", "message": "The built-in engine was asked to fail."}


def test_errors_before_the_stream_are_openai_error_bodies(http: httpx.Client) -> None:
    response = http.post(
        "/responses", json={"model": "builtin", "input": [{"role": "robot", "content": "x"}], "stream": True}
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {
            "message": "Invalid value: 'robot'. Supported values are: 'user', 'assistant', 'system', 'developer'.",
            "type": "invalid_request_error",
            "param": "input[0].role",
            "code": "invalid_value",
        }
    }
    missing = http.get("/responses/resp_nope", params={"stream": "true"})
    assert missing.status_code == 404
    assert missing.json()["error"]["message"] == "No response found with id 'resp_nope'."
    typed = http.post("/responses", json={"model": 7, "input": "x"})
    assert typed.status_code == 400
    assert typed.json()["error"]["param"] == "model"


def test_list_and_delete_bodies(http: httpx.Client) -> None:
    conversation = http.post("/conversations", json={"items": [{"role": "user", "content": "hi"}]}).json()
    assert set(conversation) == {"id", "object", "created_at", "metadata"}
    assert conversation["metadata"] == {}
    items = http.get(f"/conversations/{conversation['id']}/items").json()
    assert items["object"] == "list"
    assert items["data"][0] == {
        "id": items["first_id"],
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": "hi"}],
    }
    empty = http.post("/conversations", json={}).json()
    assert http.get(f"/conversations/{empty['id']}/items").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    response = http.post("/responses", json={"model": "builtin", "input": "bye"}).json()
    assert http.delete(f"/responses/{response['id']}").json() == {
        "id": response["id"],
        "object": "response",
        "deleted": True,
    }
    assert http.delete(f"/conversations/{empty['id']}").json() == {
        "id": empty["id"],
        "object": "conversation.deleted",
        "deleted": True,
    }
    # Unknown query parameters (the SDK adds some) are ignored; `include[]` reaches the server.
    listed = http.get(f"/conversations/{conversation['id']}/items", params={"include[]": "bogus", "x": "1"})
    assert listed.status_code == 400
    assert listed.json()["error"]["param"] == "include[0]"
