"""The engine protocol: what a run asks a model for, and the chunks it streams back.

Everything here is a plain frozen dataclass so that engines never see gRPC, protobuf or storage types.
The shapes follow OpenAI's chat completions (https://platform.openai.com/docs/api-reference/chat),
which every backend we plan to support can be mapped onto.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeAlias

# Token counts are one value across the layers: the engine reports them, runs store them.
from sovereign_storage.values import Usage

__all__ = [
    "ChatMessage",
    "Chunk",
    "ContextOverflowError",
    "Engine",
    "EngineError",
    "EngineErrorCode",
    "Finish",
    "FinishReason",
    "FunctionTool",
    "GenerationRequest",
    "ImageDetail",
    "ImagePart",
    "MessagePart",
    "Role",
    "TextDelta",
    "TextPart",
    "Tokenizer",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]

Role: TypeAlias = Literal["system", "user", "assistant", "tool"]
FinishReason: TypeAlias = Literal["stop", "length", "tool_calls"]
EngineErrorCode: TypeAlias = Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]
ImageDetail: TypeAlias = Literal["auto", "low", "high"]


@dataclass(frozen=True)
class ToolCall:
    """A complete function call the model made; `arguments` is a JSON text, as the model wrote it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image shown to the model: `url` is an http(s) URL the model server fetches, or a `data:`
    URL holding the image (a stored file is sent as one; `file_id` then names it)."""

    url: str
    detail: ImageDetail | None = None
    file_id: str | None = None

    @property
    def placeholder(self) -> str:
        """The image as text, for a model that sees no images: `[image: <url>]`, `[image file:
        <file_id>]`, or `[image: <media type> data]` (never the data itself)."""
        if self.file_id is not None:
            return f"[image file: {self.file_id}]"
        if self.url.startswith("data:"):
            # Only the header is read: the data may be megabytes.
            comma = self.url.find(",", 5, 256)
            media_type = self.url[5:comma].partition(";")[0] if comma > 0 else ""
            return f"[image: {media_type or 'inline'} data]"
        return f"[image: {self.url}]"


MessagePart: TypeAlias = TextPart | ImagePart


@dataclass(frozen=True)
class ChatMessage:
    """One turn of the conversation.

    `content` is text, or parts when the message holds images (only user messages do). Assistant
    turns that called tools carry `tool_calls`; tool results carry the `tool_call_id` they answer."""

    role: Role
    content: str | tuple[MessagePart, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None

    @property
    def parts(self) -> tuple[MessagePart, ...]:
        if isinstance(self.content, str):
            return (TextPart(self.content),) if self.content else ()
        return self.content

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return () if isinstance(self.content, str) else tuple(p for p in self.content if isinstance(p, ImagePart))

    @property
    def text(self) -> str:
        """The content as text alone, each image as its placeholder, parts a line each: what a
        model that sees no images is sent."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text if isinstance(part, TextPart) else part.placeholder for part in self.content)


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call; `parameters` is its JSON Schema."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True)
class GenerationRequest:
    """Everything an engine needs for one model turn.

    `tool_choice` is "none", "auto", "required" or `{"type": "function", "function": {"name": ...}}`;
    None means the engine's default ("auto" when there are tools)."""

    model: str
    messages: tuple[ChatMessage, ...]
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool = True
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    max_completion_tokens: int | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply text."""

    text: str


@dataclass(frozen=True)
class ToolCallDelta:
    """A fragment of a tool call, as chat completions stream them.

    The first fragment of call `index` carries its `id` and `name`; later ones only append `arguments`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class Finish:
    """The last chunk of every stream."""

    reason: FinishReason
    usage: Usage | None = None


Chunk: TypeAlias = TextDelta | ToolCallDelta | Finish


class EngineError(Exception):
    """A generation failure the run reports as its `last_error` (`code` is OpenAI's run error code)."""

    def __init__(self, message: str, code: EngineErrorCode = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code: EngineErrorCode = code


class ContextOverflowError(EngineError):
    """The model server refused a prompt too long for its context window. `window` is the window
    the server stated, when it did (the engine then uses it for later requests)."""

    def __init__(self, message: str, window: int | None = None) -> None:
        super().__init__(message, code="invalid_prompt")
        self.window = window


class Tokenizer(Protocol):
    """Counts tokens as one model does.

    `key` names the tokenization (the model's vocabulary), so that counts of stored text can be
    kept and reused; it is None when counts are estimates, cheaper to redo than to keep.

    `image_tokens` is what one image adds to a prompt beyond its placeholder's text (a message is
    counted as its `ChatMessage.text`): a stated allowance for a model that sees images, since no
    server counts them before it reads them; 0 for one that is sent the placeholder instead."""

    key: str | None
    image_tokens: int

    async def count(self, texts: Sequence[str]) -> list[int]:
        """The tokens of each text on its own, without any chat template."""
        ...

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        """The exact prompt tokens of `request` as the model will read it (chat template, tools and
        all); None when the backend cannot tell."""
        ...


class Engine(Protocol):
    """A model backend.

    `generate` is an async generator whose last chunk is always a `Finish`, unless it raises
    `EngineError`. Cancelling the consuming task, or `aclose()` on the returned iterator, stops it promptly.
    """

    name: str

    async def start(self) -> None:
        """Acquire what the engine needs (a model server, connections) before the first request."""
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        """Stream one model turn."""
        ...

    async def context_window(self, model: str) -> int:
        """The tokens one request for `model` may hold, prompt and reply together."""
        ...

    async def tokenizer(self, model: str) -> Tokenizer:
        """How `model` counts tokens."""
        ...

    def backend_name(self, model: str) -> str:
        """Which of the engine's backends serves `model` (metrics label their figures with it)."""
        ...

    async def aclose(self) -> None:
        """Release connections or models; the engine is not used afterwards."""
        ...
