"""One model turn, independent of the API it serves: the engine's stream consumed chunk by chunk,
its text and tool-call fragments handed to a `ReplySink` as they come, and the whole reply
assembled (text, complete tool calls, usage). The Assistants run execution is one sink; another API
over the same engines supplies its own.

A `Cancellation` stops the turn: at once while the engine is silent, else after the current chunk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from sovereign_server.engines import Chunk, Engine, EngineError, Finish, FinishReason, GenerationRequest, TextDelta
from sovereign_server.engines import ToolCallDelta as EngineToolCallDelta
from sovereign_storage import FunctionCall, Usage


class ReplySink(Protocol):
    """Receives a reply as it streams."""

    async def on_text(self, text: str) -> None: ...

    async def on_tool_call(self, fragment: EngineToolCallDelta) -> None: ...


class TokenTiming(Protocol):
    """Told how long the first token took, and each one after it."""

    def first_token(self, seconds: float) -> None: ...

    def token_gap(self, seconds: float) -> None: ...


@dataclass
class Cancellation:
    """A request to stop one execution.

    The task may be interrupted only while it waits for the engine's next chunk: anywhere else it
    may be mid-write, and a write cut off would leave records half-updated."""

    requested: bool = False
    task: asyncio.Task[None] | None = None
    _waiting_for_engine: bool = False

    def request(self) -> None:
        self.requested = True
        if self._waiting_for_engine and self.task is not None:
            # The engine stops at once, closing its upstream request, even if no token comes.
            self.task.cancel()

    async def next_chunk(self, stream: AsyncIterator[Chunk]) -> Chunk | None:
        """The engine's next chunk; None at its end, or when a cancel interrupted the wait."""
        self._waiting_for_engine = True
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.requested or task is None:
                raise  # the server is stopping
            task.uncancel()
            return None
        finally:
            self._waiting_for_engine = False


@dataclass
class _CallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Reply:
    """A finished turn."""

    finish_reason: FinishReason
    text: str
    tool_calls: tuple[FunctionCall, ...]
    usage: Usage


class Generation:
    """One engine turn for `request`, fed to `sink`; its text and usage so far stay readable while
    it runs and after it failed (a partial reply is kept, and its tokens are billed)."""

    def __init__(
        self, engine: Engine, request: GenerationRequest, prompt_tokens: int, timing: TokenTiming | None = None
    ) -> None:
        self._engine = engine
        self._request = request
        self._timing = timing
        self._pieces: list[str] = []
        self._calls: dict[int, _CallParts] = {}
        self._prompt_tokens = prompt_tokens
        self._completion_tokens = 0

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    @property
    def usage(self) -> Usage:
        return Usage(self._prompt_tokens, self._completion_tokens)

    async def run(self, sink: ReplySink, cancellation: Cancellation) -> Reply | None:
        """The finished reply; None when cancelled. Raises EngineError if the engine fails."""
        finish: Finish | None = None
        last = time.perf_counter()
        stream = self._engine.generate(self._request)
        try:
            while not cancellation.requested:
                chunk = await cancellation.next_chunk(stream)
                if chunk is None:
                    break
                if isinstance(chunk, Finish):
                    finish = chunk
                    continue
                if self._timing is not None:
                    now = time.perf_counter()
                    if self._completion_tokens:
                        self._timing.token_gap(now - last)
                    else:
                        self._timing.first_token(now - last)
                    last = now
                # Until the engine reports usage, each fragment counts as a token.
                self._completion_tokens += 1
                if isinstance(chunk, TextDelta):
                    self._pieces.append(chunk.text)
                    await sink.on_text(chunk.text)
                else:
                    self._add_call_fragment(chunk)
                    await sink.on_tool_call(chunk)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if cancellation.requested:
            return None
        if finish is None:
            raise EngineError("The engine ended without finishing its reply.")
        if finish.usage is not None:
            # The engine's own count wins over ours.
            self._prompt_tokens, self._completion_tokens = finish.usage.prompt_tokens, finish.usage.completion_tokens
        calls = tuple(
            FunctionCall(parts.id, parts.name, "".join(parts.arguments)) for _, parts in sorted(self._calls.items())
        )
        return Reply(finish.reason, self.text, calls, self.usage)

    def _add_call_fragment(self, fragment: EngineToolCallDelta) -> None:
        parts = self._calls.setdefault(fragment.index, _CallParts())
        parts.id = fragment.id or parts.id
        parts.name = fragment.name or parts.name
        parts.arguments.append(fragment.arguments)
