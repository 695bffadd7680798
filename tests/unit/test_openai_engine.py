"""The OpenAI-compatible engine against scripted HTTP servers on loopback: request mapping, routing,
usage counting, and every fault ending in an `EngineError` rather than a hang. (Against a real
llama-server: tests/llama.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sovereign_server.engines import (
    ChatMessage,
    EngineError,
    Finish,
    FunctionTool,
    GenerationRequest,
    ImagePart,
    TextDelta,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from sovereign_server.engines.openai_compat import (
    Backend,
    OpenAICompatibleEngine,
    Routing,
    completion_parameters,
    routing_from_file,
)
from sovereign_server.engines.tokens import IMAGE_TOKENS
from tests.images import png_url

pytestmark = pytest.mark.unit

Handler = Callable[[dict[str, Any], asyncio.StreamWriter], Awaitable[None]]


class ScriptedServer:
    """A loopback HTTP/1.1 server whose answer to each POST is written by a test's `handler`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            body = json.loads(await reader.readexactly(length))
            self.requests.append(body)
            await self._handler(body, writer)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


def sse_head() -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n"


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, usage: Any = None) -> bytes:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": []}
    if delta is not None or finish is not None:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    if usage is not None:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def replying(*frames: bytes, pause: float = 0.0) -> Handler:
    async def handle(body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        writer.write(sse_head())
        for frame in frames:
            writer.write(frame)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)

    return handle


def answering(status: int, error: dict[str, Any]) -> Handler:
    async def handle(body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        payload = json.dumps({"error": error}).encode()
        writer.write(
            f"HTTP/1.1 {status} Error\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            "connection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    return handle


REQUEST = GenerationRequest(
    model="tiny",
    messages=(ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Price of AAPL?")),
)


async def collect(engine: OpenAICompatibleEngine, request: GenerationRequest = REQUEST) -> list[Any]:
    return [item async for item in engine.generate(request)]


def engine_for(server: ScriptedServer, **backend: Any) -> OpenAICompatibleEngine:
    return OpenAICompatibleEngine.for_url(server.base_url, **backend)


async def test_text_and_usage_stream_through() -> None:
    usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
    frames = (
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk(finish="stop"),
        chunk(usage=usage),
        b"data: [DONE]\n\n",
    )
    async with ScriptedServer(replying(*frames)) as server:
        engine = engine_for(server)
        assert await collect(engine) == [TextDelta("Hel"), TextDelta("lo"), Finish("stop", Usage(11, 2))]
        await engine.aclose()
    sent = server.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Price of AAPL?"},
    ]


async def test_no_usage_is_made_up_when_the_server_reports_none() -> None:
    # The run keeps its own count of the prompt it sent and of the fragments it received.
    frames = (chunk({"content": "a"}), chunk({"content": "b"}), chunk(finish="stop"), b"data: [DONE]\n\n")
    async with ScriptedServer(replying(*frames)) as server:
        engine = engine_for(server)
        finish = (await collect(engine))[-1]
        await engine.aclose()
    assert finish == Finish("stop", None)


async def test_tool_call_fragments_and_finish_reason() -> None:
    frames = (
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_price", "arguments": ""}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"ticker": '}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"AAPL"}'}}]}),
        chunk(finish="tool_calls"),
        b"data: [DONE]\n\n",
    )
    async with ScriptedServer(replying(*frames)) as server:
        engine = engine_for(server)
        chunks = await collect(engine)
        await engine.aclose()
    assert chunks[:3] == [
        ToolCallDelta(0, "call_1", "get_price", ""),
        ToolCallDelta(0, None, None, '{"ticker": '),
        ToolCallDelta(0, None, None, '"AAPL"}'),
    ]
    assert isinstance(chunks[-1], Finish)
    assert chunks[-1].reason == "tool_calls"


def test_the_whole_context_and_every_option_are_passed() -> None:
    request = GenerationRequest(
        model="m",
        messages=(
            ChatMessage(role="user", content="price?"),
            ChatMessage(role="assistant", content="", tool_calls=(ToolCall("call_1", "get_price", "{}"),)),
            ChatMessage(role="tool", content="187.2", tool_call_id="call_1"),
        ),
        tools=(FunctionTool("get_price", "Latest price", {"type": "object"}, True),),
        tool_choice="required",
        parallel_tool_calls=False,
        temperature=0.2,
        top_p=0.9,
        response_format={"type": "json_object"},
        max_completion_tokens=300,
    )
    parameters = completion_parameters(request, "upstream-name")
    assert parameters["model"] == "upstream-name"
    assert parameters["messages"][1] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_price", "arguments": "{}"}}],
    }
    assert parameters["messages"][2] == {"role": "tool", "tool_call_id": "call_1", "content": "187.2"}
    assert parameters["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_price",
                "description": "Latest price",
                "parameters": {"type": "object"},
                "strict": True,
            },
        }
    ]
    assert (parameters["tool_choice"], parameters["parallel_tool_calls"]) == ("required", False)
    assert (parameters["temperature"], parameters["top_p"], parameters["max_completion_tokens"]) == (0.2, 0.9, 300)
    assert parameters["response_format"] == {"type": "json_object"}


