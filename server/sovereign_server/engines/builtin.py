"""A deterministic engine without a model, so that every run path can be developed, tested and measured.

The same request always yields the same chunks; nothing depends on randomness or the clock. It ignores
`model`, `temperature`, `top_p` and `response_format`.

Tokens are words with their trailing whitespace (`split_tokens`); any leading whitespace goes with the
first one, so joining the tokens gives the text back. Usage counts them:

- prompt tokens: the tokens of every message's content as text (`ChatMessage.text`: an image as its
  placeholder), plus `IMAGE_TOKENS` per image, plus those of each tool call's name and arguments;
- completion tokens: one per `TextDelta`, and one per arguments fragment of a tool call.

Its tokenizer counts texts and whole prompts the same way (exactly), an image as `IMAGE_TOKENS`. Its
context window is `context_window` (default `BUILTIN_CONTEXT_WINDOW`) whatever the model; nothing
enforces it, the window only tells callers how much to send.

What it answers, checked in this order:

1. **Tool results.** When the conversation ends with `tool` messages, it replies with one line per
   result, in order: `"<function name> returned: <output>"`, lines joined by "\\n". The name comes from
   the assistant turn that made the call (the `tool_call_id` if no turn did).
2. **Tool calls.** When there are function tools and `tool_choice` is not "none":
   - `{"type": "function", "function": {"name": N}}` calls N;
   - "required" calls the tools the last user message names, or else the first tool;
   - otherwise ("auto" or None), if the last message is a user message naming tools, it calls them.
   A tool is named when its name appears in the text as a whole word (`get_price` does not name `get`).
   Named tools are called in the order they first appear; with `parallel_tool_calls=False` only the
   first is called. Every call's arguments are the first JSON object in the last user message, verbatim
   (`'call get_price {"ticker": "AAPL"}'` -> `'{"ticker": "AAPL"}'`), or "{}" if there is none. Call i's
   id is `"call_" + sha256(name + last user message content + str(i)).hexdigest()[:24]`. Each call is
   streamed as a `ToolCallDelta` with index, id and name and empty arguments, then its arguments split
   after every "," and ":" (`split_arguments`); the stream ends with `Finish("tool_calls")`.
3. **Otherwise** it replies `"You said: " + <text of the last user message>` ("" if there is none),
   then, for each image that message holds, a line `"\nImage <n>: <what>"` (n from 1): the URL of an
   http(s) image; for one sent inline as a `data:` URL, `"<media type>, <size> bytes, sha256 <the
   first 12 hex digits of its bytes' SHA-256>"`, preceded by `"<file id>, "` for a stored file;
   followed by `", detail <detail>"` when the part sets one. One `TextDelta` per token, then
   `Finish("stop")`.

A message's text is its text parts joined by "\n" (images aside); everything above that reads the
last user message reads that text.

With `max_completion_tokens=N` it stops before the (N+1)th completion token with `Finish("length")`.
Every `Finish` carries `Usage`.

To test failure paths: when the last user message contains `[[engine-error]]`, the engine emits its
first chunk and then raises `EngineError("The built-in engine was asked to fail.")` with code
"server_error"; `[[engine-error:rate_limit_exceeded]]` and `[[engine-error:invalid_prompt]]` choose
the code.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import get_args

from sovereign_server.engines.base import (
    ChatMessage,
    Chunk,
    EngineError,
    EngineErrorCode,
    Finish,
    FinishReason,
    GenerationRequest,
    ImagePart,
    TextDelta,
    TextPart,
    Tokenizer,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from sovereign_server.engines.images import parse_data_url
from sovereign_server.engines.tokens import IMAGE_TOKENS

__all__ = [
    "BUILTIN_CONTEXT_WINDOW",
    "FAILURE_MESSAGE",
    "BuiltinEngine",
    "prompt_tokens",
    "split_arguments",
    "split_tokens",
]

FAILURE_MESSAGE = "The built-in engine was asked to fail."
BUILTIN_CONTEXT_WINDOW = 32768

_TOKEN = re.compile(r"\s*\S+\s*")
_ARGUMENT_FRAGMENT = re.compile(r"[^,:]*[,:]\s*|[^,:]+\Z")
_FAILURE_MARKER = re.compile(r"\[\[engine-error(?::([a-z_]+))?\]\]")
# Bounds the search for a JSON object, so that text full of braces costs linear time, not quadratic.
_MAX_JSON_CANDIDATES = 32


def split_tokens(text: str) -> list[str]:
    """Words with their trailing whitespace; leading whitespace goes with the first word."""
    return _TOKEN.findall(text)


def split_arguments(arguments: str) -> list[str]:
    """A tool call's arguments in a few fragments, each ending after a "," or ":" and its whitespace."""
    return _ARGUMENT_FRAGMENT.findall(arguments)


