"""The engine for any OpenAI-compatible chat-completions server: vLLM, llama.cpp's `llama-server`,
Ollama, SGLang, LM Studio.

It streams `POST {base_url}/chat/completions` (`stream: true`, `stream_options.include_usage`)
with httpx, the client the official SDK is built on, used directly: the SDK's typed request
building cost about 0.7 ms of CPU a request, on the path to the first token. One pooled connection
set and one concurrency bound per backend; each request goes to a backend by its `model`.

Images go as chat-completions content parts (`{"type": "image_url", "image_url": {"url", "detail"}}`)
in user messages, to a backend that sees images (`vision`, the default); a backend declared
`vision = false` is sent each image's placeholder text instead (`ImagePart.placeholder`).

Usage: taken from the server's final usage chunk when it sends one (a vision server counts the
images it read); otherwise the `Finish` carries none and the caller keeps its own count of what it
sent, each image at the backend's `image_tokens`.

Each model's context window comes from configuration (`context_window` of the model, else of its
backend), else from the server, asked once (`model_servers.probe`), else `DEFAULT_CONTEXT_WINDOW`.
A server that refuses a prompt as too long for its window says which window it has: that one is
used from then on, whatever was configured.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tomllib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2

from sovereign_server.engines.base import (
    ChatMessage,
    Chunk,
    ContextOverflowError,
    EngineError,
    Finish,
    FinishReason,
    GenerationRequest,
    MessagePart,
    TextDelta,
    TextPart,
    Tokenizer,
    ToolCallDelta,
    Usage,
)
from sovereign_server.engines.model_servers import ModelFacts, Unreachable, probe
from sovereign_server.engines.tokens import DEFAULT_CONTEXT_WINDOW, IMAGE_TOKENS, EstimatingTokenizer

logger = logging.getLogger("sovereign.engines.openai")

# Attempts to send a request whose connection fails before any response.
CONNECT_ATTEMPTS = 3
# Connections a backend's probing and token counting may hold, beside those of generation.
META_CONNECTIONS = 8
# How servers word a refusal of a prompt longer than their window, and the window they state:
# llama.cpp "... exceeds the available context size (2048 tokens)", vLLM and OpenAI "This
# model's maximum context length is 4096 tokens".
_OVERFLOW = re.compile(r"context (?:size|length|window)[^0-9]{0,20}(\d+) tokens|context_length_exceeded", re.I)
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "stop",
}


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
    # Tokens one request may hold, prompt and reply; None: as the server says.
    context_window: int | None = None
    # Whether its models see images; false sends each image's placeholder text instead.
    vision: bool = True
    # Tokens one image is assumed to take in a prompt (fitting the context window).
    image_tokens: int = IMAGE_TOKENS

    @property
    def tokens_per_image(self) -> int:
        """What an image adds to a prompt beyond its placeholder (`Tokenizer.image_tokens`)."""
        return self.image_tokens if self.vision else 0


@dataclass(frozen=True)
class Routing:
    """Which backend serves which model: `models` by name, else `default` (None: no fallback);
    `windows` are context windows configured per model, over their backend's."""

    backends: Mapping[str, Backend]
    models: Mapping[str, str] = field(default_factory=dict)
    default: str | None = None
    windows: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def single(cls, backend: Backend) -> Routing:
        return cls(backends={"default": backend}, default="default")

    def backend_for(self, model: str) -> tuple[str, Backend]:
        name = self.models.get(model, self.default)
        if name is None or name not in self.backends:
            raise EngineError(f"No backend is configured for model '{model}'.", code="invalid_prompt")
        return name, self.backends[name]


class _Connection:
    """A backend's pooled client and its concurrency bound, and a small client of its own for
    probing and counting, so that these never wait behind streaming replies."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.slots = asyncio.Semaphore(backend.max_concurrency)
        # Whether requests may reuse a kept-alive connection (see `_open_stream`).
        self.reuse = True
        self.meta = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {backend.api_key}"},
            timeout=httpx2.Timeout(backend.token_timeout, connect=backend.connect_timeout),
            limits=httpx2.Limits(max_connections=META_CONNECTIONS, max_keepalive_connections=META_CONNECTIONS),
        )
        self.client = httpx2.AsyncClient(
            base_url=backend.base_url,
            headers={"Authorization": f"Bearer {backend.api_key}"},
            timeout=httpx2.Timeout(backend.first_token_timeout, connect=backend.connect_timeout),
            limits=httpx2.Limits(
                max_connections=backend.max_concurrency, max_keepalive_connections=backend.max_concurrency
            ),
        )


def chat_messages(messages: tuple[ChatMessage, ...], *, vision: bool = True) -> list[dict[str, Any]]:
    """The run's context as chat-completions messages; images as content parts if `vision`, else
    as their placeholders."""
    converted: list[dict[str, Any]] = []
    for message in messages:
        if message.role == "tool":
            converted.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text})
        elif message.tool_calls:
            converted.append(
                {
                    "role": "assistant",
                    "content": message.text or None,
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
        elif message.images and vision and message.role == "user":
            converted.append({"role": "user", "content": [_content_part(part) for part in message.parts]})
        else:
            converted.append({"role": message.role, "content": message.text})
    return converted


def _content_part(part: MessagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    image: dict[str, Any] = {"url": part.url}
    if part.detail is not None:
        image["detail"] = part.detail
    return {"type": "image_url", "image_url": image}


def completion_parameters(request: GenerationRequest, model: str, *, vision: bool = True) -> dict[str, Any]:
    parameters = template_parameters(request, model, vision=vision)
    return {**parameters, "stream": True, "stream_options": {"include_usage": True}}


def template_parameters(request: GenerationRequest, model: str, *, vision: bool = True) -> dict[str, Any]:
    """The chat-completions body without its streaming options: also what llama.cpp's
    /apply-template and vLLM's /tokenize take to render the prompt."""
    parameters: dict[str, Any] = {"model": model, "messages": chat_messages(request.messages, vision=vision)}
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