async def test_models_are_routed_to_their_backend_and_unknown_models_fail_clearly() -> None:
    frames = (chunk({"content": "x"}), chunk(finish="stop"), b"data: [DONE]\n\n")
    async with ScriptedServer(replying(*frames)) as first, ScriptedServer(replying(*frames)) as second:
        routing = Routing(
            backends={"a": Backend(first.base_url), "b": Backend(second.base_url, model="served-name")},
            models={"tiny": "a", "big": "b"},
        )
        engine = OpenAICompatibleEngine(routing)
        await collect(engine, GenerationRequest(model="big", messages=REQUEST.messages))
        assert (first.requests, second.requests[0]["model"]) == ([], "served-name")
        with pytest.raises(EngineError, match="No backend is configured for model 'other'"):
            await collect(engine, GenerationRequest(model="other", messages=REQUEST.messages))
        await engine.aclose()


def test_routing_reads_a_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "backends.toml"
    path.write_text(
        'default = "vllm"\n[backends.vllm]\nbase_url = "http://gpu:8000/v1"\nmax_concurrency = 64\n'
        '[backends.ollama]\nbase_url = "http://127.0.0.1:11434/v1"\n[models]\n"llama3.1" = "ollama"\n'
    )
    routing = routing_from_file(str(path))
    assert routing.backend_for("llama3.1")[1].base_url == "http://127.0.0.1:11434/v1"
    assert routing.backend_for("anything")[1].max_concurrency == 64
    path.write_text('default = "missing"\n')
    with pytest.raises(ValueError, match="names backend 'missing'"):
        routing_from_file(str(path))


async def test_connection_refused_is_an_engine_error() -> None:
    async with ScriptedServer(replying()) as server:
        url = server.base_url
    engine = OpenAICompatibleEngine.for_url(url)
    with pytest.raises(EngineError, match="Could not connect to the model server"):
        await collect(engine)
    await engine.aclose()


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (429, "rate_limit_exceeded", "rate limiting"),
        (400, "server_error", "answered HTTP 400"),
        (503, "server_error", "answered HTTP 503"),
    ],
)
async def test_http_errors_become_engine_errors(status: int, code: str, message: str) -> None:
    async with ScriptedServer(answering(status, {"message": "nope", "type": "x"})) as server:
        engine = engine_for(server)
        with pytest.raises(EngineError, match=message) as caught:
            await collect(engine)
        await engine.aclose()
    assert caught.value.code == code


