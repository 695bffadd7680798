"""A run's events, and their two renderings: OpenAI's SSE frames and typed gRPC messages."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message as ProtoMessage

from sovereign_assistant.v1 import run_pb2
from sovereign_server.convert import openai_json

DONE = "done"
SSE_DONE = b"event: done\ndata: [DONE]\n\n"
# A comment line: clients ignore it, proxies see traffic on a long silence.
SSE_HEARTBEAT = b": keep-alive\n\n"


@dataclass(frozen=True)
class RunEvent:
    """One event, named as OpenAI names it; `field` is the `RunEvent.data` member `payload` fills."""

    name: str
    field: str | None = None
    payload: ProtoMessage | None = None

    def to_sse(self) -> bytes:
        if self.payload is None:
            return SSE_DONE
        if isinstance(self.payload, run_pb2.MessageDelta):
            # Most of a stream: rendered directly, the same JSON at a tenth of the general printer's cost.
            data = json.dumps(_message_delta_json(self.payload), separators=(",", ":"), ensure_ascii=False)
        else:
            data = json.dumps(openai_json(self.payload), separators=(",", ":"), ensure_ascii=False)
        return f"event: {self.name}\ndata: {data}\n\n".encode()

    def to_proto(self) -> run_pb2.RunEvent:
        event = run_pb2.RunEvent(event=self.name)
        if self.field is not None and self.payload is not None:
            getattr(event, self.field).CopyFrom(self.payload)
        return event


DONE_EVENT = RunEvent(DONE)


def _message_delta_json(delta: run_pb2.MessageDelta) -> dict[str, Any]:
    return {
        "id": delta.id,
        "object": delta.object,
        "delta": {
            "content": [
                {"index": part.index, "type": part.type, "text": {"value": part.text.value, "annotations": []}}
                for part in delta.delta.content
            ]
        },
    }


class EventChannel:
    """The events of one stretch of a run's execution (until it ends or waits for tool outputs),
    kept from the start so that a subscriber sees all of them, in order, however late it attaches."""

    def __init__(self) -> None:
        self._events: list[RunEvent] = []
        self._closed = False
        self._changed = asyncio.Event()

    def publish(self, event: RunEvent) -> None:
        self._events.append(event)
        self._wake()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._wake()

    @property
    def closed(self) -> bool:
        return self._closed

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def follow(self, heartbeat: float | None = None) -> AsyncGenerator[list[RunEvent]]:
        """Every event from the first, in batches of those published since the last batch (so a
        fast engine's tokens travel together); an empty batch after `heartbeat` silent seconds."""
        position = 0
        while True:
            if position < len(self._events):
                batch = self._events[position:]
                position += len(batch)
                yield batch
                continue
            if self._closed:
                return
            changed = self._changed
            if heartbeat is None:
                await changed.wait()
                continue
            try:
                await asyncio.wait_for(changed.wait(), heartbeat)
            except TimeoutError:
                yield []
