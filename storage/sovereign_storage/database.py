"""Opening a database and running transactions the same way on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import peewee
from playhouse import db_url

from .errors import UnstorableValueError

# busy_timeout comes first so that switching the journal mode already waits for other connections.
# No checkpoint at commit: it syncs the file (tens of milliseconds), and a commit may be made on the
# server's event loop; the server checkpoints on a thread of its own (`checkpoint`), and any process
# does as its last connection closes.
SQLITE_PRAGMAS: tuple[tuple[str, Any], ...] = (
    ("busy_timeout", 5000),
    ("journal_mode", "wal"),
    ("foreign_keys", 1),
    ("synchronous", "normal"),
    ("wal_autocheckpoint", 0),
)

# playhouse.db_url ships without type hints.
_connect_url: Callable[..., peewee.Database] = db_url.connect


def open_database(target: str) -> peewee.Database:
    """Open (lazily; nothing connects yet) the database named by a file path or a URL.

    A plain path is a SQLite file whose parent folders are created. A URL is anything
    `playhouse.db_url` understands, e.g. `sqlite:///relative.db`, `sqlite:////abs.db`,
    `postgresql://user:pass@host/db`.
    """
    if "://" not in target:
        _create_parent(target)
        return peewee.SqliteDatabase(target, pragmas=list(SQLITE_PRAGMAS))
    if target.split("://", 1)[0].startswith("sqlite"):
        # db_url takes the URL path minus its leading slash as the file name.
        _create_parent(urlparse(target).path[1:])
        return _connect_url(target, pragmas=list(SQLITE_PRAGMAS))
    return _connect_url(target)


def _create_parent(path: str) -> None:
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


class _Writers:
    """The writers of one database in this process: the lock they queue on, and until when a thread
    that wants to write at once no longer waits for it (`uncontended`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.busy_until = 0.0


_WRITERS: dict[int, _Writers] = {}
_WRITERS_GUARD = threading.Lock()


def _writers(db: peewee.Database) -> _Writers:
    with _WRITERS_GUARD:
        return _WRITERS.setdefault(id(db), _Writers())


def _write_lock(db: peewee.Database) -> threading.RLock:
    return _writers(db).lock


# Told the kind ("read" or "write") and the seconds of every transaction (metrics subscribe here).
TransactionObserver = Callable[[str, float], None]
_OBSERVERS: list[TransactionObserver] = []


def observe_transactions(observer: TransactionObserver) -> Callable[[], None]:
    """Subscribes `observer` to every transaction of this process; returns the unsubscribe."""
    _OBSERVERS.append(observer)
    return lambda: _OBSERVERS.remove(observer)


_NESTING = threading.local()


@contextlib.contextmanager
def _timed(kind: str) -> Iterator[None]:
    # Only the outermost transaction of a thread counts: inner ones are savepoints within it.
    depth: int = getattr(_NESTING, "depth", 0)
    if not _OBSERVERS or depth:
        _NESTING.depth = depth + 1
        try:
            yield
        finally:
            _NESTING.depth = depth
        return
    _NESTING.depth = 1
    started = time.perf_counter()
    try:
        yield
    finally:
        _NESTING.depth = 0
        elapsed = time.perf_counter() - started
        for observer in _OBSERVERS:
            observer(kind, elapsed)


@contextlib.contextmanager
def _storable() -> Iterator[None]:
    """Values the database refuses as such (PostgreSQL: a NUL in a string, an integer beyond its
    column's range) are the caller's error, not the server's."""
    try:
        yield
    except peewee.DataError as error:
        raise UnstorableValueError(str(error).strip()) from error
    except ValueError as error:
        # psycopg2 refuses NUL characters before anything is sent.
        if "NUL" not in str(error):
            raise
        raise UnstorableValueError(str(error)) from error


# Within a transaction already open on this thread, a read or a write joins it instead of opening a
# savepoint: a savepoint costs two statements (half of what a run's last write sent), and rolling
# back to one would only matter to a caller that catches an error and carries on in the same
# transaction, which none does: an error leaves the outermost block and undoes all of it.


@contextlib.contextmanager
def read_transaction(db: peewee.Database) -> Iterator[None]:
    """A transaction that only reads: what it reads depends on nothing written meanwhile; within
    an open transaction, part of it."""
    if db.in_transaction():
        with _storable():
            yield
        return
    with _storable(), _timed("read"), db.atomic():
        yield


@contextlib.contextmanager
def write_transaction(db: peewee.Database) -> Iterator[None]:
    """A transaction meant to write; within an open transaction, part of it.

    On SQLite it takes the write lock up front (BEGIN IMMEDIATE): a deferred transaction that
    reads and then writes cannot wait for the lock under WAL and fails with SQLITE_BUSY at once.
    Writers of this process also queue on a lock of their own first: SQLite's busy handler waits
    by sleeping (up to 100 ms a time), which turned contention between our threads into latency.
    """
    sqlite = isinstance(db, peewee.SqliteDatabase)
    if db.in_transaction():
        with _storable(), _write_lock(db) if sqlite else contextlib.nullcontext():
            yield
        return
    if not sqlite:
        with _storable(), _timed("write"), db.atomic():
            yield
        return
    with _timed("write"), _write_lock(db), db.atomic("IMMEDIATE"):
        yield


# How long a thread that wants to write at once waits for another thread's write to end: an
# ordinary transaction ends well within it. After a wait that ran out (a long write: a large file's
# chunks), it does not wait again for BACKOFF, so a long write costs it at most BRIEF_WAIT in each.
BRIEF_WAIT = 0.005
BACKOFF = 0.1


@contextlib.contextmanager
def uncontended(db: peewee.Database) -> Iterator[bool]:
    """Whether the block's transactions can run at once on this thread, which then holds this
    process's write lock for them.

    True on SQLite once the lock is taken: within BRIEF_WAIT, or at once during a BACKOFF after a
    wait ran out. The block then waits for no other thread of this process, and its transactions
    are local file I/O of a fraction of a millisecond (WAL, no sync at commit). Another process
    writing the same file (a `sovereign keys` command) can still make it wait, for that one
    transaction. False on PostgreSQL, where every statement is a round trip over the network, and
    when another thread's write goes on longer.

    Waiting briefly rather than not at all matters under load: a caller sent away to a thread holds
    the lock in its turn, so the next caller is sent away too, and none would run at once again.
    """
    if not isinstance(db, peewee.SqliteDatabase):
        yield False
        return
    writers = _writers(db)
    if time.monotonic() < writers.busy_until:
        taken = writers.lock.acquire(blocking=False)
    else:
        taken = writers.lock.acquire(timeout=BRIEF_WAIT)
        if not taken:
            writers.busy_until = time.monotonic() + BACKOFF
    if not taken:
        yield False
        return
    try:
        yield True
    finally:
        writers.lock.release()


def checkpoint(db: peewee.Database) -> None:
    """Copies what SQLite's write-ahead log holds into the database file, without waiting for
    readers or writers (a passive checkpoint); nothing on PostgreSQL. Blocking: it syncs the file."""
    if isinstance(db, peewee.SqliteDatabase):
        execute: Callable[..., Any] = db.execute_sql  # untyped in peewee's stubs
        with connection_scope(db):
            execute("PRAGMA wal_checkpoint(PASSIVE)")


@contextlib.contextmanager
def connection_scope(db: peewee.Database) -> Iterator[None]:
    """Use this thread's connection, opening it on the thread's first use and keeping it open.

    Peewee keeps one connection per thread, so worker threads never share one. Keeping it open
    matters: closing the last SQLite connection checkpoints the WAL and flushes the file to disk,
    which made every call cost milliseconds.
    """
    db.connect(reuse_if_open=True)
    yield
