"""Behaviour of the storage layer against a real SQLite file."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import peewee
import pytest

import sovereign_storage
from sovereign_storage import (
    LATEST_VERSION,
    InvalidCursorError,
    MessageCreation,
    MessageRecord,
    MessageStatus,
    NewAssistant,
    NewMessage,
    NotFoundError,
    PageRequest,
    Repository,
    TextContent,
    migrate,
    open_database,
    prepared,
    schema_version,
)
from sovereign_storage.database import BRIEF_WAIT
from sovereign_storage.file_models import FILE_MODELS
from sovereign_storage.models import MODELS, Run, RunStep
from tests.databases import Databases
from tests.unit.conftest import another_thread_writing, sql, user_message

pytestmark = pytest.mark.unit


def text_of(message: MessageRecord) -> str:
    part = message.content[0]
    assert isinstance(part, TextContent)
    return part.value


def add_run_with_step(thread_id: str, assistant_id: str, run_id: str, step_id: str) -> None:
    Run.insert(
        id=run_id,
        thread=thread_id,
        assistant_id=assistant_id,
        created_at=1,
        status="completed",
        model="m",
        tools=[],
        metadata={},
    ).execute()
    RunStep.insert(
        id=step_id,
        run=run_id,
        thread_id=thread_id,
        assistant_id=assistant_id,
        created_at=1,
        type="message_creation",
        status="completed",
        step_details=MessageCreation("msg_x"),
        metadata={},
    ).execute()


# Assistants


def test_an_assistant_is_created_read_updated_listed_and_deleted(repo: Repository) -> None:
    created = repo.create_assistant(
        NewAssistant(
            model="llama",
            name="Helper",
            tools=[{"type": "code_interpreter"}],
            metadata={"k": "v"},
            temperature=0.5,
            response_format={"type": "json_object"},
            reasoning_effort="low",
        )
    )
    assert created.id.startswith("asst_")
    assert repo.get_assistant(created.id) == created

    updated = repo.update_assistant(created.id, {"name": "Renamed", "response_format": "auto"})
    assert updated.name == "Renamed"
    assert updated.response_format == "auto"
    assert (
        updated.model,
        updated.tools,
        updated.metadata,
        updated.temperature,
        updated.reasoning_effort,
    ) == (
        "llama",
        [{"type": "code_interpreter"}],
        {"k": "v"},
        0.5,
        "low",
    )
    assert repo.update_assistant(created.id, {"description": None}).description is None

    assert [a.id for a in repo.list_assistants(PageRequest()).items] == [created.id]
    repo.delete_assistant(created.id)
    with pytest.raises(NotFoundError, match=rf"^No assistant found with id '{created.id}'\.$"):
        repo.get_assistant(created.id)
    with pytest.raises(NotFoundError):
        repo.delete_assistant(created.id)
    with pytest.raises(NotFoundError):
        repo.update_assistant(created.id, {"name": "x"})


def test_an_assistant_update_rejects_fields_that_cannot_change(repo: Repository) -> None:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    with pytest.raises(ValueError, match="created_at"):
        repo.update_assistant(assistant.id, {"created_at": 0})


def test_assistants_list_newest_first_by_default(repo: Repository, frozen_clock: Any) -> None:
    frozen_clock([10, 30, 20])
    first, second, third = (repo.create_assistant(NewAssistant(model="m")) for _ in range(3))
    page = repo.list_assistants(PageRequest(limit=2))
    assert [a.id for a in page.items] == [second.id, third.id]
    assert page.has_more
    rest = repo.list_assistants(PageRequest(limit=2, after=third.id))
    assert [a.id for a in rest.items] == [first.id]
    assert not rest.has_more


def test_deleting_an_assistant_leaves_its_threads_and_messages(repo: Repository) -> None:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    thread, _ = repo.create_thread({}, {}, [])
    message = repo.create_message(thread.id, NewMessage(role="assistant", content=(), assistant_id=assistant.id))
    repo.delete_assistant(assistant.id)
    assert repo.get_thread(thread.id) == thread
    assert repo.get_message(thread.id, message.id).assistant_id == assistant.id


# Ids


def test_ids_carry_their_kind_prefix_and_are_unique(repo: Repository) -> None:
    assistants = [repo.create_assistant(NewAssistant(model="m")).id for _ in range(20)]
    thread, messages = repo.create_thread({}, {}, [user_message(str(i)) for i in range(20)])
    message_ids = [m.id for m in messages]
    assert all(i.startswith("asst_") for i in assistants)
    assert thread.id.startswith("thread_")
    assert all(i.startswith("msg_") for i in message_ids)
    assert len(set(assistants)) == len(set(message_ids)) == 20
    assert len(thread.id) == len("thread_") + 24


# Threads


def test_a_thread_is_created_with_its_messages_in_order(repo: Repository) -> None:
    thread, messages = repo.create_thread(
        {"code_interpreter": {"file_ids": []}}, {"a": "1"}, [user_message("one"), user_message("two")]
    )
    assert thread.id.startswith("thread_")
    assert (thread.tool_resources, thread.metadata) == ({"code_interpreter": {"file_ids": []}}, {"a": "1"})
    assert [text_of(m) for m in messages] == ["one", "two"]
    assert all(m.thread_id == thread.id and m.status == "completed" for m in messages)
    assert all(m.completed_at == m.created_at for m in messages)
    listed = repo.list_messages(thread.id, PageRequest(order="asc")).items
    assert listed == messages


def test_updating_a_thread_changes_only_the_given_fields(repo: Repository) -> None:
    thread, _ = repo.create_thread({"x": 1}, {"a": "1"}, [])
    assert repo.update_thread(thread.id, metadata={"b": "2"}).tool_resources == {"x": 1}
    updated = repo.update_thread(thread.id, tool_resources={"y": 2})
    assert (updated.tool_resources, updated.metadata) == ({"y": 2}, {"b": "2"})
    assert repo.get_thread(thread.id) == updated
    with pytest.raises(NotFoundError, match=r"^No thread found with id 'thread_nope'\.$"):
        repo.update_thread("thread_nope", metadata={})


def test_deleting_a_thread_removes_its_messages_runs_and_steps(repo: Repository, db: peewee.Database) -> None:
    doomed, _ = repo.create_thread({}, {}, [user_message("bye")])
    kept, kept_messages = repo.create_thread({}, {}, [user_message("stay")])
    add_run_with_step(doomed.id, "asst_a", "run_doomed", "step_doomed")
    add_run_with_step(kept.id, "asst_a", "run_kept", "step_kept")

    repo.delete_thread(doomed.id)

    with pytest.raises(NotFoundError):
        repo.get_thread(doomed.id)
    assert [r.id for r in Run.select()] == ["run_kept"]
    assert [s.id for s in RunStep.select()] == ["step_kept"]
    rows = sql(db, "SELECT thread_id FROM messages")
    assert rows == [(kept.id,)]
    assert repo.list_messages(kept.id, PageRequest()).items == kept_messages
    with pytest.raises(NotFoundError):
        repo.delete_thread(doomed.id)


# Messages


def test_a_message_is_created_read_updated_and_deleted(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    message = repo.create_message(
        thread.id, user_message("hi", attachments=[{"file_id": "f", "tools": []}], metadata={"m": "1"})
    )
    assert message.id.startswith("msg_")
    assert (message.thread_id, message.role, message.run_id, message.assistant_id) == (
        thread.id,
        "user",
        None,
        None,
    )
    assert message.attachments == [{"file_id": "f", "tools": []}]
    assert repo.get_message(thread.id, message.id) == message

    updated = repo.update_message(thread.id, message.id, {"m": "2"})
    assert updated.metadata == {"m": "2"}
    assert updated.content == message.content

    repo.delete_message(thread.id, message.id)
    with pytest.raises(NotFoundError, match=rf"^No message found with id '{message.id}'\.$"):
        repo.get_message(thread.id, message.id)
    with pytest.raises(NotFoundError):
        repo.delete_message(thread.id, message.id)


def test_an_in_progress_message_has_no_completion_time(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    message = repo.create_message(thread.id, NewMessage(role="assistant", content=(), status=MessageStatus.IN_PROGRESS))
    assert message.status == "in_progress"
    assert message.completed_at is None


def test_messages_are_only_found_through_their_own_existing_thread(repo: Repository) -> None:
    thread, (message,) = repo.create_thread({}, {}, [user_message("x")])
    other, _ = repo.create_thread({}, {}, [])

    with pytest.raises(NotFoundError, match="No thread found") as unknown_thread:
        repo.get_message("thread_missing", message.id)
    assert (unknown_thread.value.kind, unknown_thread.value.id) == ("thread", "thread_missing")
    with pytest.raises(NotFoundError, match="No message found"):
        repo.get_message(other.id, message.id)
    with pytest.raises(NotFoundError, match="No message found"):
        repo.update_message(other.id, message.id, {})
    with pytest.raises(NotFoundError, match="No message found"):
        repo.delete_message(other.id, message.id)
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.create_message("thread_missing", user_message("x"))
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.list_messages("thread_missing", PageRequest())
    assert repo.get_message(thread.id, message.id) == message


def test_messages_can_be_listed_for_one_run(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [user_message("question")])
    for i in range(3):
        repo.create_message(thread.id, NewMessage(role="assistant", content=(), run_id="run_a", metadata={"i": str(i)}))
    repo.create_message(thread.id, NewMessage(role="assistant", content=(), run_id="run_b"))

    page = repo.list_messages(thread.id, PageRequest(order="asc", limit=2), run_id="run_a")
    assert [m.metadata["i"] for m in page.items] == ["0", "1"]
    assert page.has_more
    rest = repo.list_messages(thread.id, PageRequest(order="asc", after=page.items[-1].id), run_id="run_a")
    assert [m.metadata["i"] for m in rest.items] == ["2"]
    assert not rest.has_more
    assert repo.list_messages(thread.id, PageRequest(), run_id="run_none").items == []


# Pagination


def walk(repo: Repository, thread_id: str, order: str, limit: int, last: str | None = None) -> list[str]:
    """Message ids of the thread, following cursors page by page.

    Forwards with `after` from the start, or, given the `last` id of the list, backwards with `before`.
    """
    backwards = last is not None
    seen: list[str] = [] if last is None else [last]
    cursor = last
    while True:
        if backwards:
            page = repo.list_messages(thread_id, PageRequest(limit=limit, order=order, before=cursor))
            seen[:0] = [m.id for m in page.items]
            cursor = page.items[0].id if page.items else None
        else:
            page = repo.list_messages(thread_id, PageRequest(limit=limit, order=order, after=cursor))
            seen.extend(m.id for m in page.items)
            cursor = page.items[-1].id if page.items else None
        assert len(page.items) <= limit
        if not page.has_more:
            return seen


def test_walking_pages_visits_every_message_once_even_with_equal_timestamps(
    repo: Repository, frozen_clock: Any
) -> None:
    # Mostly equal timestamps, and some going back in time, so order cannot follow insertion alone.
    times = [100] * 10 + [50] * 7 + [100] * 5 + [200] * 3
    thread, _ = repo.create_thread({}, {}, [])
    frozen_clock(times)
    created = [repo.create_message(thread.id, user_message(str(i))) for i in range(len(times))]
    assert [m.created_at for m in created] == times
    expected_asc = [m.id for m in sorted(created, key=lambda m: (m.created_at, int(text_of(m))))]

    for limit in (1, 4, 7, 25, 100):
        assert walk(repo, thread.id, "asc", limit) == expected_asc
        assert walk(repo, thread.id, "desc", limit) == expected_asc[::-1]
        assert walk(repo, thread.id, "asc", limit, last=expected_asc[-1]) == expected_asc
        assert walk(repo, thread.id, "desc", limit, last=expected_asc[0]) == expected_asc[::-1]


def test_before_returns_the_closest_items_still_in_the_requested_order(repo: Repository, frozen_clock: Any) -> None:
    frozen_clock([7])
    thread, messages = repo.create_thread({}, {}, [user_message(str(i)) for i in range(10)])
    ids = [m.id for m in messages]

    asc = repo.list_messages(thread.id, PageRequest(order="asc", limit=3, before=ids[6]))
    assert [m.id for m in asc.items] == ids[3:6]
    assert asc.has_more
    desc = repo.list_messages(thread.id, PageRequest(order="desc", limit=3, before=ids[6]))
    assert [m.id for m in desc.items] == [ids[9], ids[8], ids[7]]
    assert not desc.has_more
    first = repo.list_messages(thread.id, PageRequest(order="asc", limit=3, before=ids[0]))
    assert (first.items, first.has_more) == ([], False)

    assert walk(repo, thread.id, "asc", 3, last=ids[-1]) == ids
    assert walk(repo, thread.id, "desc", 4, last=ids[0]) == ids[::-1]


def test_after_and_before_together_bound_the_page(repo: Repository) -> None:
    thread, messages = repo.create_thread({}, {}, [user_message(str(i)) for i in range(10)])
    ids = [m.id for m in messages]
    page = repo.list_messages(thread.id, PageRequest(order="asc", limit=10, after=ids[2], before=ids[8]))
    assert [m.id for m in page.items] == ids[3:8]
    assert not page.has_more


def test_has_more_is_false_exactly_when_the_list_is_exhausted(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [user_message(str(i)) for i in range(4)])
    assert repo.list_messages(thread.id, PageRequest(limit=3)).has_more
    assert not repo.list_messages(thread.id, PageRequest(limit=4)).has_more
    assert not repo.list_messages(thread.id, PageRequest(limit=5)).has_more


def test_the_newest_items_are_the_first_page_of_the_whole_thread_newest_first(
    repo: Repository, frozen_clock: Any
) -> None:
    frozen_clock([7])  # one second: the order is the order of insertion
    thread, messages = repo.create_thread({}, {}, [user_message(str(i)) for i in range(5)])
    ids = [m.id for m in messages]
    assert [m.id for m in repo.newest_items(thread.id, 3)] == ids[:1:-1]
    assert repo.newest_items(thread.id, 3) == repo.list_messages(thread.id, PageRequest(limit=3, order="desc")).items
    assert [m.id for m in repo.newest_items(thread.id, 10)] == ids[::-1]
    assert repo.newest_items(thread.id, 0) == []
    assert [m.id for m in repo.thread_messages(thread.id)] == ids
    with pytest.raises(NotFoundError):
        repo.newest_items("thread_unknown", 3)


def test_reads_and_writes_within_a_batch_join_its_transaction_without_savepoints(
    repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    thread, _ = repo.create_thread({}, {}, [user_message("hi")])
    with caplog.at_level(logging.DEBUG, logger="peewee"), repo.batch():
        repo.get_thread(thread.id)
        repo.newest_items(thread.id, 3)
        repo.create_message(thread.id, user_message("again"))
    # Peewee logs each statement as a (sql, params) tuple.
    statements = [r.msg[0] for r in caplog.records if isinstance(r.msg, tuple)]
    assert not [sql for sql in statements if "SAVEPOINT" in sql.upper()], statements
    assert len(repo.thread_messages(thread.id)) == 2


def test_an_error_within_a_batch_undoes_every_write_of_it(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [user_message("hi")])

    def write_then_fail() -> None:
        with repo.batch():
            repo.create_message(thread.id, user_message("written, then undone"))
            repo.get_thread("thread_unknown")

    with pytest.raises(NotFoundError):
        write_then_fail()
    assert [text_of(m) for m in repo.thread_messages(thread.id)] == ["hi"]


def test_a_cursor_naming_no_object_of_the_list_is_rejected(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [user_message("a")])
    _, (foreign,) = repo.create_thread({}, {}, [user_message("b")])
    with pytest.raises(InvalidCursorError) as after:
        repo.list_messages(thread.id, PageRequest(after="msg_unknown"))
    assert (after.value.param, after.value.value) == ("after", "msg_unknown")
    with pytest.raises(InvalidCursorError) as before:
        repo.list_messages(thread.id, PageRequest(before=foreign.id))
    assert (before.value.param, before.value.value) == ("before", foreign.id)
    with pytest.raises(InvalidCursorError, match="after"):
        repo.list_assistants(PageRequest(after="asst_unknown"))


@pytest.mark.sqlite_only
def test_the_message_page_query_walks_an_index_without_sorting(
    repo: Repository, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    thread, messages = repo.create_thread({}, {}, [user_message(str(i)) for i in range(30)])
    requests = [
        (PageRequest(order="asc", after=messages[5].id), None),
        (PageRequest(order="desc", before=messages[5].id), None),
        (PageRequest(order="desc", after=messages[20].id), "run_a"),
    ]
    for request, run_id in requests:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            repo.list_messages(thread.id, request, run_id=run_id)
        # Peewee logs each query as a (sql, params) tuple.
        page_queries: list[tuple[str, list[Any]]] = [
            r.msg for r in caplog.records if isinstance(r.msg, tuple) and "ORDER BY" in r.msg[0]
        ]
        # The rest of the cursor's second, then the seconds past it: two seeks, however many rows
        # share the cursor's timestamp.
        assert 1 <= len(page_queries) <= 2
        for query, params in page_queries:
            plan = " | ".join(row[-1] for row in sql(db, "EXPLAIN QUERY PLAN " + query, params))
            assert "USING INDEX messages_thread_id_" in plan or "USING COVERING INDEX" in plan, plan
            assert "TEMP B-TREE" not in plan, plan
            assert "SCAN messages" not in plan or "INDEX" in plan, plan
        same_second = " | ".join(
            row[-1] for row in sql(db, "EXPLAIN QUERY PLAN " + page_queries[0][0], page_queries[0][1])
        )
        assert "created_at=? AND seq" in same_second, same_second


# Database and concurrency


@pytest.mark.sqlite_only
def test_sqlite_runs_with_wal_and_foreign_keys(db: peewee.Database) -> None:
    assert sql(db, "PRAGMA journal_mode") == [("wal",)]
    assert sql(db, "PRAGMA foreign_keys") == [(1,)]
    assert sql(db, "PRAGMA busy_timeout") == [(5000,)]
    assert sql(db, "PRAGMA synchronous") == [(1,)]  # NORMAL
    assert sql(db, "PRAGMA wal_autocheckpoint") == [(0,)]


@pytest.mark.sqlite_only
def test_commits_leave_the_log_to_checkpoints_which_move_it_into_the_database_file(
    repo: Repository, db: peewee.Database
) -> None:
    file = Path(db.database)
    thread, _ = repo.create_thread({}, {}, [])
    before = file.stat().st_size
    for _ in range(6):  # 6 MiB: past the 1000 pages (4 MiB) at which SQLite would checkpoint itself
        repo.create_message(thread.id, user_message("x" * 2**20))
    assert file.stat().st_size == before
    repo.checkpoint()
    assert file.stat().st_size > before + 6 * 2**20


@pytest.mark.sqlite_only
def test_open_database_accepts_urls_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "db.sqlite3"
    database = open_database(f"sqlite:///{target}")
    assert isinstance(database, peewee.SqliteDatabase)
    assert migrate(database) == LATEST_VERSION
    assert sql(database, "PRAGMA journal_mode") == [("wal",)]
    database.close()
    assert target.exists()


def test_concurrent_writers_from_many_threads_all_succeed(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def write(worker: int) -> None:
        try:
            start.wait()
            for i in range(20):
                repo.create_message(thread.id, user_message(f"{worker}-{i}"))
                repo.create_assistant(NewAssistant(model="m", name=f"{worker}-{i}"))
                repo.list_messages(thread.id, PageRequest(limit=5))
        except BaseException as error:  # collected and asserted on below
            errors.append(error)

    workers = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert errors == []
    assert len(walk(repo, thread.id, "asc", 100)) == 160
    assert len(repo.list_assistants(PageRequest(limit=100)).items) == 100


def test_a_thread_may_write_at_once_on_sqlite_only_while_no_other_thread_of_the_process_writes(
    repo: Repository, db: peewee.Database
) -> None:
    with repo.uncontended() as at_once:
        assert at_once is isinstance(db, peewee.SqliteDatabase)
    if not at_once:
        return  # PostgreSQL: every statement is a round trip, never made at once
    with another_thread_writing(repo), repo.uncontended() as at_once:
        assert not at_once
    with repo.uncontended() as at_once:
        assert at_once
        repo.create_thread({}, {}, [])  # the block's own writes go through


@pytest.mark.sqlite_only
def test_during_another_thread_s_long_write_a_thread_waits_for_it_once_then_not_for_a_while(repo: Repository) -> None:
    answers = []
    with another_thread_writing(repo):
        started = time.monotonic()
        for _ in range(40):
            with repo.uncontended() as at_once:
                answers.append(at_once)
        elapsed = time.monotonic() - started
    assert answers == [False] * 40
    # Waiting each time would take 40 brief waits; after the first ran out, the others do not wait.
    assert elapsed < 20 * BRIEF_WAIT


def test_a_kept_statement_is_in_the_dialect_of_the_database_it_runs_on() -> None:
    class Row(peewee.Model):
        name = peewee.TextField()

    def build() -> peewee.Query:
        return Row.select(Row.name).where(Row.name == prepared.value("name"))

    key = object()
    assert '"t1"."name" = ?' in prepared.statement(peewee.SqliteDatabase(":memory:"), key, build).sql
    assert '"t1"."name" = %s' in prepared.statement(peewee.PostgresqlDatabase(None), key, build).sql


# Migrations


def test_migrating_a_fresh_database_reaches_the_latest_version_once(databases: Databases) -> None:
    database = open_database(databases.new(migrated=False))
    assert schema_version(database) == 0
    assert migrate(database) == LATEST_VERSION >= 3
    tables = set(database.get_tables())
    assert migrate(database) == LATEST_VERSION
    assert set(database.get_tables()) == tables
    assert schema_version(database) == LATEST_VERSION
    database.close()


def describe_schema(database: peewee.Database) -> dict[str, Any]:
    return {
        table: (
            sorted((c.name, c.data_type, c.null, c.primary_key) for c in database.get_columns(table)),
            sorted((i.name, tuple(i.columns), i.unique) for i in database.get_indexes(table)),
            sorted((f.column, f.dest_table, f.dest_column) for f in database.get_foreign_keys(table)),
        )
        for table in database.get_tables()
        if table != "schema_version"
    }


@pytest.mark.sqlite_only
def test_migrations_produce_exactly_the_schema_of_the_models(db: peewee.Database, tmp_path: Path) -> None:
    reference = peewee.SqliteDatabase(str(tmp_path / "reference.sqlite3"))
    models = (*MODELS, *FILE_MODELS)
    with reference.bind_ctx(models):
        reference.create_tables(models)
    # The full-text index over chunks (an FTS5 table and its shadow tables) is made by SQL alone.
    searched = {table for table in describe_schema(db) if not table.startswith("file_chunks_fts")}
    assert {table: describe_schema(db)[table] for table in searched} == describe_schema(reference)
    reference.close()


@pytest.mark.sqlite_only
def test_an_old_database_upgrades_with_its_rows_intact(tmp_path: Path) -> None:
    database = open_database(str(tmp_path / "old.sqlite3"))
    assert migrate(database, target=1) == 1
    assert "reasoning_effort" not in {c.name for c in database.get_columns("assistants")}
    rows = {
        "assistants": {
            "id": "asst_old",
            "created_at": 5,
            "model": "m",
            "name": "Old",
            "tools": "[]",
            "tool_resources": "{}",
            "metadata": '{"k":"v"}',
            "response_format": '"auto"',
        },
        "threads": {"id": "thread_old", "created_at": 5, "tool_resources": "{}", "metadata": "{}"},
        "messages": {
            "id": "msg_old",
            "thread_id": "thread_old",
            "created_at": 5,
            "status": "completed",
            "role": "user",
            "content": "[]",
            "run_id": "run_old",
            "attachments": "[]",
            "metadata": "{}",
        },
    }
    for table, row in rows.items():
        # Plain SQL: the current models describe the latest schema, not this old one.
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        sql(database, f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))

    assert migrate(database) == LATEST_VERSION

    repo = Repository(database)
    assistant = repo.get_assistant("asst_old")
    assert (assistant.name, assistant.metadata, assistant.response_format, assistant.reasoning_effort) == (
        "Old",
        {"k": "v"},
        "auto",
        None,
    )
    assert repo.update_assistant("asst_old", {"reasoning_effort": "high"}).reasoning_effort == "high"
    assert [m.id for m in repo.list_messages("thread_old", PageRequest(), run_id="run_old").items] == ["msg_old"]
    index_names = {i.name for i in database.get_indexes("messages")}
    assert "messages_thread_id_run_id_created_at_seq" in index_names
    database.close()


def test_the_package_stays_free_of_grpc_and_protobuf() -> None:
    code = (
        "import sys, sovereign_storage; print(sorted(m for m in sys.modules if m.split('.')[0] in ('grpc', 'google')))"
    )
    storage_root = Path(sovereign_storage.__file__).parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(storage_root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "[]"
