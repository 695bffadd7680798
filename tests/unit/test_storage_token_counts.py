"""Token counts kept with messages, so that a long thread is counted once: stored per tokenizer,
read back with the messages, and brought by a migration to existing databases."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign_storage import NewAssistant, NewMessage, Repository, TextContent, migrate, open_database
from tests.unit.conftest import sql, user_message

pytestmark = pytest.mark.unit


def test_counts_are_kept_per_tokenizer_and_read_back_with_the_messages(repo: Repository) -> None:
    thread, (first, second) = repo.create_thread({}, {}, [user_message("hello"), user_message("there")])
    assert first.token_counts is None
    repo.save_token_counts("llama.cpp:a", {first.id: 3, second.id: 4})
    repo.save_token_counts("vllm:b", {first.id: 2})
    by_id = {message.id: message.token_counts for message in repo.thread_messages(thread.id)}
    assert by_id == {first.id: {"llama.cpp:a": 3, "vllm:b": 2}, second.id: {"llama.cpp:a": 4}}


def test_counts_of_messages_deleted_meanwhile_are_dropped(repo: Repository) -> None:
    thread, (message,) = repo.create_thread({}, {}, [user_message("hello")])
    repo.delete_message(thread.id, message.id)
    repo.save_token_counts("k", {message.id: 3})
    assert repo.thread_messages(thread.id) == []


def test_the_first_message_of_a_role_is_found_however_long_the_thread(repo: Repository) -> None:
    repo.create_assistant(NewAssistant(model="m"))
    greeting = user_message("hi")
    welcome = NewMessage(role="assistant", content=(TextContent("welcome"),))
    thread, messages = repo.create_thread({}, {}, [welcome, greeting, *(user_message(f"n{i}") for i in range(50))])
    found = repo.first_message(thread.id, "user")
    assert found is not None
    assert found.id == messages[1].id
    assert repo.first_message(thread.id, "assistant") == messages[0]
    empty, _ = repo.create_thread({}, {}, [])
    assert repo.first_message(empty.id, "user") is None


@pytest.mark.sqlite_only
def test_upgrading_adds_the_counts_column_with_messages_intact(tmp_path: Path) -> None:
    database = open_database(str(tmp_path / "old.sqlite3"))
    assert migrate(database, target=5) == 5
    sql(
        database,
        "INSERT INTO threads (id, project_id, created_at, tool_resources, metadata)"
        " VALUES ('thread_old', 'proj_default', 1, '{}', '{}')",
    )
    sql(
        database,
        "INSERT INTO messages (id, thread_id, created_at, status, role, content, attachments, metadata)"
        " VALUES ('msg_old', 'thread_old', 1, 'completed', 'user', '[]', '[]', '{}')",
    )
    migrate(database)
    repo = Repository(database)
    repo.save_token_counts("k", {"msg_old": 5})
    assert [m.token_counts for m in repo.thread_messages("thread_old")] == [{"k": 5}]
    database.close()
