"""The events of one stretch of a run's execution, published once and followed by any number of
transports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar

from sovereign_server.runs.model import Event, MessageDelta

T = TypeVar("T")


class Channel(Generic[T]):
    """The events of one execution, kept from the start so that a subscriber sees all of them, in
    order, however late it attaches."""

    def __init__(self) -> None:
        self._events: list[T] = []
        self._closed = False
        self._changed = asyncio.Event()

    def publish(self, event: T) -> None:
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

    async def follow(self, heartbeat: float | None = None) -> AsyncGenerator[list[T]]:
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


class EventChannel(Channel[Event]):
    """The events of one stretch of a run's execution (until it ends or waits for tool outputs)."""


def merge_text_deltas(batch: list[Event]) -> list[Event]:
    """The batch with each run of consecutive text deltas of one message part joined into one delta.

    A follower gets a batch of several deltas only when it fell behind the engine (a slow client or
    pipe): joining them then costs nothing in latency and saves a frame each, as OpenAI's own deltas
    often carry several tokens. A follower that keeps up gets one delta at a time, unchanged."""
    if len(batch) < 2:
        return batch
    merged: list[Event] = []
    for event in batch:
        data = event.data
        if merged and isinstance(data, MessageDelta):
            last = merged[-1].data
            if (
                isinstance(last, MessageDelta)
                and (last.message_id, last.index) == (data.message_id, data.index)
                and not (last.annotations or data.annotations)
            ):
                merged[-1] = Event(event.name, MessageDelta(data.message_id, last.text + data.text, data.index))
                continue
        merged.append(event)
    return merged
