"""What runs beside the executions: ending the runs (and the Responses API's responses) a stopped
process left unfinished, expiring runs that waited too long, and writing the replies being
generated so that pollers see them grow."""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import to_thread
from collections.abc import Awaitable, Callable, Collection
from typing import Any, Protocol, TypeVar

from sovereign_server.runs.model import RUNS
from sovereign_server.stored import stored
from sovereign_storage import LastError, Repository, ResponseStatus, RunRecord, RunStatus, TextContent

logger = logging.getLogger("sovereign.runs")

INTERRUPTED_MESSAGE = "The server stopped while the run was in progress."
INTERRUPTED_RESPONSE_MESSAGE = "The server stopped while the response was in progress."
# The statuses a response may fail from (`responses.model.RESPONSES`, which a test holds equal).
UNFINISHED_RESPONSES = (ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS)

T = TypeVar("T")
# Runs `work` unless another replica does the same work right now (then returns None).
Once = Callable[[str, Callable[[], T]], T | None]


class GrowingText(Protocol):
    @property
    def text(self) -> str: ...


class GrowingReplies:
    """Replies with text not yet written, by message id; one transaction writes them all (per-reply
    writes made SQLite's one writer the limit)."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository
        self._replies: dict[str, GrowingText] = {}

    def grew(self, message_id: str, reply: GrowingText) -> None:
        self._replies[message_id] = reply

    def forget(self, message_id: str) -> None:
        """The reply's final text is being written: an earlier snapshot must not follow it."""
        self._replies.pop(message_id, None)

    async def flush(self) -> None:
        if not self._replies:
            return
        contents = {message_id: (TextContent(reply.text),) for message_id, reply in self._replies.items()}
        self._replies.clear()
        await stored(self._repository, self._repository.update_growing_messages, contents)


def end_interrupted_runs(repository: Repository) -> list[str]:
    """Ends what a stopped process was executing: running runs fail, cancelling ones are cancelled.
    A run waiting for tool outputs waits on: it ends by expiry."""
    return repository.end_interrupted_runs(
        LastError("server_error", INTERRUPTED_MESSAGE),
        failing=RUNS.sources(RunStatus.FAILED),
        cancelling=RUNS.sources(RunStatus.CANCELLED),
    )


def end_interrupted_responses(repository: Repository, only: Collection[str] | None = None) -> list[str]:
    """Fails the responses a stopped process was executing, in the background or not (those of
    `only`, when given)."""
    return repository.end_interrupted_responses(
        LastError("server_error", INTERRUPTED_RESPONSE_MESSAGE), UNFINISHED_RESPONSES, only
    )


def _alone(name: str, work: Callable[[], Any]) -> Any:
    return work()


class Housekeeping:
    """The expiry sweeper and the reply flusher, as two background tasks."""

    def __init__(
        self,
        repository: Repository,
        growing: GrowingReplies,
        *,
        flush_interval: float,
        sweep_interval: float,
        once: Once[Any] = _alone,
    ) -> None:
        self._repository = repository
        self._growing = growing
        self._flush_interval = flush_interval
        self._sweep_interval = sweep_interval
        self._once = once
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, *, alone: bool = True) -> None:
        if alone:
            # Only a replica starting alone knows that every unfinished response was left by a
            # process that is gone (on SQLite, none records its replica). Among replicas, those of
            # a replica gone are failed by `Coordination`, as its runs are.
            failed = await to_thread(end_interrupted_responses, self._repository)
            if failed:
                logger.warning(
                    "failed %d response(s) interrupted by the previous shutdown: %s", len(failed), ", ".join(failed)
                )
        self._tasks = [
            asyncio.create_task(self._every(self._sweep_interval, self._expire, "expiry sweep"), name="run-expiry"),
            asyncio.create_task(
                self._every(self._flush_interval, self._growing.flush, "writing replies in progress"),
                name="reply-flusher",
            ),
        ]

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def _expire(self) -> None:
        expiring = RUNS.sources(RunStatus.EXPIRED)

        def expire() -> list[RunRecord]:
            return self._repository.expire_runs(int(time.time()), expiring)

        # One sweep at a time across replicas: a second would only find what the first ended.
        for run in await to_thread(self._once, "sovereign.expiry", expire) or []:
            logger.info("run %s expired", run.id)

    @staticmethod
    async def _every(interval: float, work: Callable[[], Awaitable[None]], what: str) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await work()
            except Exception:
                logger.exception("%s failed", what)
