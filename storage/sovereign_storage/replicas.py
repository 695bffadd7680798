"""What the replicas of one service share through its database: which replicas are alive (a lease
renewed by a heartbeat), which replica executes which run (claims) or response, the events of runs
for followers on other replicas (with PostgreSQL's NOTIFY), work that one replica at a time does
(sweeps), and rate-limit buckets.

Times here are the database's clock, in seconds, so that replicas on machines whose clocks differ
still agree on whose lease ran out.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import peewee

from .database import connection_scope, read_transaction, write_transaction
from .models import Message, RateBucket, Replica, Response, Run, RunClaim, RunEvent, RunStep
from .records import MessageRecord, RunRecord, RunStepRecord
from .repository import _RUN_STAMPS, _message_record, _run_record, _step_record
from .values import IncompleteDetails, LastError, MessageStatus, ResponseStatus, RunStatus, StepStatus

T = TypeVar("T")

# The database's clock in seconds.
_POSTGRES_NOW = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS double precision)"
_SQLITE_NOW = "((julianday('now') - 2440587.5) * 86400.0)"


def is_shared(database: peewee.Database) -> bool:
    """Whether several replicas may share `database` (PostgreSQL; a SQLite file has one writer)."""
    return isinstance(database, peewee.PostgresqlDatabase)


@dataclass(frozen=True)
class RunOwner:
    """The replica that claimed a run last, the stretch it claimed, and whether its lease holds."""

    replica_id: str
    stretch: int
    alive: bool


@dataclass(frozen=True)
class StoredEvent:
    number: int
    name: str
    data: str | None


@dataclass(frozen=True)
class EndedRun:
    """A run ended for a replica that is gone, with what was closed with it."""

    run: RunRecord
    steps: list[RunStepRecord]
    messages: list[MessageRecord]
    # The stretch its events belong to, and the last event number written for it (0: none).
    stretch: int
    last_number: int


@dataclass(frozen=True)
class BucketLevels:
    """A key's buckets after a draw: level per kind, and the kind that was short (nothing taken then)."""

    levels: dict[str, float]
    short: str | None


