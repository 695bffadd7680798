"""Fixtures for raw-HTTP tests through a real Envoy.

`gateway` fronts the real server (`grpc_server` from tests/conftest.py); `fake_gateway` fronts
`FakeServer`, a few hand-written RPCs that produce exactly the responses the gateway must shape
(errors with and without OpenAI's body, an event stream, echoes), independent of the real servicers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest
from google.api import httpbody_pb2
from google.protobuf import struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from sovereign_assistant.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    common_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
)
from sovereign_server.gateway import Gateway, GatewayConfig

# The servicers below are untyped on the message side; the stubs only check method signatures.
Context = grpc.aio.ServicerContext[Any, Any]

OPENAI_ERROR_KEY = "x-openai-error"
SSE_FRAMES = (
    b'event: thread.run.created\ndata: {"id":"run_1","object":"thread.run"}\n\n',
    b'event: thread.message.delta\ndata: {"id":"msg_1","delta":{"content":[]}}\n\n',
    b"event: done\ndata: [DONE]\n\n",
)


def openai_error(message: str, *, param: str | None = None, code: str | None = None) -> str:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return json.dumps(body, separators=(",", ":"))


class FakeAssistants(assistant_service_pb2_grpc.AssistantServiceServicer):
    async def GetAssistant(
        self, request: assistant_service_pb2.GetAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        message = f"No assistant found with id '{request.assistant_id}'."
        await context.abort(grpc.StatusCode.NOT_FOUND, message, ((OPENAI_ERROR_KEY, openai_error(message)),))

    async def CreateAssistant(
        self, request: assistant_service_pb2.CreateAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        if request.model == "invalid":
            error = openai_error("Invalid model.", param="model", code="model_not_found")
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid model.", ((OPENAI_ERROR_KEY, error),))
        assistant = assistant_pb2.Assistant(
            id="asst_1", object="assistant", created_at=1700000000, model=request.model, tools=request.tools
        )
        assistant.metadata.update({key: str(value) for key, value in request.metadata.items()})
        assistant.name.null_value = struct_pb2.NULL_VALUE
        assistant.instructions.string_value = request.instructions
        assistant.tool_resources.SetInParent()
        assistant.response_format.string_value = "auto"
        return assistant

    async def DeleteAssistant(
        self, request: assistant_service_pb2.DeleteAssistantRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        # An error without OpenAI's body: the gateway must build one from the status message.
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "Assistant « busy »\nretry later")


class FakeRuns(run_service_pb2_grpc.RunServiceServicer):
    async def CreateRun(
        self, request: run_service_pb2.CreateRunRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        if not request.stream:
            yield httpbody_pb2.HttpBody(content_type="application/json", data=b'{"id":"run_1"}')
            return
        for index, frame in enumerate(SSE_FRAMES):
            # Only the first message's content type counts: Envoy takes the headers from it.
            yield httpbody_pb2.HttpBody(content_type="text/event-stream" if index == 0 else "", data=frame)
            await asyncio.sleep(0.01)

    async def ListRunSteps(
        self, request: run_service_pb2.ListRunStepsRequest, context: Context
    ) -> run_service_pb2.ListRunStepsResponse:
        # Echoes what reached the server, so tests can see the query string mapping.
        response = run_service_pb2.ListRunStepsResponse(object="list", has_more=request.limit > 1)
        response.first_id.string_value = ",".join(request.include)
        response.last_id.null_value = struct_pb2.NULL_VALUE
        return response


@pytest.fixture(scope="module")
async def fake_server() -> AsyncIterator[int]:
    """`FakeAssistants`, `FakeRuns` and a SERVING health service on a free port; yields the port."""
    server = grpc.aio.server()
    # The generated servicer bases declare every RPC abstract; the fakes implement a few (the others
    # answer UNIMPLEMENTED, as gRPC's base methods do).
    assistant_service_pb2_grpc.add_AssistantServiceServicer_to_server(FakeAssistants(), server)  # type: ignore[abstract]
    run_service_pb2_grpc.add_RunServiceServicer_to_server(FakeRuns(), server)  # type: ignore[abstract]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    yield port
    await server.stop(grace=None)


@pytest.fixture(scope="module")
async def fake_gateway(fake_server: int) -> AsyncIterator[Gateway]:
    async with Gateway(GatewayConfig(grpc_port=fake_server, http_port=0)) as gateway:
        yield gateway


@pytest.fixture
async def http(fake_gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    # trust_env=False: a proxy variable must not reroute loopback traffic.
    async with httpx.AsyncClient(base_url=fake_gateway.origin, trust_env=False, timeout=10.0) as client:
        yield client