def prompt_tokens(request: GenerationRequest) -> int:
    """The prompt tokens the engine reports for `request`."""
    count = 0
    for message in request.messages:
        count += len(split_tokens(message.text)) + IMAGE_TOKENS * len(message.images)
        for call in message.tool_calls:
            count += len(split_tokens(call.name)) + len(split_tokens(call.arguments))
    return count


class BuiltinTokenizer:
    """Counts as the engine's usage does; so cheap that counts are not worth keeping (no `key`)."""

    key: str | None = None
    image_tokens: int = IMAGE_TOKENS

    async def count(self, texts: Sequence[str]) -> list[int]:
        return [len(split_tokens(text)) for text in texts]

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        return prompt_tokens(request)


@dataclass(frozen=True)
class _Answer:
    text: str
    calls: tuple[ToolCall, ...]


class BuiltinEngine:
    """The deterministic engine described in this module's docstring.

    `token_delay` is the time in seconds between chunks, on the engine's own clock: chunk n is due
    n * token_delay after the first, however long its consumer took over the ones before, as a model
    server generates whether or not its client keeps up (a consumer that fell behind then finds
    several due at once). At 0 the engine still yields to the event loop between chunks (without a
    timer) so that a stream never starves other tasks."""

    name: str = "builtin"

    def __init__(self, *, token_delay: float = 0.0, context_window: int | None = None) -> None:
        if token_delay < 0:
            raise ValueError(f"token_delay must be >= 0, got {token_delay}.")
        if context_window is not None and context_window < 1:
            raise ValueError(f"context_window must be >= 1, got {context_window}.")
        self.token_delay = float(token_delay)
        self.window = context_window or BUILTIN_CONTEXT_WINDOW

    async def start(self) -> None:
        pass

    def backend_name(self, model: str) -> str:
        return self.name

    async def context_window(self, model: str) -> int:
        return self.window

    async def tokenizer(self, model: str) -> Tokenizer:
        return BuiltinTokenizer()

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Chunk, None]:
        answer = _answer(request)
        failure = _failure(request)
        usage_prompt = prompt_tokens(request)
        limit = request.max_completion_tokens
        reason: FinishReason = "tool_calls" if answer.calls else "stop"
        completion = 0
        clock = asyncio.get_running_loop().time
        due: float | None = None
        for chunk, counted in _chunks(answer):
            if limit is not None and completion >= limit:
                yield Finish("length", Usage(usage_prompt, completion))
                return
            if due is None:
                due = clock()
            else:
                due += self.token_delay
                # sleep(0) is a bare yield, without a timer: a chunk already due still lets others run.
                await asyncio.sleep(max(0.0, due - clock()) if self.token_delay else 0)
            yield chunk
            completion += counted
            if failure is not None:
                raise failure
        yield Finish(reason, Usage(usage_prompt, completion))

    async def aclose(self) -> None:
        """Nothing to release."""


def _chunks(answer: _Answer) -> Iterator[tuple[Chunk, int]]:
    """The answer's chunks, each with the number of completion tokens it counts for."""
    for index, call in enumerate(answer.calls):
        yield ToolCallDelta(index=index, id=call.id, name=call.name), 0
        for fragment in split_arguments(call.arguments):
            yield ToolCallDelta(index=index, arguments=fragment), 1
    if not answer.calls:
        for token in split_tokens(answer.text):
            yield TextDelta(token), 1


