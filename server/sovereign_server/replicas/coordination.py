"""`Coordination` of replicas sharing one PostgreSQL database: leases, event fan-out, cancels.

- **Leases.** Each replica has a row in `replicas` whose `heartbeat_at` it renews every
  `lease / 5` seconds. A run's claim names the replica executing it; a claim whose replica's lease
  ran out (a replica killed, or cut off) is orphaned, and one replica (a PostgreSQL advisory lock)
  ends such runs as a restart does: `failed` with `server_error`, or `cancelled`. A response
  records the replica that created it, which executes it; the same replica fails the unfinished
  responses of replicas gone.
- **Events.** A stretch's events stay in the executing replica's memory (`EventChannel`): the
  database sees none of them unless a replica asks to follow that run. The follower's replica
  then sends the owner `follow <run> <stretch> <replica>` (NOTIFY on the owner's channel); the
  owner writes the stretch's events, from its first, to `run_events` in batches (one transaction
  each, however many tokens queued meanwhile), numbered from 1, and notifies the followers'
  replicas. A follower reads the numbers after the last it has (a late or reconnecting follower
  reads the backlog), so it gets every event once and in order. NOTIFY payloads carry only ids:
  PostgreSQL limits them to 8000 bytes.
- **Cancels.** A cancel received by another replica moves the run to `cancelling` in the database
  and sends the owner `cancel <run>`, which stops its engine. A background response has no claim:
  the replica that cancels it in the database sends `cancel-response <response>` to all replicas,
  and the one executing it stops it.

Each replica LISTENs on its own channel and on one channel all replicas share, on one connection
watched by the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import to_thread
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import peewee

from sovereign_server.replicas.events import decode, encode
from sovereign_server.runs.background import INTERRUPTED_MESSAGE, INTERRUPTED_RESPONSE_MESSAGE, UNFINISHED_RESPONSES
from sovereign_server.runs.channel import merge_text_deltas
from sovereign_server.runs.coordination import EventSource, ResponseHost, RunHost
from sovereign_server.runs.execution import RunExecution
from sovereign_server.runs.model import DONE, MESSAGES, RUNS, STEPS, Event, EventName
from sovereign_storage import LastError, Repository, RunRecord, RunStatus, new_id
from sovereign_storage.replicas import EndedRun, Listener, ReplicaStore

logger = logging.getLogger("sovereign.replicas")

T = TypeVar("T")

# The channel every replica listens on, besides its own.
ALL_REPLICAS = "sovereign_replicas"
# Statuses in which a run is executing somewhere (or is about to be ended for a replica gone).
EXECUTING = frozenset({RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.CANCELLING})
# Seconds a follower waits for word of new events before it looks at the run itself.
FOLLOWER_POLL = 1.0
# Seconds a follow request may wait for its stretch to start here.
FOLLOW_REQUEST_TTL = 10.0


def replica_channel(replica_id: str) -> str:
    return f"sovereign_{replica_id}"


@dataclass
class _Mirror:
    """The events of one stretch executing here, being written for followers on other replicas."""

    stretch: int
    followers: set[str] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class DatabaseCoordination:
    def __init__(
        self,
        repository: Repository,
        store: ReplicaStore,
        *,
        sweep_interval: float = 1.0,
        replica_id: str | None = None,
    ) -> None:
        self._repository = repository
        self._store = store
        self.replica_id = replica_id or new_id("replica")
        self._channel = replica_channel(self.replica_id)
        self._sweep_interval = sweep_interval
        self._host: RunHost | None = None
        self._responses: ResponseHost | None = None
        self._listener: Listener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Tasks started by notifications (cancels, writes of notifications), kept referenced.
        self._chores: set[asyncio.Task[Any]] = set()
        # Run id -> the stretch this replica claimed last; a follow request names the stretch it wants.
        self._stretches: dict[str, int] = {}
        self._mirrors: dict[str, _Mirror] = {}
        # Follow requests that came before their stretch started here: run id -> (stretch, replica, when).
        self._wanted: dict[str, tuple[int, str, float]] = {}
        # Followers on this replica, woken when events of their run may have been written.
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._alone = False

    @property
    def lease_seconds(self) -> float:
        return self._store.lease_seconds

    # ------------------------------------------------------------------ joining and leaving

    async def start(self, host: RunHost) -> list[str]:
        self._host = host
        self._loop = asyncio.get_running_loop()
        await to_thread(self._store.register, self.replica_id)
        self._alone = await to_thread(self._store.alive_replicas) == [self.replica_id]
        await self._connect_listener()
        self._tasks = [
            asyncio.create_task(self._heartbeat(), name="replica-heartbeat"),
            asyncio.create_task(self._sweep_orphans(), name="replica-recovery"),
        ]
        logger.info("replica %s joined", self.replica_id)
        # Only the runs of replicas gone: the others are executing theirs. Alone, also the responses
        # whose replica was not recorded (stored before it was).
        return await self._end_orphans(owner=None, unowned=self._alone)

    async def stop(self) -> list[str]:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        mirrors = [mirror.task for mirror in self._mirrors.values() if mirror.task is not None]
        if mirrors:
            # Their executions have ended: let the last events reach the followers.
            await asyncio.wait(mirrors, timeout=2.0)
        ended = await self._end_orphans(owner=self.replica_id)
        await to_thread(self._store.retire, self.replica_id)
        self._close_listener()
        for chore in list(self._chores):
            chore.cancel()
        return ended

    # ------------------------------------------------------------------ claims and executions here

    def claim(self, run_id: str) -> None:
        self._stretches[run_id] = self._store.claim(run_id, self.replica_id)

    def launched(self, execution: RunExecution) -> None:
        run_id = execution.run.id
        stretch = self._stretches.get(run_id)
        task = execution.cancellation.task
        if task is not None and stretch is not None:
            task.add_done_callback(lambda _: self._claimed_stretch_ended(run_id, stretch))
        wanted = self._wanted.pop(run_id, None)
        if wanted is not None and stretch == wanted[0]:
            self._start_mirror(execution, run_id, stretch, wanted[1])

    def _claimed_stretch_ended(self, run_id: str, stretch: int) -> None:
        if self._stretches.get(run_id) == stretch:
            del self._stretches[run_id]

    # ------------------------------------------------------------------ following runs executing elsewhere

    async def follow(self, repository: Repository, run: RunRecord) -> EventSource | None:
        if run.status not in EXECUTING:
            return None
        owner = await to_thread(self._store.owner, run.id)
        if owner is None or owner.replica_id == self.replica_id:
            return None
        return _Follower(self, repository, run, owner.replica_id, owner.stretch)

    def _watch(self, run_id: str, wake: asyncio.Event) -> None:
        self._watchers.setdefault(run_id, set()).add(wake)

    def _unwatch(self, run_id: str, wake: asyncio.Event) -> None:
        watchers = self._watchers.get(run_id)
        if watchers is not None:
            watchers.discard(wake)
            if not watchers:
                del self._watchers[run_id]

    def _wake(self, run_id: str) -> None:
        for wake in self._watchers.get(run_id, ()):
            wake.set()

    # ------------------------------------------------------------------ writing events for followers

    def _follow_requested(self, run_id: str, stretch: int, replica: str) -> None:
        mirror = self._mirrors.get(run_id)
        if mirror is not None and mirror.stretch == stretch:
            mirror.followers.add(replica)
            # What is written already may have been read before the request: look again.
            self._chore(to_thread(self._store.notify, replica_channel(replica), f"events {run_id}"))
            return
        assert self._host is not None
        execution = self._host.execution(run_id)
        if execution is None or self._stretches.get(run_id) != stretch:
            # The stretch may be about to start here (its claim committed, its task not yet made).
            now = time.monotonic()
            self._wanted = {key: value for key, value in self._wanted.items() if now - value[2] < FOLLOW_REQUEST_TTL}
            self._wanted[run_id] = (stretch, replica, now)
            return
        self._start_mirror(execution, run_id, stretch, replica)

    def _start_mirror(self, execution: RunExecution, run_id: str, stretch: int, replica: str) -> None:
        mirror = _Mirror(stretch, {replica})
        self._mirrors[run_id] = mirror
        mirror.task = asyncio.create_task(self._write_events(execution, run_id, mirror), name=f"mirror-{run_id}")

    async def _write_events(self, execution: RunExecution, run_id: str, mirror: _Mirror) -> None:
        """Writes the stretch's events from its first, a batch per transaction: however many the
        engine produced while the previous batch was written."""
        number = 0
        try:
            async for batch in execution.channel.follow():
                rows = [encode(event) for event in merge_text_deltas(batch)]
                notices = [(replica_channel(replica), f"events {run_id}") for replica in sorted(mirror.followers)]
                await to_thread(self._store.append_events, run_id, mirror.stretch, number + 1, rows, notices)
                number += len(rows)
        except peewee.IntegrityError:
            # Another replica ended the run, taking this one for gone: its events stand.
            logger.warning("run %s: events not written, another replica ended the run", run_id)
        except Exception:
            logger.exception("run %s: writing events for followers failed", run_id)
        finally:
            if self._mirrors.get(run_id) is mirror:
                del self._mirrors[run_id]

    # ------------------------------------------------------------------ cancels

    async def cancel_elsewhere(self, run: RunRecord) -> None:
        owner = await to_thread(self._store.owner, run.id)
        if owner is not None and owner.replica_id != self.replica_id:
            # A replica gone does not answer: recovery ends the run `cancelled` instead.
            await to_thread(self._store.notify, replica_channel(owner.replica_id), f"cancel {run.id}")

    def host_responses(self, host: ResponseHost) -> None:
        self._responses = host

    async def cancel_response_elsewhere(self, response_id: str) -> None:
        # Which replica executes a response is recorded nowhere: each hears it and looks.
        await to_thread(self._store.notify, ALL_REPLICAS, f"cancel-response {response_id}")

    # ------------------------------------------------------------------ work for one replica at a time

    def once(self, name: str, work: Callable[[], T]) -> T | None:
        return self._store.exclusively(name, work)[1]

    def alone(self) -> bool:
        return self._alone

    async def _end_orphans(self, owner: str | None, *, unowned: bool = False) -> list[str]:
        """Ends the runs of replicas gone (or, with `owner`, this replica's), and writes their
        last events for whoever follows them. Without `owner`, also fails the responses of replicas
        gone (with `unowned`, those of no recorded replica too); this replica's own are failed by
        `ResponseManager.stop`, after their grace."""

        def end() -> tuple[list[EndedRun], list[str]]:
            ended = self._store.end_orphaned_runs(
                LastError("server_error", INTERRUPTED_MESSAGE),
                failing=RUNS.sources(RunStatus.FAILED),
                cancelling=RUNS.sources(RunStatus.CANCELLED),
                owner=owner,
            )
            for run in ended:
                self._store.append_events(
                    run.run.id, run.stretch, run.last_number + 1, [encode(e) for e in _ending_events(run)]
                )
            if ended:
                self._store.notify(ALL_REPLICAS, "ended " + " ".join(run.run.id for run in ended))
            failed: list[str] = []
            if owner is None:
                # Their followers read storage, so they see the failure with no notification.
                failed = self._store.end_orphaned_responses(
                    LastError("server_error", INTERRUPTED_RESPONSE_MESSAGE), UNFINISHED_RESPONSES, unowned=unowned
                )
            return ended, failed

        if owner is None:
            done: tuple[list[EndedRun], list[str]] | None = await to_thread(self.once, "sovereign.recovery", end)
            ended, failed = done or ([], [])
        else:
            ended, failed = await to_thread(end)
        if failed:
            logger.warning("failed %d response(s) of replicas gone: %s", len(failed), ", ".join(failed))
        return [run.run.id for run in ended]

    async def _sweep_orphans(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                ended = await self._end_orphans(owner=None)
                if ended:
                    logger.warning("ended %d run(s) of replicas gone: %s", len(ended), ", ".join(ended))
            except Exception:
                logger.exception("ending the runs of replicas gone failed")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 5)
            try:
                if not await to_thread(self._store.renew, self.replica_id):
                    logger.error("replica %s was taken for gone; its unfinished runs were ended", self.replica_id)
            except Exception:
                logger.exception("renewing the lease of replica %s failed", self.replica_id)

    # ------------------------------------------------------------------ notifications

    async def _connect_listener(self) -> None:
        listener = await to_thread(Listener, self._store.database)
        await to_thread(listener.listen, self._channel)
        await to_thread(listener.listen, ALL_REPLICAS)
        self._listener = listener
        assert self._loop is not None
        self._loop.add_reader(listener.fileno(), self._on_notifications)

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and self._loop is not None:
            self._loop.remove_reader(listener.fileno())
            listener.close()

    def _on_notifications(self) -> None:
        assert self._listener is not None
        try:
            received = self._listener.received()
        except Exception:
            logger.exception("the notification connection broke; reconnecting")
            self._close_listener()
            self._chore(self._reconnect())
            return
        for _, payload in received:
            kind, _, rest = payload.partition(" ")
            words = rest.split()
            if kind in ("events", "ended"):
                for run_id in words:
                    self._wake(run_id)
            elif kind == "follow" and len(words) == 3:
                self._follow_requested(words[0], int(words[1]), words[2])
            elif kind == "cancel" and words and self._host is not None:
                self._chore(self._host.cancelled_elsewhere(words[0]))
            elif kind == "cancel-response" and words and self._responses is not None:
                self._chore(self._responses.cancelled_elsewhere(words[0]))

    async def _reconnect(self) -> None:
        while self._listener is None:
            try:
                await self._connect_listener()
            except Exception:
                logger.warning("reconnecting for notifications failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
        # Notifications may have been missed meanwhile: every follower looks again.
        for run_id in list(self._watchers):
            self._wake(run_id)

    def _chore(self, work: Any) -> None:
        chore = asyncio.ensure_future(work)
        self._chores.add(chore)
        chore.add_done_callback(self._chore_done)

    def _chore_done(self, chore: asyncio.Future[Any]) -> None:
        self._chores.discard(chore)
        if not chore.cancelled() and chore.exception() is not None:
            logger.error("replica chore failed", exc_info=chore.exception())


def _ending_events(run: EndedRun) -> list[Event]:
    """The events of a run ended for its replica gone, as its execution would have sent them."""
    events = [Event(MESSAGES.event(message.status), message) for message in run.messages]
    events += [Event(STEPS.event(step.status), step) for step in run.steps]
    return [*events, Event(RUNS.event(run.run.status), run.run), DONE]


class _Follower:
    """The events of a stretch executing on another replica, read from the database."""

    def __init__(
        self, coordination: DatabaseCoordination, repository: Repository, run: RunRecord, owner: str, stretch: int
    ) -> None:
        self._coordination = coordination
        self._repository = repository
        self._run = run
        self._owner = owner
        self._stretch = stretch

    async def follow(self, heartbeat: float | None = None) -> AsyncGenerator[list[Event]]:
        coordination = self._coordination
        store = coordination._store
        run_id, stretch = self._run.id, self._stretch
        wake = asyncio.Event()
        coordination._watch(run_id, wake)
        try:
            request = f"follow {run_id} {stretch} {coordination.replica_id}"
            await to_thread(store.notify, replica_channel(self._owner), request)
            last = 0
            quiet_looks = 0
            spoke = time.monotonic()
            while True:
                wake.clear()
                batch: list[Event] = []
                for stored in await to_thread(store.events, run_id, stretch, last):
                    if stored.number != last + 1:
                        break  # a gap: its event is still being committed
                    last = stored.number
                    batch.append(decode(stored.name, stored.data))
                if batch:
                    quiet_looks = 0
                    spoke = time.monotonic()
                    yield batch
                    if batch[-1].name is EventName.DONE:
                        return
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), FOLLOWER_POLL)
                    continue
                # No word for a while. A stretch that ended without writing its events here (it
                # ended before the request reached its replica) ends the stream with the run's status.
                run = await to_thread(self._repository.get_run, self._run.thread_id, run_id)
                owner = await to_thread(store.owner, run_id)
                if run.status not in EXECUTING or owner is None or owner.stretch != stretch:
                    quiet_looks += 1
                    if quiet_looks >= 2:
                        yield [Event(RUNS.event(run.status), run), DONE]
                        return
                if heartbeat is not None and time.monotonic() - spoke >= heartbeat:
                    spoke = time.monotonic()
                    yield []
        finally:
            coordination._unwatch(run_id, wake)
