"""Storage calls from the event loop: made at once on an uncontended SQLite file, else on a thread."""

from __future__ import annotations

import asyncio
import threading

import peewee
import pytest

from sovereign_server.stored import stored
from sovereign_storage import Repository
from tests.unit.conftest import another_thread_writing


def _thread_of_call(repo: Repository) -> int:
    repo.create_thread({}, {}, [])
    return threading.get_ident()


async def test_a_storage_call_runs_on_the_event_loop_on_sqlite_and_on_a_thread_on_postgresql(
    repo: Repository, db: peewee.Database
) -> None:
    caller = await stored(repo, _thread_of_call, repo)
    on_loop = caller == threading.get_ident()
    assert on_loop is isinstance(db, peewee.SqliteDatabase)


@pytest.mark.sqlite_only
async def test_a_storage_call_goes_to_a_thread_while_another_thread_writes_and_waits_its_turn(repo: Repository) -> None:
    with another_thread_writing(repo) as finish:
        waiting = asyncio.ensure_future(stored(repo, _thread_of_call, repo))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # queued behind the write in progress, not failed
        finish.set()
        caller = await waiting
    assert caller != threading.get_ident()
