"""The engine for any OpenAI-compatible chat-completions server: vLLM, llama.cpp's `llama-server`,
Ollama, SGLang, LM Studio.

It streams `POST {base_url}/chat/completions` (`stream: true`, `stream_options.include_usage`)
through the official `openai` client, one pooled connection set and one concurrency bound per
backend, and routes each request to a backend by its `model`.

Usage: taken from the server's final usage chunk when it sends one. Otherwise it is counted here:
completion tokens are the content and tool-call fragments received (these servers stream about one
token a fragment), and prompt tokens are estimated by `estimate_tokens` (words and punctuation
marks), which is what `count_prompt_tokens` returns too, since no tokenizer of the model is at hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tomllib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import httpx2
import openai

from sovereign_server.engines.base import (
    ChatMessage,
    Chunk,
    EngineError,
    Finish,
    FinishReason,
    GenerationRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)

logger = logging.getLogger("sovereign.engines.openai")

# Attempts to send a request whose connection fails before any response.
CONNECT_ATTEMPTS = 3
_WORDS_AND_MARKS = re.compile(r"\w+|[^\w\s]")
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


def estimate_tokens(text: str) -> int:
    return len(_WORDS_AND_MARKS.findall(text))


@dataclass(frozen=True)
class Backend:
    """One OpenAI-compatible server."""

    base_url: str
    api_key: str = "not-needed"
    # The model name sent upstream; None sends the run's own `model`.
    model: str | None = None
    connect_timeout: float = 5.0
    # Seconds to wait for the response and its first chunk (prompt processing happens here).
    first_token_timeout: float = 120.0
    # Seconds to wait between two chunks.
    token_timeout: float = 30.0
    max_concurrency: int = 16


@dataclass(frozen=True)
class Routing:
    """Which backend serves which model: `models` by name, else `default` (None: no fallback)."""

    backends: Mapping[str, Backend]
    models: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None

    @classmethod
    def single(cls, backend: Backend) -> Routing:
        return cls(backends={"default": backend}, default="default")

    def backend_for(self, model: str) -> tuple[str, Backend]:
        name = self.models.get(model, self.default)
        if name is None or name not in self.backends:
            raise EngineError(f"No backend is configured for model '{model}'.", code="invalid_prompt")
        return name, self.backends[name]


class _Connection:
    """A backend's pooled client and its concurrency bound."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.slots = asyncio.Semaphore(backend.max_concurrency)
        # Whether requests may reuse a kept-alive connection (see `_open_stream`).
        self.reuse = True
        self.client = openai.AsyncOpenAI(
            base_url=backend.base_url,
            api_key=backend.api_key,
            max_retries=0,
            timeout=httpx2.Timeout(backend.first_token_timeout, connect=backend.connect_timeout),
            http_client=openai.DefaultAsyncHttpxClient(
                limits=httpx2.Limits(
                    max_connections=backend.max_concurrency, max_keepalive_connections=backend.max_concurrency
                )
            ),
        )