async def test_silence_before_the_first_token_times_out() -> None:
    async def silent(body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        writer.write(sse_head())
        await asyncio.sleep(5)

    async with ScriptedServer(silent) as server:
        engine = engine_for(server, first_token_timeout=0.2)
        with pytest.raises(EngineError, match=r"sent nothing for 0\.2 seconds"):
            await collect(engine)
        await engine.aclose()


async def test_silence_between_tokens_times_out() -> None:
    async with ScriptedServer(replying(chunk({"content": "a"}), pause=5)) as server:
        engine = engine_for(server, token_timeout=0.2)
        with pytest.raises(EngineError, match=r"sent nothing for 0\.2 seconds"):
            await collect(engine)
        await engine.aclose()


async def test_a_stream_cut_before_finishing_is_an_engine_error() -> None:
    async with ScriptedServer(replying(chunk({"content": "a"}))) as server:
        engine = engine_for(server)
        with pytest.raises(EngineError, match=r"without finishing|broke off"):
            await collect(engine)
        await engine.aclose()


async def test_a_malformed_chunk_is_an_engine_error() -> None:
    async with ScriptedServer(replying(chunk({"content": "a"}), b"data: {not json\n\n")) as server:
        engine = engine_for(server)
        with pytest.raises(EngineError, match="broke off"):
            await collect(engine)
        await engine.aclose()


async def test_closing_the_stream_closes_the_upstream_request() -> None:
    closed = asyncio.Event()

    async def endless(body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        writer.write(sse_head())
        try:
            while True:
                writer.write(chunk({"content": "x"}))
                await writer.drain()
                await asyncio.sleep(0.01)
        except ConnectionError:
            closed.set()

    async with ScriptedServer(endless) as server:
        engine = engine_for(server)
        stream = engine.generate(REQUEST)
        assert isinstance(stream, AsyncIterator)
        assert await anext(stream) == TextDelta("x")
        await stream.aclose()  # type: ignore[attr-defined]
        await asyncio.wait_for(closed.wait(), 5)
        await engine.aclose()


async def test_concurrency_per_backend_is_bounded() -> None:
    active = 0
    peak = 0

    async def slow(body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        writer.write(sse_head() + chunk(finish="stop") + b"data: [DONE]\n\n")
        await writer.drain()
        active -= 1

    async with ScriptedServer(slow) as server:
        engine = engine_for(server, max_concurrency=2)
        await asyncio.gather(*(collect(engine) for _ in range(6)))
        await engine.aclose()
    assert peak == 2


async def test_a_connection_closed_before_any_response_is_retried() -> None:
    attempts = 0

    async def flaky(body: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            return  # closes the connection without answering, as a server dropping a kept-alive one
        writer.write(sse_head() + chunk({"content": "ok"}) + chunk(finish="stop") + b"data: [DONE]\n\n")
        await writer.drain()

    async with ScriptedServer(flaky) as server:
        engine = engine_for(server)
        assert (await collect(engine))[0] == TextDelta("ok")
        await engine.aclose()
    assert attempts == 2


# ---------------------------------------------------------------- images

CHART = "https://example.com/chart.png"
LOOKING = GenerationRequest(
    model="tiny",
    messages=(
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content=(TextPart("What does this show?"), ImagePart(CHART, "high"))),
        ChatMessage(role="assistant", content="A rising trend."),
        ChatMessage(role="user", content=(TextPart("And this?"), ImagePart(png_url(), None, "file-1"))),
    ),
)


async def test_images_are_sent_as_content_parts_and_the_servers_count_is_the_usage() -> None:
    # A vision server counts the images it read in its prompt tokens.
    usage = {"prompt_tokens": 1210, "completion_tokens": 1, "total_tokens": 1211}
    frames = (chunk({"content": "Up."}), chunk(finish="stop"), chunk(usage=usage), b"data: [DONE]\n\n")
    async with ScriptedServer(replying(*frames)) as server:
        engine = engine_for(server)
        assert (await collect(engine, LOOKING))[-1] == Finish("stop", Usage(1210, 1))
        await engine.aclose()
    assert server.requests[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What does this show?"},
                {"type": "image_url", "image_url": {"url": CHART, "detail": "high"}},
            ],
        },
        {"role": "assistant", "content": "A rising trend."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "And this?"}, {"type": "image_url", "image_url": {"url": png_url()}}],
        },
    ]


async def test_a_text_only_backend_gets_placeholders() -> None:
    frames = (chunk({"content": "?"}), chunk(finish="stop"), b"data: [DONE]\n\n")
    async with ScriptedServer(replying(*frames)) as server:
        engine = engine_for(server, vision=False)
        await collect(engine, LOOKING)
        tokenizer = await engine.tokenizer("tiny")
        await engine.aclose()
    assert [message["content"] for message in server.requests[0]["messages"]] == [
        "Be brief.",
        f"What does this show?\n[image: {CHART}]",
        "A rising trend.",
        "And this?\n[image file: file-1]",
    ]
    # Its prompts hold the placeholders' text only: an image costs nothing more.
    assert tokenizer.image_tokens == 0


async def test_each_backend_says_whether_it_sees_images_and_what_one_costs(tmp_path: Path) -> None:
    path = tmp_path / "backends.toml"
    path.write_text(
        'default = "vision"\n[backends.vision]\nbase_url = "http://127.0.0.1:9/v1"\nimage_tokens = 600\n'
        '[backends.text]\nbase_url = "http://127.0.0.1:9/v1"\nvision = false\n'
        '[backends.plain]\nbase_url = "http://127.0.0.1:9/v1"\n[models]\n"smol" = "text"\n"other" = "plain"\n'
    )
    routing = routing_from_file(str(path))
    assert (routing.backend_for("llava")[1].vision, routing.backend_for("smol")[1].vision) == (True, False)
    engine = OpenAICompatibleEngine(routing)
    # Nothing answers on port 9: the estimating tokenizer, with each backend's image cost.
    assert (await engine.tokenizer("llava")).image_tokens == 600
    assert (await engine.tokenizer("smol")).image_tokens == 0
    assert (await engine.tokenizer("other")).image_tokens == IMAGE_TOKENS
    await engine.aclose()
