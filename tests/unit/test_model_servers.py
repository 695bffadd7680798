"""How the OpenAI-compatible engine learns a model's context window and tokenizer: from
configuration, else from the server (llama.cpp, vLLM and Ollama answers, scripted on loopback),
else a stated default; and what it does with a refusal of an over-long prompt. (Against a real
llama-server: tests/llama/test_context_llama.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sovereign_server.engines import ChatMessage, ContextOverflowError, GenerationRequest
from sovereign_server.engines.openai_compat import Backend, OpenAICompatibleEngine, Routing, routing_from_file
from sovereign_server.engines.tokens import DEFAULT_CONTEXT_WINDOW

pytestmark = pytest.mark.unit

Answer = tuple[int, Any]


class FakeModelServer:
    """Answers (method, path) from `routes` with a JSON body (404 otherwise); records each request."""

    def __init__(self, routes: Mapping[tuple[str, str], Answer], port: int = 0) -> None:
        self.routes = dict(routes)
        self._port = port
        self.requests: list[tuple[str, str, Any]] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> FakeModelServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self._port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            method, path = head.split(" ")[:2]
            length = next(
                (int(line.split(":")[1]) for line in head.split("\r\n") if line.lower().startswith("content-length")), 0
            )
            body = json.loads(await reader.readexactly(length)) if length else None
            self.requests.append((method, path, body))
            status, answer = self.routes.get((method, path), (404, {"error": {"message": "File Not Found"}}))
            if callable(answer):
                answer = answer(body)
            payload = json.dumps(answer).encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {len(payload)}\r\n"
                "connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def llama_cpp_routes(n_ctx: int = 2048) -> dict[tuple[str, str], Answer]:
    """A llama-server: a token per byte, and a template that adds 10 tokens a message."""
    return {
        ("GET", "/props"): (200, {"default_generation_settings": {"n_ctx": n_ctx}, "model_path": "/m/tiny.gguf"}),
        ("POST", "/tokenize"): (200, lambda body: {"tokens": list(body["content"].encode())}),
        ("POST", "/apply-template"): (
            200,
            lambda body: {"prompt": "".join("#" * 10 + m["content"] for m in body["messages"])},
        ),
    }


REQUEST = GenerationRequest(model="tiny", messages=(ChatMessage(role="user", content="hello"),))


@pytest.fixture
async def llama_cpp() -> AsyncIterator[FakeModelServer]:
    async with FakeModelServer(llama_cpp_routes()) as server:
        yield server


async def test_llama_cpp_tells_its_slot_window_and_counts_with_its_own_tokenizer(llama_cpp: FakeModelServer) -> None:
    engine = OpenAICompatibleEngine.for_url(llama_cpp.base_url)
    assert await engine.context_window("tiny") == 2048
    tokenizer = await engine.tokenizer("tiny")
    assert tokenizer.key is not None
    assert tokenizer.key.startswith("llama.cpp:")
    assert await tokenizer.count(["hello", "hé"]) == [5, 3]
    # The whole prompt as the server renders it, then tokenized as a prompt is.
    assert await tokenizer.count_prompt(REQUEST) == 15
    assert llama_cpp.requests[-1] == ("POST", "/tokenize", {"content": "#" * 10 + "hello", "add_special": True})
    # Asked once, however often the window is needed.
    await engine.context_window("tiny")
    assert llama_cpp.paths().count("/props") == 1
    await engine.aclose()


async def test_vllm_tells_max_model_len_and_counts_chats_with_their_template() -> None:
    routes: dict[tuple[str, str], Answer] = {
        ("GET", "/v1/models"): (200, {"data": [{"id": "llama-8b", "root": "meta/llama", "max_model_len": 32768}]}),
        ("POST", "/tokenize"): (200, lambda body: {"count": 42 if "messages" in body else 7, "max_model_len": 32768}),
    }
    async with FakeModelServer(routes) as server:
        engine = OpenAICompatibleEngine.for_url(server.base_url, model="llama-8b")
        assert await engine.context_window("any") == 32768
        tokenizer = await engine.tokenizer("any")
        assert await tokenizer.count(["a text"]) == [7]
        assert server.requests[-1][2] == {"model": "llama-8b", "prompt": "a text", "add_special_tokens": False}
        assert await tokenizer.count_prompt(REQUEST) == 42
        sent = server.requests[-1][2]
        assert (sent["model"], sent["add_generation_prompt"], sent["messages"]) == (
            "llama-8b",
            True,
            [{"role": "user", "content": "hello"}],
        )
        await engine.aclose()


async def test_a_server_listing_max_model_len_without_a_tokenizer_gets_estimates() -> None:
    routes: dict[tuple[str, str], Answer] = {
        ("GET", "/v1/models"): (200, {"data": [{"id": "m", "max_model_len": 8192}]})
    }
    async with FakeModelServer(routes) as server:
        engine = OpenAICompatibleEngine.for_url(server.base_url)
        assert await engine.context_window("m") == 8192
        assert (await engine.tokenizer("m")).key is None
        await engine.aclose()


@pytest.mark.parametrize(
    ("shown", "window"),
    [
        ({"parameters": "stop <|eot|>\nnum_ctx 8192", "model_info": {"llama.context_length": 131072}}, 8192),
        ({"parameters": "", "model_info": {"llama.context_length": 131072}}, DEFAULT_CONTEXT_WINDOW),
        ({"model_info": {"gemma.context_length": 2048}}, 2048),
    ],
)
async def test_ollama_runs_a_model_with_its_num_ctx_else_its_default_window(shown: dict[str, Any], window: int) -> None:
    async with FakeModelServer({("POST", "/api/show"): (200, shown)}) as server:
        engine = OpenAICompatibleEngine.for_url(server.base_url)
        assert await engine.context_window("llama3.1") == window
        assert server.requests[-1][2] == {"model": "llama3.1"}
        # Ollama has no tokenizer endpoint: estimates, not worth keeping.
        assert (await engine.tokenizer("llama3.1")).key is None
        await engine.aclose()


async def test_a_server_that_tells_nothing_gets_the_default_window_and_estimates() -> None:
    async with FakeModelServer({}) as server:
        engine = OpenAICompatibleEngine.for_url(server.base_url)
        assert await engine.context_window("gpt-4o") == DEFAULT_CONTEXT_WINDOW
        tokenizer = await engine.tokenizer("gpt-4o")
        assert await tokenizer.count(["Price of AAPL?"]) == [6]
        assert await tokenizer.count_prompt(REQUEST) is None
        await engine.aclose()


async def test_configured_windows_win_model_first_then_backend(llama_cpp: FakeModelServer) -> None:
    routing = Routing(
        backends={"a": Backend(llama_cpp.base_url, context_window=1000), "b": Backend(llama_cpp.base_url)},
        models={"small": "a", "tuned": "a", "plain": "b"},
        windows={"tuned": 500},
    )
    engine = OpenAICompatibleEngine(routing)
    assert await engine.context_window("tuned") == 500
    assert await engine.context_window("small") == 1000
    assert await engine.context_window("plain") == 2048
    await engine.aclose()


async def test_an_unreachable_server_gets_the_default_window_and_is_asked_again_later() -> None:
    async with FakeModelServer(llama_cpp_routes(512)) as server:
        url = server.base_url
    engine = OpenAICompatibleEngine.for_url(url)
    assert await engine.context_window("tiny") == DEFAULT_CONTEXT_WINDOW
    port = int(url.split(":")[2].split("/")[0])
    async with FakeModelServer(llama_cpp_routes(512), port=port):
        assert await engine.context_window("tiny") == 512
    await engine.aclose()


def overflow_route(error: dict[str, Any]) -> dict[tuple[str, str], Answer]:
    return {**llama_cpp_routes(4096), ("POST", "/v1/chat/completions"): (400, {"error": error})}


@pytest.mark.parametrize(
    ("error", "window"),
    [
        (
            {
                "code": 400,
                "message": "request (5000 tokens) exceeds the available context size (2048 tokens), try increasing it",
                "type": "exceed_context_size_error",
                "n_prompt_tokens": 5000,
                "n_ctx": 2048,
            },
            2048,
        ),
        (
            {
                "message": "This model's maximum context length is 1024 tokens. However, you requested 5000 tokens "
                "(4000 in the messages, 1000 in the completion).",
                "type": "BadRequestError",
            },
            1024,
        ),
    ],
)
async def test_a_refused_over_long_prompt_is_a_clear_error_and_the_stated_window_is_used_from_then_on(
    error: dict[str, Any], window: int
) -> None:
    async with FakeModelServer(overflow_route(error)) as server:
        engine = OpenAICompatibleEngine.for_url(server.base_url)
        assert await engine.context_window("tiny") == 4096
        with pytest.raises(ContextOverflowError) as caught:
            async for _ in engine.generate(REQUEST):
                pass
        assert caught.value.code == "invalid_prompt"
        assert caught.value.window == window
        assert "does not fit the context window of the model server 'default'" in caught.value.message
        assert await engine.context_window("tiny") == window
        await engine.aclose()


def test_the_backends_file_sets_windows_per_backend_and_per_model(tmp_path: Path) -> None:
    path = tmp_path / "backends.toml"
    path.write_text(
        'default = "vllm"\n[backends.vllm]\nbase_url = "http://gpu:8000/v1"\ncontext_window = 32768\n'
        '[backends.ollama]\nbase_url = "http://127.0.0.1:11434/v1"\n'
        '[models]\n"llama3.1" = "ollama"\n"qwen2.5" = { backend = "ollama", context_window = 8192 }\n'
    )
    routing = routing_from_file(str(path), context_window=2048)
    assert routing.backends["vllm"].context_window == 32768
    assert routing.backends["ollama"].context_window == 2048  # the flag fills in what the file leaves out
    assert routing.models == {"llama3.1": "ollama", "qwen2.5": "ollama"}
    assert routing.windows == {"qwen2.5": 8192}
