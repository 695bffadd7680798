"""Malformed bodies through the real gateway and server: each is a 400 with OpenAI's error object
naming the parameter, and nothing is stored. Bodies are raw JSON bytes, as `curl -d` sends them,
e.g. `curl -s localhost:8080/v1/assistants -H 'content-type: application/json'
-d '{"model": "m", "metadata": {"k": {}}}'`, which once produced protobuf the server could not parse."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from sovereign_server.gateway import Gateway

pytestmark = pytest.mark.envoy


@pytest.fixture(scope="module")
def http(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def ids(http: httpx.Client) -> dict[str, str]:
    """An assistant, a thread with one message, and a run that has ended, for the routes' paths."""
    assistant = http.post("/assistants", json={"model": "builtin"}).json()
    thread = http.post("/threads", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    message = http.get(f"/threads/{thread['id']}/messages").json()["data"][0]
    run = http.post(f"/threads/{thread['id']}/runs", json={"assistant_id": assistant["id"]}).json()
    return {"assistant": assistant["id"], "thread": thread["id"], "message": message["id"], "run": run["id"]}


def post_raw(http: httpx.Client, path: str, body: str) -> httpx.Response:
    return http.post(path, content=body.encode(), headers={"content-type": "application/json"})


def assert_bad_request(response: httpx.Response, param: str | None, code: str | None) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


# Every place a request takes metadata: (path template, raw body, the param the error names).
METADATA_OBJECT_VALUES = [
    ("/assistants", '{"model": "builtin", "metadata": {"k": {}}}', "metadata.k"),
    ("/assistants/{assistant}", '{"metadata": {"k": {}}}', "metadata.k"),
    ("/threads", '{"metadata": {"k": {"nested": "v"}}}', "metadata.k"),
    ("/threads", '{"messages": [{"role": "user", "content": "hi", "metadata": {"k": {}}}]}', "messages[0].metadata.k"),
    ("/threads/{thread}", '{"metadata": {"k": {}}}', "metadata.k"),
    ("/threads/{thread}/messages", '{"role": "user", "content": "hi", "metadata": {"k": {}}}', "metadata.k"),
    ("/threads/{thread}/messages/{message}", '{"metadata": {"k": {}}}', "metadata.k"),
    ("/threads/{thread}/runs", '{"assistant_id": "{assistant}", "metadata": {"k": {}}}', "metadata.k"),
    (
        "/threads/{thread}/runs",
        '{"assistant_id": "{assistant}", "additional_messages": '
        '[{"role": "user", "content": "x", "metadata": {"k": {}}}]}',
        "additional_messages[0].metadata.k",
    ),
    ("/threads/{thread}/runs/{run}", '{"metadata": {"k": {}}}', "metadata.k"),
    ("/threads/runs", '{"assistant_id": "{assistant}", "metadata": {"k": {}}}', "metadata.k"),
    ("/threads/runs", '{"assistant_id": "{assistant}", "thread": {"metadata": {"k": {}}}}', "thread.metadata.k"),
    ("/threads/runs", '{"assistant_id": "{assistant}", "metadata": {"k": 1}}', "metadata.k"),
    ("/threads/runs", '{"assistant_id": "{assistant}", "metadata": {"k": ["v"]}}', "metadata.k"),
]


def fill(template: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        template = template.replace(f"{{{name}}}", value)
    return template


@pytest.mark.parametrize(("path", "body", "param"), METADATA_OBJECT_VALUES)
def test_a_metadata_value_that_is_not_a_string_is_a_400_naming_it(
    http: httpx.Client, ids: dict[str, str], path: str, body: str, param: str
) -> None:
    assert_bad_request(post_raw(http, fill(path, ids), fill(body, ids)), param, "invalid_type")


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "builtin", "name": "\\ud800"}',
        b'{"model": "builtin", "name": "\xff\xfe"}',
        b'{"model": "builtin", "metadata": {"k": "\xff"}}',
    ],
    ids=["lone surrogate", "invalid UTF-8", "invalid UTF-8 in metadata"],
)
def test_text_that_is_not_unicode_is_a_400(http: httpx.Client, body: bytes) -> None:
    response = http.post("/assistants", content=body, headers={"content-type": "application/json"})
    assert_bad_request(response, None, None)


