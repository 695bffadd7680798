"""Projects and keys in the storage layer: every query is scoped by project, keys are stored as
hashes, and a database from before projects moves into the default project."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import peewee
import pytest

from sovereign_storage import (
    DEFAULT_PROJECT_ID,
    KeyStore,
    NewAssistant,
    NewRun,
    NotFoundError,
    PageRequest,
    Repository,
    migrate,
    open_database,
)
from tests.unit.conftest import sql, user_message
from tests.unit.test_storage_runs import new_step

pytestmark = pytest.mark.unit


def test_another_projects_objects_are_as_if_they_did_not_exist(repo: Repository) -> None:
    alpha, beta = repo.scoped("proj_alpha"), repo.scoped("proj_beta")
    assistant = alpha.create_assistant(NewAssistant(model="m"))
    thread, (message,) = alpha.create_thread({}, {}, [user_message("secret")])
    run, _ = alpha.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
    # Steps are written by the run layer, by id, once it has found the run through its project.
    step = alpha.create_step(new_step(run))

    missing: list[tuple[str, Any]] = [
        ("assistant", lambda: beta.get_assistant(assistant.id)),
        ("assistant", lambda: beta.update_assistant(assistant.id, {"name": "stolen"})),
        ("assistant", lambda: beta.delete_assistant(assistant.id)),
        ("thread", lambda: beta.get_thread(thread.id)),
        ("thread", lambda: beta.update_thread(thread.id, metadata={"k": "v"})),
        ("thread", lambda: beta.delete_thread(thread.id)),
        ("thread", lambda: beta.create_message(thread.id, user_message("x"))),
        ("thread", lambda: beta.get_message(thread.id, message.id)),
        ("thread", lambda: beta.update_message(thread.id, message.id, {"k": "v"})),
        ("thread", lambda: beta.delete_message(thread.id, message.id)),
        ("thread", lambda: beta.list_messages(thread.id, PageRequest())),
        ("thread", lambda: beta.thread_messages(thread.id)),
        ("thread", lambda: beta.newest_items(thread.id, 5)),
        ("thread", lambda: beta.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))),
        ("thread", lambda: beta.get_run(thread.id, run.id)),
        ("thread", lambda: beta.update_run(thread.id, run.id, {"metadata": {"k": "v"}})),
        ("thread", lambda: beta.list_runs(thread.id, PageRequest())),
        ("thread", lambda: beta.active_run(thread.id)),
        ("thread", lambda: beta.get_step(thread.id, run.id, step.id)),
        ("thread", lambda: beta.list_steps(thread.id, run.id, PageRequest())),
    ]
    for kind, attempt in missing:
        with pytest.raises(NotFoundError, match=f"No {kind} found"):
            attempt()
    assert beta.list_assistants(PageRequest()).items == []
    with pytest.raises(Exception, match="after"):
        beta.list_assistants(PageRequest(after=assistant.id))

    # Nothing of alpha's changed, and alpha still sees all of it.
    assert alpha.get_assistant(assistant.id) == assistant
    assert [m.id for m in alpha.thread_messages(thread.id)] == [message.id]
    assert alpha.get_run(thread.id, run.id).metadata == {}
    assert [a.id for a in alpha.list_assistants(PageRequest()).items] == [assistant.id]


def test_the_repository_without_a_scope_is_the_default_projects(repo: Repository) -> None:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    assert repo.project_id == DEFAULT_PROJECT_ID
    assert repo.scoped(DEFAULT_PROJECT_ID) is repo
    assert repo.scoped(DEFAULT_PROJECT_ID).get_assistant(assistant.id) == assistant
    with pytest.raises(NotFoundError):
        repo.scoped("proj_other").get_assistant(assistant.id)


def test_keys_are_stored_as_hashes_and_found_by_them(db: peewee.Database) -> None:
    keys = KeyStore(db)
    assert not keys.has_keys()
    created = keys.create_key("alpha", "hash-1", "sk-abcdefg", name="ci", rpm=10)
    assert created.id.startswith("key_")
    assert (created.project_name, created.name, created.prefix, created.admin, created.rpm, created.tpm) == (
        "alpha",
        "ci",
        "sk-abcdefg",
        False,
        10,
        None,
    )
    assert created.project_id.startswith("proj_")
    admin = keys.create_key("default", "hash-2", "sk-zyxwvut", admin=True)
    assert (admin.project_id, admin.admin) == (DEFAULT_PROJECT_ID, True)
    assert keys.has_keys()
    assert keys.find_key("hash-1") == created
    assert keys.find_key("hash-unknown") is None
    assert [p.name for p in keys.list_projects()] == ["default", "alpha"]
    assert keys.ensure_project("alpha").id == created.project_id

    keys.mark_used({created.id: 1234})
    revoked = keys.revoke_key(created.id)
    assert (revoked.last_used_at, revoked.revoked_at is not None) == (1234, True)
    assert keys.revoke_key(created.id).revoked_at == revoked.revoked_at  # revoking twice changes nothing
    assert keys.find_key("hash-1") == revoked
    assert [k.id for k in keys.list_keys()] == [created.id, admin.id]
    with pytest.raises(NotFoundError):
        keys.revoke_key("key_missing")
    # The secret itself is nowhere in the database.
    assert sql(db, "SELECT secret_hash FROM api_keys ORDER BY seq") == [("hash-1",), ("hash-2",)]


@pytest.mark.sqlite_only
def test_upgrading_puts_existing_objects_in_the_default_project(tmp_path: Path) -> None:
    database = open_database(str(tmp_path / "old.sqlite3"))
    assert migrate(database, target=4) == 4
    sql(database, "INSERT INTO threads (id, created_at, tool_resources, metadata) VALUES ('thread_old', 1, '{}', '{}')")
    sql(
        database,
        "INSERT INTO assistants (id, created_at, model, tools, tool_resources, metadata)"
        " VALUES ('asst_old', 1, 'm', '[]', '{}', '{}')",
    )
    migrate(database)
    repo = Repository(database)
    assert repo.get_thread("thread_old").id == "thread_old"
    assert repo.get_assistant("asst_old").model == "m"
    with pytest.raises(NotFoundError):
        repo.scoped("proj_new").get_thread("thread_old")
    assert [(p.id, p.name) for p in KeyStore(database).list_projects()] == [(DEFAULT_PROJECT_ID, "default")]
    database.close()
