"""How the replicas of one service share the execution of runs (and the cancels of responses).

A run executes on the replica that made it active (created it, received its tool outputs, or
cancelled it while it waited), in the transaction that made it active, so each stretch executes
exactly once. What crosses replicas goes through `Coordination`:

    claim        which replica executes a run, recorded with the status change that starts it
    follow       the events of a run executing on another replica, for a stream opened here
    cancel       a cancel received here for a run executing elsewhere stops it there; for a
                 background response, every replica hears it, and the one executing it stops it
    recovery     runs whose replica is gone are ended as a restart ends them, once; so are the
                 responses of that replica (recorded, `replica_id`, where each was created)
    once         work one replica at a time does (the expiry sweep)

`LocalCoordination` is one process alone on its database (SQLite): nothing crosses, and recovery ends
every unfinished run at start and stop, as a single process always did. The shared implementation
on PostgreSQL is `sovereign_server.replicas.DatabaseCoordination`.
"""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import AsyncGenerator, Callable
from typing import Protocol, TypeVar

from sovereign_server.runs.background import end_interrupted_runs
from sovereign_server.runs.channel import EventChannel
from sovereign_server.runs.execution import RunExecution
from sovereign_server.runs.model import DONE, RUNS, Event
from sovereign_storage import Repository, RunRecord

T = TypeVar("T")


class EventSource(Protocol):
    """The events of one stretch of a run, from its first, in batches (an empty batch is a heartbeat)."""

    def follow(self, heartbeat: float | None = None) -> AsyncGenerator[list[Event]]: ...


class RunHost(Protocol):
    """What coordination asks of this replica's runs."""

    def execution(self, run_id: str) -> RunExecution | None:
        """The stretch of `run_id` executing here, if any."""

    async def cancelled_elsewhere(self, run_id: str) -> None:
        """Another replica moved the run to `cancelling`: stop its execution here."""


class ResponseHost(Protocol):
    """What coordination asks of this replica's responses."""

    async def cancelled_elsewhere(self, response_id: str) -> None:
        """Another replica cancelled the response in storage: stop its execution, if it runs here."""


class Coordination(Protocol):
    @property
    def replica_id(self) -> str | None:
        """This replica, as recorded with the responses it executes; None for a process alone."""

    async def start(self, host: RunHost) -> list[str]:
        """Joins the service; ends the runs left unfinished by replicas that are gone, and returns their ids."""

    async def stop(self) -> list[str]:
        """Ends the runs this replica leaves unfinished (failed, or cancelled), returns their ids, and leaves."""

    def claim(self, run_id: str) -> None:
        """Blocking: records that this replica executes the run's next stretch. Called inside the
        transaction that makes the run active here."""

    def launched(self, execution: RunExecution) -> None:
        """A stretch started executing here."""

    async def follow(self, repository: Repository, run: RunRecord) -> EventSource | None:
        """The events of `run` executing on another replica; None if it executes on none."""

    async def cancel_elsewhere(self, run: RunRecord) -> None:
        """Asks the replica executing `run` (moved to `cancelling` here) to stop it."""

    def host_responses(self, host: ResponseHost) -> None:
        """Where cancels of responses received by other replicas go."""

    async def cancel_response_elsewhere(self, response_id: str) -> None:
        """Asks whichever replica executes the response (cancelled in storage here) to stop it."""

    def once(self, name: str, work: Callable[[], T]) -> T | None:
        """Blocking: `work()`, unless another replica is doing `name` right now (then None)."""

    def alone(self) -> bool:
        """Whether this replica started with no other serving: then whatever was left unfinished
        was left by processes that are gone."""


class LocalCoordination:
    """A single process on its own database: every run executes here."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository

    @property
    def replica_id(self) -> str | None:
        return None

    async def start(self, host: RunHost) -> list[str]:
        # Every unfinished run was left by the previous process on this database.
        return await to_thread(end_interrupted_runs, self._repository)

    async def stop(self) -> list[str]:
        return await to_thread(end_interrupted_runs, self._repository)

    def claim(self, run_id: str) -> None:
        pass

    def launched(self, execution: RunExecution) -> None:
        pass

    async def follow(self, repository: Repository, run: RunRecord) -> EventSource | None:
        return None

    async def cancel_elsewhere(self, run: RunRecord) -> None:
        pass

    def host_responses(self, host: ResponseHost) -> None:
        pass

    async def cancel_response_elsewhere(self, response_id: str) -> None:
        pass

    def once(self, name: str, work: Callable[[], T]) -> T | None:
        return work()

    def alone(self) -> bool:
        return True


def settled(run: RunRecord) -> EventChannel:
    """The events of a run that executes nowhere: its status as it is, then `done`."""
    channel = EventChannel()
    channel.publish(Event(RUNS.event(run.status), run))
    channel.publish(DONE)
    channel.close()
    return channel