# Bodies that were once stored unchecked and echoed back against OpenAI's response schemas.
UNCHECKED_SHAPES = [
    (
        "/assistants",
        {"tool_resources": {"file_search": {"vector_store_ids": [{}]}}},
        "tool_resources.file_search.vector_store_ids[0]",
        "invalid_type",
    ),
    (
        "/assistants",
        {"tool_resources": {"code_interpreter": {"file_ids": "f"}}},
        "tool_resources.code_interpreter.file_ids",
        "invalid_type",
    ),
    ("/assistants", {"tool_resources": {"files": []}}, "tool_resources.files", "unknown_parameter"),
    (
        "/assistants",
        {"response_format": {"type": "json_schema"}},
        "response_format.json_schema",
        "missing_required_parameter",
    ),
    (
        "/assistants",
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
        "missing_required_parameter",
    ),
    (
        "/assistants",
        {"tools": [{"type": "file_search", "file_search": {"max_results": 3}}]},
        "tools[0].file_search.max_results",
        "unknown_parameter",
    ),
    (
        "/assistants",
        {"tools": [{"type": "file_search", "file_search": {"max_num_results": "3"}}]},
        "tools[0].file_search.max_num_results",
        "invalid_type",
    ),
    (
        "/assistants",
        {"tools": [{"type": "file_search", "file_search": {"ranking_options": {"ranker": "auto"}}}]},
        "tools[0].file_search.ranking_options.score_threshold",
        "missing_required_parameter",
    ),
    (
        "/threads",
        {"tool_resources": {"file_search": {"vector_store_ids": [{}]}}},
        "tool_resources.file_search.vector_store_ids[0]",
        "invalid_type",
    ),
    (
        "/threads",
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
        "messages[0].content[0].image_url.url",
        "invalid_value",
    ),
    (
        "/threads/runs",
        {"tools": [{"type": "file_search", "file_search": {"k": 1}}]},
        "tools[0].file_search.k",
        "unknown_parameter",
    ),
    ("/threads/runs", {"tool_choice": {"type": "function"}}, "tool_choice.function", "missing_required_parameter"),
    (
        "/threads/runs",
        {"truncation_strategy": {"type": "last_messages"}},
        "truncation_strategy.last_messages",
        "missing_required_parameter",
    ),
    (
        "/threads/runs",
        {"response_format": {"type": "text", "json_schema": {}}},
        "response_format.json_schema",
        "unknown_parameter",
    ),
    ("/threads/runs", {"tools": [{"type": "code_interpreter"}] * 21}, "tools", "array_above_max_length"),
    (
        "/threads/runs",
        {"thread": {"tool_resources": {"code_interpreter": {"file_ids": [1]}}}},
        "thread.tool_resources.code_interpreter.file_ids[0]",
        "invalid_type",
    ),
]


@pytest.mark.parametrize(("path", "fields", "param", "code"), UNCHECKED_SHAPES)
def test_shapes_openai_documents_are_checked_and_nothing_is_stored(
    http: httpx.Client, ids: dict[str, str], path: str, fields: dict[str, object], param: str, code: str
) -> None:
    required = {"/assistants": {"model": "builtin"}, "/threads/runs": {"assistant_id": ids["assistant"]}}
    before = {
        "assistants": http.get("/assistants", params={"limit": 100}).json()["data"],
        "runs": http.get(f"/threads/{ids['thread']}/runs", params={"limit": 100}).json()["data"],
    }
    assert_bad_request(http.post(path, json={**required.get(path, {}), **fields}), param, code)
    assert http.get("/assistants", params={"limit": 100}).json()["data"] == before["assistants"]
    assert http.get(f"/threads/{ids['thread']}/runs", params={"limit": 100}).json()["data"] == before["runs"]
