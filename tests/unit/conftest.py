"""Fixtures of the unit tests of the storage layer: a fresh, migrated SQLite file per test."""

from __future__ import annotations

import itertools
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