def chat_messages(messages: tuple[ChatMessage, ...]) -> list[dict[str, Any]]:
    """The run's context as chat-completions messages."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            converted.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content})
        elif message.tool_calls:
            converted.append(
                {
                    "role": "assistant",
                    "content": message.content or None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in message.tool_calls
                    ],
                }
            )
        else:
            converted.append({"role": message.role, "content": message.content})
    return converted


def completion_parameters(request: GenerationRequest, model: str) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        "model": model,
        "messages": chat_messages(request.messages),
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        parameters["tools"] = [
            {
                "type": "function",
                "function": {
                    key: value
                    for key, value in (
                        ("name", tool.name),
                        ("description", tool.description),
                        ("parameters", dict(tool.parameters) if tool.parameters is not None else None),
                        ("strict", tool.strict),
                    )
                    if value is not None
                },
            }
            for tool in request.tools
        ]
        if request.tool_choice is not None:
            parameters["tool_choice"] = request.tool_choice
        parameters["parallel_tool_calls"] = request.parallel_tool_calls
    if isinstance(request.response_format, Mapping):
        parameters["response_format"] = dict(request.response_format)
    for name in ("temperature", "top_p", "max_completion_tokens"):
        value = getattr(request, name)
        if value is not None:
            parameters[name] = value
    return parameters


def _status_error(name: str, error: openai.APIStatusError) -> EngineError:
    detail = error.message or error.response.reason_phrase
    if error.status_code == 429:
        return EngineError(f"The model server '{name}' is rate limiting requests: {detail}", code="rate_limit_exceeded")
    return EngineError(f"The model server '{name}' answered HTTP {error.status_code}: {detail}")


class OpenAICompatibleEngine:
    name = "openai"

    def __init__(self, routing: Routing) -> None:
        self._routing = routing
        self._connections: dict[str, _Connection] = {}

    @classmethod
    def for_url(cls, base_url: str, **backend: Any) -> OpenAICompatibleEngine:
        return cls(Routing.single(Backend(base_url=base_url, **backend)))

    async def start(self) -> None:
        pass

    def _connection(self, name: str, backend: Backend) -> _Connection:
        connection = self._connections.get(name)
        if connection is None:
            connection = self._connections[name] = _Connection(backend)
        return connection

    def backend_name(self, model: str) -> str:
        return self._routing.backend_for(model)[0]

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return sum(
            estimate_tokens(message.content)
            + sum(estimate_tokens(call.name) + estimate_tokens(call.arguments) for call in message.tool_calls)
            for message in request.messages
        )

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        name, backend = self._routing.backend_for(request.model)
        connection = self._connection(name, backend)
        parameters = completion_parameters(request, backend.model or request.model)
        async with connection.slots:
            response = await self._open_stream(name, backend, connection, parameters)
            try:
                async for chunk in self._chunks(name, backend, response, request):
                    yield chunk
            finally:
                # Closing the response closes the upstream request: a cancelled run stops the model.
                await response.aclose()

    async def _open_stream(
        self, name: str, backend: Backend, connection: _Connection, parameters: dict[str, Any]
    ) -> httpx2.Response:
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                # The unread HTTP response, read line by line below: the SDK still sends the request
                # and reports its errors, but its typed request transform (~1-2 ms a request, on the
                # path to the first token) and a typed object per chunk are skipped: the parameters
                # are built and checked here already.
                response = await connection.client.post(
                    "/chat/completions",
                    body=parameters,
                    cast_to=httpx2.Response,
                    options={"headers": {} if connection.reuse else {"Connection": "close"}},
                    stream=True,
                    stream_cls=openai.AsyncStream[Any],
                )
                # With `cast_to=httpx2.Response` the SDK hands back the response itself.
                return cast(httpx2.Response, response)
            except openai.APIStatusError as error:
                raise _status_error(name, error) from error
            except openai.APITimeoutError as error:
                raise EngineError(f"The model server '{name}' did not answer within the time allowed.") from error
            except openai.APIConnectionError as error:
                # No response came, so the request was not served: sending it again is safe. Servers
                # such as llama-server close kept-alive connections after a streamed reply, which the
                # next request on that connection only learns by failing: after the first such
                # failure, this backend gets a fresh connection per request (a connect costs far
                # less than a request sent in vain and sent again).
                if connection.reuse:
                    connection.reuse = False
                    logger.info("model server '%s' closes connections after replies: not reusing them", name)
                if attempt == CONNECT_ATTEMPTS:
                    message = f"Could not connect to the model server '{name}' at {backend.base_url}."
                    raise EngineError(message) from error
        raise AssertionError("unreachable")

    async def _chunks(
        self, name: str, backend: Backend, response: httpx2.Response, request: GenerationRequest
    ) -> AsyncIterator[Chunk]:
        finish_reason: FinishReason | None = None
        usage: Usage | None = None
        fragments = 0
        timeout = backend.first_token_timeout
        lines = response.aiter_lines().__aiter__()
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await _next_chunk(lines)
            except TimeoutError as error:
                raise EngineError(f"The model server '{name}' sent nothing for {timeout:g} seconds.") from error
            except (openai.APIError, httpx2.HTTPError, ValueError) as error:
                # A cut connection, or a chunk that is not JSON.
                raise EngineError(f"The model server '{name}' broke off its reply: {error}") from error
            if chunk is None:
                break
            if "error" in chunk:
                error_body = chunk["error"] if isinstance(chunk["error"], dict) else {"message": str(chunk["error"])}
                raise EngineError(f"The model server '{name}' failed mid-reply: {error_body.get('message')}")
            timeout = backend.token_timeout
            if chunk.get("usage"):
                usage = Usage(int(chunk["usage"]["prompt_tokens"]), int(chunk["usage"]["completion_tokens"]))
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    fragments += 1
                    yield TextDelta(delta["content"])
                for call in delta.get("tool_calls") or ():
                    fragments += 1
                    function = call.get("function") or {}
                    yield ToolCallDelta(
                        index=int(call.get("index") or 0),
                        id=call.get("id"),
                        name=function.get("name"),
                        arguments=function.get("arguments") or "",
                    )
                if choice.get("finish_reason"):
                    finish_reason = _FINISH_REASONS.get(choice["finish_reason"], "stop")
        if finish_reason is None:
            raise EngineError(f"The model server '{name}' ended its reply without finishing it.")
        if usage is None:
            usage = Usage(self.count_prompt_tokens(request), fragments)
        yield Finish(finish_reason, usage)

    async def aclose(self) -> None:
        for connection in self._connections.values():
            await connection.client.close()
        self._connections.clear()


async def _next_chunk(lines: AsyncIterator[str]) -> dict[str, Any] | None:
    """The next `data:` object of a server-sent event stream; None at its end (`[DONE]` or EOF)."""
    async for line in lines:
        if not line.startswith("data:"):
            continue  # blank separators, `event:` lines and `:` comments
        data = line[5:].strip()
        if data == "[DONE]":
            return None
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk that is not an object: {data[:100]}")
        return chunk
    return None


def routing_from_file(path: str) -> Routing:
    """Backends from a TOML file:

    default = "vllm"                     # backend for models not listed below
    [backends.vllm]
    base_url = "http://gpu-box:8000/v1"
    model = "meta-llama/Llama-3.1-8B-Instruct"   # optional upstream name
    max_concurrency = 64                 # and api_key, connect_timeout, first_token_timeout, token_timeout
    [backends.ollama]
    base_url = "http://127.0.0.1:11434/v1"
    [models]
    "llama3.1" = "ollama"
    """
    with open(path, "rb") as file:
        document = tomllib.load(file)
    backends = {name: Backend(**settings) for name, settings in document.get("backends", {}).items()}
    models = dict(document.get("models", {}))
    default = document.get("default")
    for model, backend in [*models.items(), *([("default", default)] if default else [])]:
        if backend not in backends:
            raise ValueError(f"{path}: {model!r} names backend {backend!r}, which is not configured.")
    return Routing(backends=backends, models=models, default=default)


def engine_from_options(
    *, base_url: str | None = None, config_file: str | None = None, **backend: Any
) -> OpenAICompatibleEngine:
    """The engine from a config file, or from one backend's settings (`base_url`, `api_key`, `model`, ...)."""
    if config_file:
        return OpenAICompatibleEngine(routing_from_file(config_file))
    if not base_url:
        raise ValueError("The openai engine needs a base URL (--engine-url) or a config file (--engine-config).")
    return OpenAICompatibleEngine.for_url(base_url, **backend)