class ReplicaStore:
    """Blocking, like `Repository`; safe from several threads (one connection each). Every query
    runs on this store's own database, whatever the models are bound to."""

    def __init__(self, database: peewee.Database, lease_seconds: float = 5.0) -> None:
        self._db = database
        self.lease_seconds = lease_seconds
        self._shared = is_shared(database)
        self._now_sql = _POSTGRES_NOW if self._shared else _SQLITE_NOW

    @property
    def database(self) -> peewee.Database:
        return self._db

    # ------------------------------------------------------------------ transactions and the clock

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        # Inside a caller's transaction (a claim written with the run it claims), no savepoint:
        # each would cost PostgreSQL two more round trips.
        with connection_scope(self._db):
            if self._db.in_transaction():
                yield
                return
            with write_transaction(self._db):
                yield

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with connection_scope(self._db), read_transaction(self._db):
            yield

    def _now(self) -> peewee.Node:
        """The database's clock in seconds, as an SQL expression."""
        return peewee.SQL(self._now_sql)

    def _clock(self) -> float:
        """The database's clock in seconds."""
        value: float = self._sql(f"SELECT {self._now_sql}").fetchone()[0]
        return value

    def _sql(self, query: str, params: Sequence[Any] = ()) -> Any:
        execute: Callable[..., Any] = self._db.execute_sql  # untyped in peewee's stubs
        return execute(query, params)

    def _alive(self) -> peewee.Expression:
        """Replicas whose lease holds (for a join on `Replica`)."""
        return Replica.heartbeat_at > peewee.NodeList((self._now(), peewee.SQL("-"), self.lease_seconds))

    # ------------------------------------------------------------------ replicas

    def register(self, replica_id: str) -> None:
        with self._writing():
            now = self._now()
            Replica.insert(
                id=replica_id, host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now
            ).on_conflict(conflict_target=[Replica.id], update={Replica.heartbeat_at: now}).execute(self._db)

    def renew(self, replica_id: str) -> bool:
        """Renews the replica's lease; False if it had been declared gone (it is registered again)."""
        with self._writing():
            renewed: int = Replica.update(heartbeat_at=self._now()).where(Replica.id == replica_id).execute(self._db)
        if not renewed:
            self.register(replica_id)
        return bool(renewed)

    def retire(self, replica_id: str) -> None:
        with self._writing():
            Replica.delete().where(Replica.id == replica_id).execute(self._db)

    def alive_replicas(self) -> list[str]:
        with self._reading():
            query = Replica.select(Replica.id).where(self._alive()).order_by(Replica.seq)
            return [row.id for row in query.bind(self._db)]

    # ------------------------------------------------------------------ claims

    def claim(self, run_id: str, replica_id: str) -> int:
        """Records that `replica_id` executes the next stretch of the run; returns that stretch's
        number (1 for a new run). Meant to run in the transaction that changes the run's status,
        so that no run is active without a live claim."""
        with self._writing():
            query = (
                RunClaim.insert(run=run_id, replica_id=replica_id, stretch=1, claimed_at=self._now())
                .on_conflict(
                    conflict_target=[RunClaim.run],
                    update={
                        RunClaim.replica_id: peewee.EXCLUDED.replica_id,
                        RunClaim.stretch: RunClaim.stretch + 1,
                        RunClaim.claimed_at: peewee.EXCLUDED.claimed_at,
                    },
                )
                .returning(RunClaim.stretch)
            )
            stretch: int = next(iter(query.execute(self._db))).stretch
            return stretch

    def owner(self, run_id: str) -> RunOwner | None:
        with self._reading():
            row = (
                RunClaim.select(RunClaim.replica_id, RunClaim.stretch, Replica.id.is_null(False).alias("alive"))
                .join(Replica, peewee.JOIN.LEFT_OUTER, on=(Replica.id == RunClaim.replica_id) & self._alive())
                .where(RunClaim.run == run_id)
                .dicts()
                .first(self._db)
            )
            return None if row is None else RunOwner(row["replica_id"], row["stretch"], bool(row["alive"]))

    # ------------------------------------------------------------------ events of runs

    def append_events(
        self,
        run_id: str,
        stretch: int,
        first: int,
        events: Sequence[tuple[str, str | None]],
        notifications: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Writes events numbered from `first`, and sends `notifications` (channel, payload) as they
        commit. Raises peewee.IntegrityError if a number is taken: another replica wrote it."""
        if not events:
            return
        rows = [
            {"run": run_id, "stretch": stretch, "number": first + index, "name": name, "data": data}
            for index, (name, data) in enumerate(events)
        ]
        with self._writing():
            RunEvent.insert_many(rows).execute(self._db)
            if self._shared:
                for channel, payload in notifications:
                    self._notify(channel, payload)

    def events(self, run_id: str, stretch: int, after: int = 0) -> list[StoredEvent]:
        with self._reading():
            query = (
                RunEvent.select(RunEvent.number, RunEvent.name, RunEvent.data)
                .where(RunEvent.run == run_id, RunEvent.stretch == stretch, RunEvent.number > after)
                .order_by(RunEvent.number)
            )
            return [StoredEvent(row.number, row.name, row.data) for row in query.bind(self._db)]

    def notify(self, channel: str, payload: str) -> None:
        """Sends `payload` to the replicas listening on `channel` (PostgreSQL; nothing on SQLite)."""
        if self._shared:
            with self._writing():
                self._notify(channel, payload)

    def _notify(self, channel: str, payload: str) -> None:
        self._sql("SELECT pg_notify(%s, %s)", (channel, payload))

    # ------------------------------------------------------------------ work done by one replica at a time

    def exclusively(self, name: str, work: Callable[[], T]) -> tuple[bool, T | None]:
        """Runs `work` in a transaction unless another replica is doing `name` right now; returns
        whether it ran, and its result. Work of several replicas at once would only repeat itself."""
        with self._writing():
            if self._shared:
                cursor = self._sql("SELECT pg_try_advisory_xact_lock(hashtext(%s))", (name,))
                if not cursor.fetchone()[0]:
                    return False, None
            return True, work()

    def end_orphaned_runs(
        self,
        error: LastError,
        *,
        failing: Collection[RunStatus],
        cancelling: Collection[RunStatus],
        owner: str | None = None,
    ) -> list[EndedRun]:
        """Ends the runs in `failing` statuses (as `failed` with `error`) or `cancelling` ones (as
        `cancelled`) whose replica is gone: claimed by a replica whose lease ran out, or by none.
        With `owner`, the runs that replica claimed instead (it is stopping). Their steps in progress
        end the same way, their messages in progress become `incomplete`; runs other replicas are
        ending right now are skipped. Replicas gone for long are forgotten."""
        with self._writing():
            query = (
                Run.select(Run.id, Run.status, RunClaim.stretch)
                .join(RunClaim, peewee.JOIN.LEFT_OUTER, on=RunClaim.run == Run.id)
                .where(Run.status.in_([*failing, *cancelling]))
                .order_by(Run.created_at.asc(), Run.seq.asc())
            )
            if owner is not None:
                query = query.where(RunClaim.replica_id == owner)
            else:
                live = Replica.select(Replica.id).where(self._alive())
                query = query.where(RunClaim.replica_id.is_null() | RunClaim.replica_id.not_in(live))
            if self._db.for_update:
                query = query.for_update(of=Run, skip_locked=True)
            rows: list[tuple[str, str, int | None]] = list(query.bind(self._db).tuples())  # type: ignore[arg-type]
            found = [(run_id, RunStatus(status), stretch or 0) for run_id, status, stretch in rows]
            ended = [
                self._end_run(run_id, status, stretch, error, cancelled=status in cancelling)
                for run_id, status, stretch in found
            ]
            if owner is None:
                # Their runs are ended: a replica silent for ten leases is not coming back.
                Replica.delete().where(
                    Replica.heartbeat_at < peewee.NodeList((self._now(), peewee.SQL("-"), 10 * self.lease_seconds))
                ).execute(self._db)
            return [run for run in ended if run is not None]

    def _end_run(
        self, run_id: str, status: RunStatus, stretch: int, error: LastError, *, cancelled: bool
    ) -> EndedRun | None:
        now = int(self._clock())
        run_to = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
        step_to = StepStatus.CANCELLED if cancelled else StepStatus.FAILED
        changes: dict[Any, Any] = {Run.status: run_to, Run.expires_at: None, Run.required_action: None}
        changes[_RUN_STAMPS[run_to]] = peewee.fn.COALESCE(_RUN_STAMPS[run_to], now)
        if not cancelled:
            changes[Run.last_error] = error
        rows = list(Run.update(changes).where(Run.id == run_id, Run.status == status).returning(Run).execute(self._db))
        if not rows:
            return None
        run = _run_record(rows[0])
        step_values: dict[Any, Any] = {RunStep.status: step_to}
        step_values[RunStep.cancelled_at if cancelled else RunStep.failed_at] = now
        if not cancelled:
            step_values[RunStep.last_error] = error
        steps = (
            RunStep.update(step_values)
            .where(RunStep.run == run_id, RunStep.status == StepStatus.IN_PROGRESS)
            .returning(RunStep)
            .execute(self._db)
        )
        messages = (
            Message.update(
                {
                    Message.status: MessageStatus.INCOMPLETE,
                    Message.incomplete_at: now,
                    Message.incomplete_details: IncompleteDetails("run_cancelled" if cancelled else "run_failed"),
                }
            )
            .where(
                Message.thread == run.thread_id,
                Message.run_id == run_id,
                Message.status == MessageStatus.IN_PROGRESS,
            )
            .returning(Message)
            .execute(self._db)
        )
        last = (
            RunEvent.select(peewee.fn.MAX(RunEvent.number))
            .where(RunEvent.run == run_id, RunEvent.stretch == stretch)
            .scalar(self._db)
        )
        return EndedRun(
            run,
            sorted((_step_record(row) for row in steps), key=lambda step: step.created_at),
            [_message_record(row) for row in messages],
            stretch,
            int(last or 0),
        )

    def end_orphaned_responses(
        self, error: LastError, failing: Collection[ResponseStatus], *, unowned: bool = False
    ) -> list[str]:
        """Fails, with `error`, the responses in `failing` statuses whose replica's lease ran out
        (with `unowned`, also those whose replica is not recorded: stored before replicas recorded
        it); returns their ids. Responses another replica is failing right now are skipped."""
        with self._writing():
            live = Replica.select(Replica.id).where(self._alive())
            orphaned = Response.replica_id.not_in(live)
            if unowned:
                orphaned = orphaned | Response.replica_id.is_null()
            query = (
                Response.select(Response.id).where(Response.status.in_(list(failing)), orphaned).order_by(Response.seq)
            )
            if self._db.for_update:
                query = query.for_update(skip_locked=True)
            ids = [row.id for row in query.bind(self._db)]
            if ids:
                Response.update({Response.status: ResponseStatus.FAILED, Response.error: error}).where(
                    Response.id.in_(ids)
                ).execute(self._db)
            return ids

    # ------------------------------------------------------------------ rate limits

    def draw(
        self,
        key_id: str,
        capacities: Mapping[str, int],
        *,
        window: float,
        require: Sequence[str] = (),
        take: Mapping[str, float] | None = None,
    ) -> BucketLevels:
        """One step of a key's token buckets (kind -> capacity), in one transaction: each refills at
        `capacity` per `window` seconds up to its capacity; then, unless one of `require` (checked in
        order) has less than 1 left, `take` is taken (a bucket may go below zero)."""
        take = take or {}
        with self._writing():
            now: float = self._clock()
            RateBucket.insert_many(
                [
                    {"key_id": key_id, "kind": kind, "capacity": capacity, "level": capacity, "updated_at": now}
                    for kind, capacity in capacities.items()
                ]
            ).on_conflict_ignore().execute(self._db)
            query = RateBucket.select().where(RateBucket.key_id == key_id, RateBucket.kind.in_(list(capacities)))
            if self._db.for_update:
                query = query.for_update()
            levels: dict[str, float] = {}
            for row in query.bind(self._db):
                capacity = capacities[row.kind]
                if row.capacity != capacity:
                    # The key's limit changed: a fresh bucket, as the in-memory limiter does.
                    levels[row.kind] = float(capacity)
                else:
                    refill = (now - row.updated_at) * capacity / window
                    levels[row.kind] = min(float(capacity), row.level + max(0.0, refill))
            short = next((kind for kind in require if kind in levels and levels[kind] < 1), None)
            if short is None:
                for kind, amount in take.items():
                    if kind in levels:
                        levels[kind] -= amount
            for kind, level in levels.items():
                RateBucket.update(capacity=capacities[kind], level=level, updated_at=now).where(
                    RateBucket.key_id == key_id, RateBucket.kind == kind
                ).execute(self._db)
            return BucketLevels(levels, short)


class Listener:
    """A PostgreSQL connection of its own that receives notifications (LISTEN), for an event loop
    to watch: readable `fileno()` means `received()` has something."""

    def __init__(self, database: peewee.Database) -> None:
        if not is_shared(database):
            raise ValueError("notifications need PostgreSQL")
        import psycopg2  # only deployments on PostgreSQL have it

        self._connection: Any = psycopg2.connect(database=database.database, **database.connect_params)
        self._connection.autocommit = True

    def fileno(self) -> int:
        fileno: int = self._connection.fileno()
        return fileno

    def listen(self, channel: str) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(f"LISTEN {_quoted(channel)}")

    def unlisten(self, channel: str) -> None:
        with self._connection.cursor() as cursor:
            cursor.execute(f"UNLISTEN {_quoted(channel)}")

    def received(self) -> list[tuple[str, str]]:
        """The notifications that arrived, as (channel, payload); raises if the connection broke."""
        self._connection.poll()
        notifies = self._connection.notifies
        arrived = [(notify.channel, notify.payload) for notify in notifies]
        notifies.clear()
        return arrived

    def close(self) -> None:
        self._connection.close()


def _quoted(channel: str) -> str:
    if not channel.replace("_", "").isalnum():
        raise ValueError(f"not a channel name: {channel!r}")
    return f'"{channel}"'
