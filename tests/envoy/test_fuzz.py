"""Property-based fuzzing of the JSON API: Schemathesis generates requests from the OpenAPI
document the gateway serves (`envoy/openapi.json`, generated from the protos and
`tools/json_shapes.py`, installed as `sovereign_envoy` package data), valid ones and malformed ones,
sends them through a real Envoy to a real server, and checks that none is answered with a 5xx and
that every 2xx body (each Server-Sent Event of a stream included) matches the document's response
schema.

Deterministic (Hypothesis derandomized, no example database) and bounded: a few dozen generated
cases per operation, besides Schemathesis's coverage cases (boundaries and type violations of every
field). Path ids and the body's `assistant_id` are those of real resources, so that requests reach
the checks behind a 404."""

from __future__ import annotations

import importlib.resources
import json
import time
import zlib
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from sovereign_server.gateway import ENVOY_FILES_PACKAGE, Gateway

pytestmark = pytest.mark.envoy

CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Generated cases per operation and mode; Schemathesis's coverage phase adds its own.
MAX_EXAMPLES = 25
STREAMING_PATHS = (
    "/v1/threads/{thread_id}/runs",
    "/v1/threads/runs",
    "/v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
    "/v1/responses",
)


def _wait_until_ended(http: httpx.Client, run: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while run["status"] in ("queued", "in_progress", "cancelling") and time.monotonic() < deadline:
        time.sleep(0.05)
        run = http.get(f"/threads/{run['thread_id']}/runs/{run['id']}").raise_for_status().json()
    return run


@pytest.fixture(scope="module")
def resources(gateway: Gateway) -> dict[str, str]:
    """Ids of an assistant, a thread, a message, an ended run and its step, a response, a
    conversation and its item, for path parameters."""
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as http:
        assistant = http.post("/assistants", json={"model": "builtin"}).raise_for_status().json()
        thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).raise_for_status().json()
        message = http.get(f"/threads/{thread['id']}/messages").raise_for_status().json()["data"][0]
        run = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).raise_for_status()
        ended = _wait_until_ended(http, run.json())
        step = http.get(f"/threads/{thread['id']}/runs/{ended['id']}/steps").raise_for_status().json()["data"][0]
        file = http.post(
            "/files", files={"file": ("notes.txt", b"Refunds within thirty days."), "purpose": (None, "assistants")}
        )
        store = http.post("/vector_stores", json={"file_ids": [file.raise_for_status().json()["id"]]})
        store_id = store.raise_for_status().json()["id"]
        batch = http.post(f"/vector_stores/{store_id}/file_batches", json={"file_ids": [file.json()["id"]]})
        response = http.post("/responses", json={"model": "builtin", "input": "hi"}).raise_for_status().json()
        items = [{"type": "message", "role": "user", "content": "hi"}]
        conversation = http.post("/conversations", json={"items": items}).raise_for_status().json()
        item = http.get(f"/conversations/{conversation['id']}/items").raise_for_status().json()["data"][0]
        return {
            "assistant_id": assistant["id"],
            "thread_id": thread["id"],
            "message_id": message["id"],
            "run_id": ended["id"],
            "step_id": step["id"],
            "file_id": file.json()["id"],
            "vector_store_id": store_id,
            "batch_id": batch.raise_for_status().json()["id"],
            "response_id": response["id"],
            "conversation_id": conversation["id"],
            "item_id": item["id"],
        }


# DELETE is left out: deleting the resources the other operations point at would make them 404s.
schema = schemathesis.openapi.from_dict(
    json.loads((importlib.resources.files(ENVOY_FILES_PACKAGE) / "openapi.json").read_text()),
    config=schemathesis.Config.from_dict(
        {
            "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            # Timing-dependent: a loaded machine must not fail the run.
            "suppress-health-check": ["too_slow"],
        }
    ),
).exclude(method="DELETE")


@schema.parametrize()
def test_no_server_error_and_every_2xx_matches_the_document(
    case: schemathesis.Case[Any], gateway: Gateway, resources: dict[str, str]
) -> None:
    for name in case.path_parameters or {}:
        case.path_parameters[name] = resources[name]
    if isinstance(case.body, dict):
        if isinstance(case.body.get("assistant_id"), str):
            case.body["assistant_id"] = resources["assistant_id"]
        # Generated run requests rarely set `stream`: stream half of them (chosen by their content,
        # so the same half every time) for their events to be checked too.
        if case.operation.path in STREAMING_PATHS and isinstance(case.body.get("stream", False), bool):
            case.body["stream"] = zlib.crc32(json.dumps(case.body, sort_keys=True, default=str).encode()) % 2 == 0
    case.call_and_validate(base_url=gateway.origin, checks=CHECKS, timeout=30)
