"""The events of one stretch of a run's execution, published once and followed by any number of
transports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from sovereign_server.runs.model import Event


class EventChannel:
    """The events of one stretch of a run's execution (until it ends or waits for tool outputs),
    kept from the start so that a subscriber sees all of them, in order, however late it attaches."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._closed = False
        self._changed = asyncio.Event()

    def publish(self, event: Event) -> None:
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

    async def follow(self, heartbeat: float | None = None) -> AsyncGenerator[list[Event]]:
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
