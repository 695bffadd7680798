"""The gateway's own behaviour, through a real Envoy in front of a fake gRPC server: OpenAI's error
bodies for every kind of failure, the JSON shape, pass-through event streams, CORS, docs, and the
process life cycle of `Gateway`."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

import httpx
import openai
import pytest

from sovereign_server.gateway import Gateway, GatewayConfig, GatewayError

from .conftest import SSE_FRAMES

pytestmark = pytest.mark.envoy

GRPC_HEADERS = ("grpc-status", "grpc-message", "grpc-status-details-bin", "x-openai-error")


def assert_openai_error(response: httpx.Response, status: int, error_type: str = "invalid_request_error") -> Any:
    """Checks OpenAI's error shape and returns the inner `error` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    for name in GRPC_HEADERS:
        assert name not in response.headers
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["type"] == error_type
    return error


async def test_health_is_the_servers_health_check(http: httpx.AsyncClient) -> None:
    response = await http.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "SERVING"}
    assert "grpc-status" not in response.headers


async def test_json_keys_are_proto_names_and_numbers_are_numbers(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/assistants", json={"model": "m", "instructions": "Be brief.", "unknown": 1})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "id": "asst_1",
        "object": "assistant",
        "created_at": 1700000000,
        "name": None,
        "model": "m",
        "instructions": "Be brief.",
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "response_format": "auto",
    }
    for name in GRPC_HEADERS:
        assert name not in response.headers


async def test_grpc_error_body_is_the_servers_openai_error(http: httpx.AsyncClient) -> None:
    response = await http.get("/v1/assistants/asst_missing")
    error = assert_openai_error(response, 404)
    assert error == {
        "message": "No assistant found with id 'asst_missing'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


async def test_grpc_error_without_openai_body_uses_the_status_message(http: httpx.AsyncClient) -> None:
    response = await http.delete("/v1/assistants/asst_1")
    error = assert_openai_error(response, 400)
    assert error["message"] == "Assistant « busy »\nretry later"
    assert error["param"] is None


async def test_unknown_route_is_404(http: httpx.AsyncClient) -> None:
    error = assert_openai_error(await http.get("/v1/nothing/here"), 404)
    assert "/v1/nothing/here" in error["message"]
    assert_openai_error(await http.put("/v1/assistants"), 404)


async def test_body_over_4_mib_is_413(http: httpx.AsyncClient) -> None:
    body = json.dumps({"model": "m", "instructions": "x" * (5 * 1024 * 1024)})
    response = await http.post("/v1/assistants", content=body, headers={"content-type": "application/json"})
    assert_openai_error(response, 413)


async def test_malformed_json_is_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/assistants", content=b'{"model": ', headers={"content-type": "application/json"})
    error = assert_openai_error(response, 400)
    assert error["param"] is None


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m", "temperature": "hot"}, "temperature"),
        ({"model": "m", "tools": [{"type": 3}]}, "tools[0].type"),
    ],
)
async def test_wrongly_typed_field_is_400_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    error = assert_openai_error(await http.post("/v1/assistants", json=body), 400)
    assert error["param"] == param
    assert error["code"] == "invalid_type"


async def test_wrongly_typed_query_parameter_is_400(http: httpx.AsyncClient) -> None:
    error = assert_openai_error(await http.get("/v1/threads/t/runs/r/steps", params={"limit": "many"}), 400)
    assert error["param"] == "limit"


async def test_query_parameters_sdk_arrays_and_unknown_names(http: httpx.AsyncClient) -> None:
    # The SDK writes `include[]=a&include[]=b`; unknown parameters are ignored.
    response = await http.get("/v1/threads/t/runs/r/steps?include[]=a&include%5B%5D=b&limit=5&extra=1")
    assert response.status_code == 200, response.text
    assert response.json() == {"object": "list", "data": [], "first_id": "a,b", "last_id": None, "has_more": True}


async def test_event_stream_passes_through_unchanged(http: httpx.AsyncClient) -> None:
    async with http.stream("POST", "/v1/threads/thread_1/runs", json={"assistant_id": "a", "stream": True}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/event-stream"
        body = b"".join([chunk async for chunk in r.aiter_bytes()])
    assert body == b"".join(SSE_FRAMES)


async def test_http_body_json_response(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/threads/thread_1/runs", json={"assistant_id": "a"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"id": "run_1"}


async def test_cors_preflight_is_answered(http: httpx.AsyncClient) -> None:
    response = await http.options(
        "/v1/assistants",
        headers={
            "origin": "http://localhost:3000",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, openai-beta, x-stainless-os",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type", "openai-beta", "x-stainless-os"} <= allowed


async def test_openapi_document(http: httpx.AsyncClient) -> None:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert {"get", "post"} <= set(document["paths"]["/v1/assistants"])
    assert "/health" not in document["paths"]


async def test_docs_page_and_swagger_ui_assets(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/docs/swagger-ui-bundle.js" in page.text
    assert "/openapi.json" in page.text
    script = await http.get("/docs/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 100_000
    css = await http.get("/docs/swagger-ui.css")
    assert css.status_code == 200
    assert css.headers["content-type"].startswith("text/css")


# The SDK marks every Assistants method deprecated, with the bare message "deprecated", attributed to
# the caller's module (so a filter on the `openai` module does not catch it).
@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")
async def test_sdk_raises_typed_errors(fake_gateway: Gateway) -> None:
    async with openai.AsyncOpenAI(base_url=fake_gateway.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.NotFoundError) as not_found:
            await client.beta.assistants.retrieve("asst_missing")
        assert not_found.value.type == "invalid_request_error"
        assert not_found.value.message.endswith("No assistant found with id 'asst_missing'.")

        with pytest.raises(openai.BadRequestError) as invalid:
            await client.beta.assistants.create(model="invalid")
        assert (invalid.value.param, invalid.value.code) == ("model", "model_not_found")

        with pytest.raises(openai.BadRequestError) as wrong_type:
            await client.beta.assistants.create(model="m", temperature="hot")  # type: ignore[arg-type]
        assert (wrong_type.value.param, wrong_type.value.code) == ("temperature", "invalid_type")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_start_waits_for_the_upstream_and_cleans_up_on_timeout() -> None:
    gateway = Gateway(GatewayConfig(grpc_port=closed_port(), http_port=0))
    with pytest.raises(GatewayError, match="did not become ready"):
        await gateway.astart(ready_within=1.0)
    assert not gateway.running()
    assert gateway.pid is None


async def test_upstream_down_is_503_server_error_when_not_waiting() -> None:
    gateway = Gateway(GatewayConfig(grpc_port=closed_port(), http_port=0))
    await gateway.astart(wait_for_upstream=False)
    try:
        async with httpx.AsyncClient(base_url=gateway.origin, trust_env=False) as client:
            response = await client.get("/v1/assistants")
        assert_openai_error(response, 503, "server_error")
    finally:
        await gateway.astop()


async def test_stop_leaves_no_process(fake_server: int) -> None:
    gateway = Gateway(GatewayConfig(grpc_port=fake_server, http_port=0))
    await gateway.astart()
    pid, run_dir = gateway.pid, gateway.log_path
    assert pid is not None
    assert run_dir is not None
    await gateway.astop()
    await gateway.astop()  # idempotent
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not run_dir.parent.exists()


async def test_busy_port_fails_to_start(fake_server: int) -> None:
    # The gRPC server's own port: Envoy must not share it (SO_REUSEPORT) but fail.
    with pytest.raises(GatewayError, match="cannot bind"):
        await Gateway(GatewayConfig(grpc_port=fake_server, http_port=fake_server)).astart()