async def _status_error(name: str, response: httpx2.Response) -> EngineError:
    """The error of a refused request, from its body: OpenAI's `{"error": {...}}`, or any text."""
    text = (await response.aread()).decode(errors="replace").strip()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    error = body.get("error", body) if isinstance(body, dict) else None
    stated = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
    detail = stated or text or response.reason_phrase
    if response.status_code == 429:
        return EngineError(f"The model server '{name}' is rate limiting requests: {detail}", code="rate_limit_exceeded")
    overflow = _overflow(error, text) if response.status_code in (400, 413) else None
    if overflow is not None:
        message = f"The prompt does not fit the context window of the model server '{name}': {detail}"
        return ContextOverflowError(message, window=overflow or None)
    return EngineError(f"The model server '{name}' answered HTTP {response.status_code}: {detail}")


def _overflow(error: Any, text: str) -> int | None:
    """For a refusal of an over-long prompt, the window the server stated (0 if it stated none);
    None for any other error. `error` is the body's error object, `text` the whole body."""
    stated = error.get("n_ctx") if isinstance(error, dict) else None
    if isinstance(stated, int) and error.get("type") == "exceed_context_size_error":
        return stated  # llama.cpp says it in so many words
    found = _OVERFLOW.search(text)
    if found is None:
        return None
    return int(found.group(1)) if found.group(1) else 0


