"""Request bytes that are not the request message, straight over gRPC: INVALID_ARGUMENT with
OpenAI's error object, on unary and streaming methods alike, never UNKNOWN (a 500 through the
gateway)."""

from __future__ import annotations

import json

import grpc
import pytest

from tests.conftest import ServerThread

pytestmark = pytest.mark.grpc

# `model` (field 1, length-delimited) claiming 5 bytes where 2 follow; and a string that is not UTF-8.
CORRUPT = b"\x0a\x05ab"
BAD_UTF8 = b"\x0a\x02\xff\xfe"


def _raw(data: bytes) -> bytes:
    return data


async def _call(channel: grpc.aio.Channel, method: str, streaming: bool, payload: bytes) -> None:
    """Sends `payload` as the request and reads the whole response."""
    if not streaming:
        await channel.unary_unary(method, request_serializer=_raw, response_deserializer=_raw)(payload)
        return
    async for _ in channel.unary_stream(method, request_serializer=_raw, response_deserializer=_raw)(payload):
        pass


@pytest.mark.parametrize("payload", [CORRUPT, BAD_UTF8], ids=["corrupt", "bad utf-8"])
@pytest.mark.parametrize(
    ("method", "streaming"),
    [
        ("/sovereign_assistant.v1.AssistantService/CreateAssistant", False),
        ("/sovereign_assistant.v1.ThreadService/CreateThread", False),
        ("/sovereign_assistant.v1.RunService/CreateRun", True),
        ("/sovereign_assistant.v1.RunService/CreateThreadAndRunEvents", True),
    ],
)
async def test_undecodable_request_is_invalid_argument_with_openais_body(
    grpc_server: ServerThread, method: str, streaming: bool, payload: bytes
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_server.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _call(channel, method, streaming, payload)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailers = dict(caught.value.trailing_metadata() or ())
    error = json.loads(trailers["x-openai-error"])["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", None, None)
    assert error["message"].startswith("We could not parse the body of your request")
