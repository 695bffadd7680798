"""Fixtures of the unit tests of the storage layer: a fresh, migrated SQLite file per test."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import peewee
import pytest

import sovereign_storage.repository as repository_module
from sovereign_storage import NewMessage, Repository, TextContent, migrate, open_database


@pytest.fixture
def db(database: str) -> Iterator[peewee.Database]:
    """A fresh, migrated database for one test (SQLite, or PostgreSQL with `--postgres`)."""
    opened = open_database(database)
    migrate(opened)
    yield opened
    opened.close()


@pytest.fixture
def repo(db: peewee.Database) -> Repository:
    return Repository(db)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[int]], None]:
    """Make the repository's clock return the given times, in turn, then repeat the last."""

    def set_times(times: list[int]) -> None:
        values = itertools.chain(times, itertools.repeat(times[-1]))
        monkeypatch.setattr(repository_module, "_now", lambda: next(values))

    return set_times


def sql(database: peewee.Database, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    execute: Callable[..., Any] = database.execute_sql  # untyped in peewee's stubs
    return list(execute(query, params))


def user_message(text: str, **kwargs: Any) -> NewMessage:
    return NewMessage(role="user", content=(TextContent(text),), **kwargs)


@contextlib.contextmanager
def another_thread_writing(repo: Repository) -> Iterator[threading.Event]:
    """Another thread of this process in a write transaction of `repo` for the block, or until the
    event it yields is set."""
    writing, finish = threading.Event(), threading.Event()

    def write() -> None:
        with repo.batch():
            repo.create_thread({}, {}, [])
            writing.set()
            finish.wait(10)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert writing.wait(10)
        yield finish
    finally:
        finish.set()
        writer.join()