def _answer(request: GenerationRequest) -> _Answer:
    messages = request.messages
    if messages and messages[-1].role == "tool":
        return _Answer(_tool_results_reply(messages), ())
    user_text = _last_user_text(messages)
    names = _names_to_call(request, user_text)
    if not request.parallel_tool_calls:
        names = names[:1]
    if names:
        arguments = _first_json_object(user_text) or "{}"
        calls = tuple(
            ToolCall(id=_call_id(name, user_text, index), name=name, arguments=arguments)
            for index, name in enumerate(names)
        )
        return _Answer("", calls)
    return _Answer("You said: " + user_text + _image_lines(messages), ())


def _image_lines(messages: Sequence[ChatMessage]) -> str:
    last = next((message for message in reversed(messages) if message.role == "user"), None)
    images = last.images if last is not None else ()
    return "".join(f"\nImage {number}: {_describe(image)}" for number, image in enumerate(images, 1))


def _describe(image: ImagePart) -> str:
    inline = parse_data_url(image.url)
    if inline is None:
        what = image.url
    else:
        digest = hashlib.sha256(inline.data).hexdigest()[:12]
        what = f"{inline.media_type}, {len(inline.data)} bytes, sha256 {digest}"
        if image.file_id is not None:
            what = f"{image.file_id}, {what}"
    return what if image.detail is None else f"{what}, detail {image.detail}"


def _tool_results_reply(messages: Sequence[ChatMessage]) -> str:
    names = {call.id: call.name for message in messages for call in message.tool_calls}
    start = len(messages)
    while start > 0 and messages[start - 1].role == "tool":
        start -= 1
    lines = []
    for result in messages[start:]:
        call_id = result.tool_call_id or ""
        lines.append(f"{names.get(call_id, call_id)} returned: {result.text}")
    return "\n".join(lines)


def _names_to_call(request: GenerationRequest, user_text: str) -> list[str]:
    """The functions to call, in order; empty for a text reply."""
    choice = request.tool_choice
    if not request.tools or choice == "none":
        return []
    if isinstance(choice, Mapping):
        function = choice.get("function")
        forced = function.get("name") if isinstance(function, Mapping) else None
        if isinstance(forced, str) and forced:
            return [forced]
    named = _named_tools(request, user_text)
    if choice == "required":
        return named or [request.tools[0].name]
    last = request.messages[-1] if request.messages else None
    return named if last is not None and last.role == "user" else []


def _named_tools(request: GenerationRequest, text: str) -> list[str]:
    positions: dict[str, int] = {}
    for tool in request.tools:
        match = re.search(rf"(?<!\w){re.escape(tool.name)}(?!\w)", text)
        if match is not None and tool.name not in positions:
            positions[tool.name] = match.start()
    return sorted(positions, key=lambda name: positions[name])


def _first_json_object(text: str) -> str | None:
    decoder = json.JSONDecoder()
    start = text.find("{")
    for _ in range(_MAX_JSON_CANDIDATES):
        if start < 0:
            return None
        try:
            value, end = decoder.raw_decode(text, start)
        except (ValueError, RecursionError):
            pass
        else:
            if isinstance(value, dict):
                return text[start:end]
        start = text.find("{", start + 1)
    return None


def _call_id(name: str, content: str, index: int) -> str:
    return "call_" + hashlib.sha256(f"{name}{content}{index}".encode()).hexdigest()[:24]


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    last = next((message for message in reversed(messages) if message.role == "user"), None)
    if last is None:
        return ""
    return "\n".join(part.text for part in last.parts if isinstance(part, TextPart))


def _failure(request: GenerationRequest) -> EngineError | None:
    match = _FAILURE_MARKER.search(_last_user_text(request.messages))
    if match is None:
        return None
    code = match.group(1) or "server_error"
    for known in get_args(EngineErrorCode):
        if code == known:
            return EngineError(FAILURE_MESSAGE, known)
    return EngineError(FAILURE_MESSAGE)