class OpenAICompatibleEngine:
    name = "openai"

    def __init__(self, routing: Routing) -> None:
        self._routing = routing
        self._connections: dict[str, _Connection] = {}
        # What each (backend, upstream model) server told, asked once; and windows learned from refusals.
        self._facts: dict[tuple[str, str], asyncio.Task[ModelFacts]] = {}
        self._learned_windows: dict[tuple[str, str], int] = {}

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

    async def context_window(self, model: str) -> int:
        name, backend = self._routing.backend_for(model)
        upstream = backend.model or model
        window = self._routing.windows.get(model) or backend.context_window
        if window is None:
            window = (await self._model_facts(name, backend, upstream)).window or DEFAULT_CONTEXT_WINDOW
        learned = self._learned_windows.get((name, upstream))
        return min(window, learned) if learned is not None else window

    async def tokenizer(self, model: str) -> Tokenizer:
        name, backend = self._routing.backend_for(model)
        return (await self._model_facts(name, backend, backend.model or model)).tokenizer

    async def _model_facts(self, name: str, backend: Backend, upstream: str) -> ModelFacts:
        """What the server told about `upstream`, asked on first use by one request however many
        runs need it; not kept when the server could not be reached (it may be starting)."""
        key = (name, upstream)
        task = self._facts.get(key)
        if task is None:
            task = self._facts[key] = asyncio.create_task(self._probe(name, backend, upstream))
        try:
            # Shielded: a run cancelled meanwhile must not cancel the answer other runs wait for.
            return await asyncio.shield(task)
        except Exception as error:
            # Unreachable (it may be starting), or an answer this engine misread: estimate this
            # time, ask again next time.
            if not isinstance(error, Unreachable):
                logger.warning("model server '%s' could not be probed for %s", name, upstream, exc_info=error)
            if self._facts.get(key) is task:
                del self._facts[key]
            return ModelFacts("unreachable", None, EstimatingTokenizer(backend.tokens_per_image))

    async def _probe(self, name: str, backend: Backend, upstream: str) -> ModelFacts:
        def chat_body(request: GenerationRequest, model: str) -> dict[str, Any]:
            return template_parameters(request, model, vision=backend.vision)

        meta = self._connection(name, backend).meta
        facts = await probe(meta, backend.base_url, upstream, chat_body, image_tokens=backend.tokens_per_image)
        window = f"a {facts.window}-token window" if facts.window else "no stated window"
        logger.info("model server '%s' (%s) serves %s with %s", name, facts.server, upstream, window)
        return facts

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        name, backend = self._routing.backend_for(request.model)
        connection = self._connection(name, backend)
        upstream = backend.model or request.model
        parameters = completion_parameters(request, upstream, vision=backend.vision)
        async with connection.slots:
            try:
                response = await self._open_stream(name, backend, connection, parameters)
            except ContextOverflowError as overflow:
                if overflow.window is not None:
                    self._learned_windows[(name, upstream)] = overflow.window
                raise
            try:
                async for chunk in self._chunks(name, backend, response):
                    yield chunk
            finally:
                # Closing the response closes the upstream request: a cancelled run stops the model.
                await response.aclose()

    async def _open_stream(
        self, name: str, backend: Backend, connection: _Connection, parameters: dict[str, Any]
    ) -> httpx2.Response:
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            headers = {} if connection.reuse else {"Connection": "close"}
            request = connection.client.build_request("POST", "/chat/completions", json=parameters, headers=headers)
            try:
                # The unread response, read line by line by `_chunks`.
                response = await connection.client.send(request, stream=True)
            except httpx2.TimeoutException as error:
                raise EngineError(f"The model server '{name}' did not answer within the time allowed.") from error
            except httpx2.TransportError as error:
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
                continue
            if response.is_success:
                return response
            try:
                raise await _status_error(name, response)
            finally:
                await response.aclose()
        raise AssertionError("unreachable")

    async def _chunks(self, name: str, backend: Backend, response: httpx2.Response) -> AsyncIterator[Chunk]:
        finish_reason: FinishReason | None = None
        usage: Usage | None = None
        timeout = backend.first_token_timeout
        lines = response.aiter_lines().__aiter__()
        while True:
            try:
                async with asyncio.timeout(timeout):
                    chunk = await _next_chunk(lines)
            except TimeoutError as error:
                raise EngineError(f"The model server '{name}' sent nothing for {timeout:g} seconds.") from error
            except (httpx2.HTTPError, ValueError) as error:
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
                    yield TextDelta(delta["content"])
                for call in delta.get("tool_calls") or ():
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
        yield Finish(finish_reason, usage)

    async def aclose(self) -> None:
        for task in self._facts.values():
            task.cancel()
        self._facts.clear()
        for connection in self._connections.values():
            await connection.client.aclose()
            await connection.meta.aclose()
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


def routing_from_file(path: str, *, context_window: int | None = None) -> Routing:
    """Backends from a TOML file; `context_window` is the window of backends that state none.

    default = "vllm"                     # backend for models not listed below
    [backends.vllm]
    base_url = "http://gpu-box:8000/v1"
    model = "meta-llama/Llama-3.1-8B-Instruct"   # optional upstream name
    max_concurrency = 64                 # and api_key, connect_timeout, first_token_timeout, token_timeout
    context_window = 32768               # optional: else asked from the server
    image_tokens = 1024                  # optional: tokens an image is assumed to take
    [backends.ollama]
    base_url = "http://127.0.0.1:11434/v1"
    vision = false                       # text only: images are sent as placeholders
    [models]
    "llama3.1" = "ollama"
    "qwen2.5" = { backend = "ollama", context_window = 8192 }   # a model's own window
    """
    with open(path, "rb") as file:
        document = tomllib.load(file)
    backends = {
        name: Backend(**{"context_window": context_window, **settings})
        for name, settings in document.get("backends", {}).items()
    }
    models: dict[str, str] = {}
    windows: dict[str, int] = {}
    for model, entry in document.get("models", {}).items():
        if isinstance(entry, dict):
            models[model] = entry.get("backend", "")
            if "context_window" in entry:
                windows[model] = int(entry["context_window"])
        else:
            models[model] = entry
    default = document.get("default")
    for model, backend in [*models.items(), *([("default", default)] if default else [])]:
        if backend not in backends:
            raise ValueError(f"{path}: {model!r} names backend {backend!r}, which is not configured.")
    return Routing(backends=backends, models=models, default=default, windows=windows)


def engine_from_options(
    *,
    base_url: str | None = None,
    config_file: str | None = None,
    context_window: int | None = None,
    **backend: Any,
) -> OpenAICompatibleEngine:
    """The engine from a config file, or from one backend's settings (`base_url`, `api_key`, `model`,
    ...); `context_window`, when given, is the window of every backend that states none."""
    if config_file:
        return OpenAICompatibleEngine(routing_from_file(config_file, context_window=context_window))
    if not base_url:
        raise ValueError("The openai engine needs a base URL (--engine-url) or a config file (--engine-config).")
    return OpenAICompatibleEngine.for_url(base_url, context_window=context_window, **backend)
