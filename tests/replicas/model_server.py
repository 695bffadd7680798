"""A model server speaking OpenAI's streaming chat completions, on loopback, that records every
generation it is asked for: how many times each conversation was generated, and when a generation
was cut off. The replicas' `openai` engine calls it, so a test sees exactly how often runs execute.

It answers as the built-in engine does: `You said: <last user message>` one word a chunk, a call of
a function tool that the last user message names, or `<name> returned: <output>` after tool results.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Generation:
    """One request for a completion."""

    prompt: str
    started: float
    tokens: int = 0
    # When the replica closed the connection before the answer ended (a cancel, a kill).
    cut_at: float | None = None
    finished: bool = False


@dataclass
class ModelServer:
    """Runs on an event loop of its own, in a thread, so that blocking tests can use it."""

    # Seconds between chunks.
    token_delay: float = 0.0
    generations: list[Generation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="model-server", daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"

    def start(self) -> ModelServer:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            # Connections still streaming end with the loop.

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def of(self, prompt: str) -> list[Generation]:
        """The generations whose last user message was `prompt`."""
        with self._lock:
            return [generation for generation in self.generations if generation.prompt == prompt]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation: Generation | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
            )
            body = json.loads(await reader.readexactly(length))
            messages: list[dict[str, Any]] = body["messages"]
            prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
            if isinstance(prompt, list):
                prompt = "".join(part.get("text", "") for part in prompt)
            generation = Generation(prompt, time.monotonic())
            with self._lock:
                self.generations.append(generation)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            for frame in _answer(messages, body.get("tools") or []):
                writer.write(frame)
                await writer.drain()
                generation.tokens += 1
                if self.token_delay:
                    await asyncio.sleep(self.token_delay)
                # A closed connection shows on the next read: look without waiting.
                if reader.at_eof():
                    raise ConnectionResetError
            generation.finished = True
        except (asyncio.IncompleteReadError, ConnectionError):
            if generation is not None:
                generation.cut_at = time.monotonic()
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> bytes:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": []}
    body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish}]
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def _answer(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[bytes]:
    last = messages[-1] if messages else {"role": "user", "content": ""}
    if last["role"] == "tool":
        names = {
            call["id"]: call["function"]["name"] for message in messages for call in message.get("tool_calls") or []
        }
        text = "\n".join(
            f"{names.get(m['tool_call_id'], m['tool_call_id'])} returned: {m['content']}"
            for m in messages
            if m["role"] == "tool"
        )
        return [_chunk({"content": text}), _chunk(finish="stop"), b"data: [DONE]\n\n"]
    prompt = last["content"] if isinstance(last["content"], str) else ""
    named = [tool["function"]["name"] for tool in tools if tool["function"]["name"] in prompt.split()]
    if named:
        call = {"index": 0, "id": f"call_{abs(hash(prompt)) % 10**8}", "type": "function"}
        call["function"] = {"name": named[0], "arguments": "{}"}
        return [_chunk({"tool_calls": [call]}), _chunk(finish="tool_calls"), b"data: [DONE]\n\n"]
    words = f"You said: {prompt}".split(" ")
    frames = [_chunk({"content": word if index == 0 else " " + word}) for index, word in enumerate(words)]
    return [*frames, _chunk(finish="stop"), b"data: [DONE]\n\n"]
