"""Numbered schema migrations, applied in order at start-up.

The `schema_version` table holds one row with the number of migrations applied. Each migration
runs in its own write transaction together with the version bump, so a crash leaves the database
at a whole version. Migrations are history: never edit one that has shipped, append a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import peewee
from playhouse import migrate as pw_migrate

from .database import connection_scope, write_transaction
from .models import JSONField

Migration = Callable[[peewee.Database], None]

# playhouse.migrate ships without type hints; the migrator picks SQLite or PostgreSQL DDL.
_schema_migrator: Callable[[peewee.Database], Any] = pw_migrate.SchemaMigrator.from_database


class _SchemaVersion(peewee.Model):
    id = peewee.IntegerField(primary_key=True)  # always 1: a single row
    version = peewee.IntegerField()

    class Meta:
        table_name = "schema_version"


# Frozen copy of the schema as migration 1 created it; later changes go into new migrations.
class _V1Model(peewee.Model):
    class Meta:
        legacy_table_names = False


class _V1Assistant(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    created_at = peewee.IntegerField()
    model = peewee.TextField()
    name = peewee.TextField(null=True)
    description = peewee.TextField(null=True)
    instructions = peewee.TextField(null=True)
    tools = JSONField()
    tool_resources = JSONField()
    metadata = JSONField()
    temperature = peewee.FloatField(null=True)
    top_p = peewee.FloatField(null=True)
    response_format = JSONField(null=True)

    class Meta:
        table_name = "assistants"
        indexes = ((("created_at", "seq"), False),)


class _V1Thread(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    created_at = peewee.IntegerField()
    tool_resources = JSONField()
    metadata = JSONField()

    class Meta:
        table_name = "threads"


class _V1Message(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    thread = peewee.ForeignKeyField(
        _V1Thread, field=_V1Thread.id, column_name="thread_id", on_delete="CASCADE", index=False
    )
    created_at = peewee.IntegerField()
    status = peewee.TextField()
    incomplete_details = JSONField(null=True)
    completed_at = peewee.IntegerField(null=True)
    incomplete_at = peewee.IntegerField(null=True)
    role = peewee.TextField()
    content = JSONField()
    assistant_id = peewee.TextField(null=True)
    run_id = peewee.TextField(null=True)
    attachments = JSONField()
    metadata = JSONField()

    class Meta:
        table_name = "messages"
        indexes = ((("thread", "created_at", "seq"), False),)


class _V1Run(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    thread = peewee.ForeignKeyField(
        _V1Thread, field=_V1Thread.id, column_name="thread_id", on_delete="CASCADE", index=False
    )
    assistant_id = peewee.TextField()
    created_at = peewee.IntegerField()
    status = peewee.TextField()
    model = peewee.TextField()
    instructions = peewee.TextField(null=True)
    tools = JSONField()
    metadata = JSONField()
    required_action = JSONField(null=True)
    last_error = JSONField(null=True)
    expires_at = peewee.IntegerField(null=True)
    started_at = peewee.IntegerField(null=True)
    cancelled_at = peewee.IntegerField(null=True)
    failed_at = peewee.IntegerField(null=True)
    completed_at = peewee.IntegerField(null=True)
    incomplete_details = JSONField(null=True)
    usage = JSONField(null=True)
    temperature = peewee.FloatField(null=True)
    top_p = peewee.FloatField(null=True)
    max_prompt_tokens = peewee.IntegerField(null=True)
    max_completion_tokens = peewee.IntegerField(null=True)
    truncation_strategy = JSONField(null=True)
    tool_choice = JSONField(null=True)
    parallel_tool_calls = peewee.BooleanField(null=True)
    response_format = JSONField(null=True)

    class Meta:
        table_name = "runs"
        indexes = ((("thread", "created_at", "seq"), False),)


class _V1RunStep(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    run = peewee.ForeignKeyField(_V1Run, field=_V1Run.id, column_name="run_id", on_delete="CASCADE", index=False)
    thread_id = peewee.TextField()
    assistant_id = peewee.TextField()
    created_at = peewee.IntegerField()
    type = peewee.TextField()
    status = peewee.TextField()
    step_details = JSONField()
    last_error = JSONField(null=True)
    expired_at = peewee.IntegerField(null=True)
    cancelled_at = peewee.IntegerField(null=True)
    failed_at = peewee.IntegerField(null=True)
    completed_at = peewee.IntegerField(null=True)
    metadata = JSONField()
    usage = JSONField(null=True)

    class Meta:
        table_name = "run_steps"
        indexes = ((("run", "created_at", "seq"), False),)


_V1_MODELS: tuple[type[peewee.Model], ...] = (_V1Assistant, _V1Thread, _V1Message, _V1Run, _V1RunStep)


def _create_initial_schema(db: peewee.Database) -> None:
    with db.bind_ctx(_V1_MODELS):
        db.create_tables(_V1_MODELS, safe=False)


def _add_assistant_reasoning_effort(db: peewee.Database) -> None:
    _schema_migrator(db).add_column("assistants", "reasoning_effort", peewee.TextField(null=True)).run()


def _index_messages_by_run(db: peewee.Database) -> None:
    # Listing one run's messages (the `run_id` filter) then walks the index in page order.
    _schema_migrator(db).add_index("messages", ("thread_id", "run_id", "created_at", "seq"), False).run()


def _index_runs_by_status(db: peewee.Database) -> None:
    # The active run of a thread (checked on every run and message creation), and the runs that
    # start-up recovery and the expiry sweep look for.
    migrator = _schema_migrator(db)
    migrator.add_index("runs", ("thread_id", "status"), False).run()
    migrator.add_index("runs", ("status", "expires_at"), False).run()


# Frozen copies of the tables migration 5 created.
class _V5Project(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    name = peewee.TextField(unique=True)
    created_at = peewee.IntegerField()

    class Meta:
        table_name = "projects"


class _V5ApiKey(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project = peewee.ForeignKeyField(_V5Project, field=_V5Project.id, column_name="project_id")
    name = peewee.TextField(null=True)
    prefix = peewee.TextField()
    secret_hash = peewee.TextField(unique=True)
    admin = peewee.BooleanField()
    rpm = peewee.IntegerField(null=True)
    tpm = peewee.IntegerField(null=True)
    created_at = peewee.IntegerField()
    last_used_at = peewee.IntegerField(null=True)
    revoked_at = peewee.IntegerField(null=True)

    class Meta:
        table_name = "api_keys"


def _add_projects_and_keys(db: peewee.Database) -> None:
    # Everything stored so far joins the default project.
    with db.bind_ctx([_V5Project, _V5ApiKey]):
        db.create_tables([_V5Project, _V5ApiKey], safe=False)
        _V5Project.insert(id="proj_default", name="default", created_at=int(time.time())).execute()
    migrator = _schema_migrator(db)
    for table in ("assistants", "threads"):
        migrator.add_column(table, "project_id", peewee.TextField(default="proj_default")).run()
    migrator.add_index("assistants", ("project_id", "created_at", "seq"), False).run()


def _add_message_token_counts(db: peewee.Database) -> None:
    _schema_migrator(db).add_column("messages", "token_counts", JSONField(null=True)).run()


# Frozen copies of the tables migration 7 created.
class _V7File(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default="proj_default")
    created_at = peewee.IntegerField()
    bytes = peewee.BigIntegerField()
    filename = peewee.TextField()
    purpose = peewee.TextField()
    sha256 = peewee.TextField(index=True)
    expires_at = peewee.IntegerField(null=True)

    class Meta:
        table_name = "files"
        indexes = ((("project_id", "created_at", "seq"), False),)


class _V7VectorStore(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default="proj_default")
    created_at = peewee.IntegerField()
    name = peewee.TextField(null=True)
    description = peewee.TextField(null=True)
    metadata = JSONField()
    expires_after_days = peewee.IntegerField(null=True)
    expires_at = peewee.IntegerField(null=True)
    last_active_at = peewee.IntegerField(null=True)
    expired = peewee.BooleanField(default=False)

    class Meta:
        table_name = "vector_stores"
        indexes = ((("project_id", "created_at", "seq"), False),)


class _V7VectorStoreFile(_V1Model):
    seq = peewee.AutoField()
    vector_store = peewee.ForeignKeyField(
        _V7VectorStore, field=_V7VectorStore.id, column_name="vector_store_id", on_delete="CASCADE", index=False
    )
    file_id = peewee.TextField()
    created_at = peewee.IntegerField()
    status = peewee.TextField()
    last_error = JSONField(null=True)
    chunking_strategy = JSONField()
    attributes = JSONField(null=True)
    usage_bytes = peewee.BigIntegerField(default=0)
    batch_id = peewee.TextField(null=True)

    class Meta:
        table_name = "vector_store_files"
        indexes = (
            (("vector_store", "file_id"), True),
            (("vector_store", "created_at", "seq"), False),
            (("file_id",), False),
            (("batch_id",), False),
            (("status",), False),
        )


class _V7FileBatch(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    vector_store = peewee.ForeignKeyField(
        _V7VectorStore, field=_V7VectorStore.id, column_name="vector_store_id", on_delete="CASCADE"
    )
    created_at = peewee.IntegerField()
    cancelled = peewee.BooleanField(default=False)

    class Meta:
        table_name = "vector_store_file_batches"


class _V7FileChunk(_V1Model):
    seq = peewee.AutoField()
    vector_store_id = peewee.TextField()
    file_id = peewee.TextField()
    position = peewee.IntegerField()
    text = peewee.TextField()
    tokens = peewee.IntegerField()
    embedding = peewee.BlobField(null=True)

    class Meta:
        table_name = "file_chunks"
        indexes = ((("vector_store_id", "file_id", "position"), False),)


_V7_MODELS: tuple[type[peewee.Model], ...] = (_V7File, _V7VectorStore, _V7VectorStoreFile, _V7FileBatch, _V7FileChunk)

# Full-text search over the chunks. SQLite: an FTS5 index whose content is `file_chunks.text` (so the
# text is stored once), kept in step by triggers. PostgreSQL: a generated tsvector with a GIN index.
_SQLITE_CHUNK_SEARCH = (
    "CREATE VIRTUAL TABLE file_chunks_fts USING fts5("
    "text, content='file_chunks', content_rowid='seq', tokenize='porter unicode61')",
    "CREATE TRIGGER file_chunks_fts_insert AFTER INSERT ON file_chunks BEGIN "
    "INSERT INTO file_chunks_fts(rowid, text) VALUES (new.seq, new.text); END",
    "CREATE TRIGGER file_chunks_fts_delete AFTER DELETE ON file_chunks BEGIN "
    "INSERT INTO file_chunks_fts(file_chunks_fts, rowid, text) VALUES ('delete', old.seq, old.text); END",
    "CREATE TRIGGER file_chunks_fts_update AFTER UPDATE OF text ON file_chunks BEGIN "
    "INSERT INTO file_chunks_fts(file_chunks_fts, rowid, text) VALUES ('delete', old.seq, old.text); "
    "INSERT INTO file_chunks_fts(rowid, text) VALUES (new.seq, new.text); END",
)
_POSTGRES_CHUNK_SEARCH = (
    "ALTER TABLE file_chunks ADD COLUMN tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED",
    "CREATE INDEX file_chunks_tsv ON file_chunks USING GIN (tsv)",
)


def _add_files_and_vector_stores(db: peewee.Database) -> None:
    with db.bind_ctx(_V7_MODELS):
        db.create_tables(_V7_MODELS, safe=False)
    statements = _SQLITE_CHUNK_SEARCH if isinstance(db, peewee.SqliteDatabase) else _POSTGRES_CHUNK_SEARCH
    execute: Any = db.execute_sql  # untyped in peewee's stubs
    for statement in statements:
        execute(statement)


# Frozen copy of the table migration 8 created.
class _V8Response(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default="proj_default")
    created_at = peewee.IntegerField()
    status = peewee.TextField()
    background = peewee.BooleanField()
    store = peewee.BooleanField()
    model = peewee.TextField()
    instructions = peewee.TextField(null=True)
    input_items = JSONField()
    output_items = JSONField()
    previous_response_id = peewee.TextField(null=True)
    conversation_id = peewee.TextField(null=True)
    prompt_id = peewee.TextField(null=True)
    tools = JSONField()
    tool_choice = JSONField(null=True)
    parallel_tool_calls = peewee.BooleanField()
    temperature = peewee.FloatField(null=True)
    top_p = peewee.FloatField(null=True)
    text_format = JSONField(null=True)
    max_output_tokens = peewee.IntegerField(null=True)
    truncation = peewee.TextField()
    metadata = JSONField()
    usage = JSONField(null=True)
    error = JSONField(null=True)
    incomplete_details = JSONField(null=True)
    completed_at = peewee.IntegerField(null=True)

    class Meta:
        table_name = "responses"
        indexes = ((("status",), False),)


def _add_responses_and_items(db: peewee.Database) -> None:
    # Threads are also the Conversations API's conversations; their messages its items, of which
    # function calls and their outputs carry details.
    _schema_migrator(db).add_column("messages", "item_details", JSONField(null=True)).run()
    with db.bind_ctx([_V8Response]):
        db.create_tables([_V8Response], safe=False)


# Frozen copies of the tables migration 9 created.
class _V9Replica(_V1Model):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    host = peewee.TextField()
    pid = peewee.IntegerField()
    started_at = peewee.DoubleField()
    heartbeat_at = peewee.DoubleField()

    class Meta:
        table_name = "replicas"


class _V9RunClaim(_V1Model):
    seq = peewee.AutoField()
    run = peewee.ForeignKeyField(_V1Run, field=_V1Run.id, column_name="run_id", on_delete="CASCADE", unique=True)
    replica_id = peewee.TextField()
    stretch = peewee.IntegerField()
    claimed_at = peewee.DoubleField()

    class Meta:
        table_name = "run_claims"
        indexes = ((("replica_id",), False),)


class _V9RunEvent(_V1Model):
    seq = peewee.AutoField()
    run = peewee.ForeignKeyField(_V1Run, field=_V1Run.id, column_name="run_id", on_delete="CASCADE", index=False)
    stretch = peewee.IntegerField()
    number = peewee.IntegerField()
    name = peewee.TextField()
    data = peewee.TextField(null=True)

    class Meta:
        table_name = "run_events"
        indexes = ((("run", "stretch", "number"), True),)


class _V9RateBucket(_V1Model):
    seq = peewee.AutoField()
    key_id = peewee.TextField()
    kind = peewee.TextField()
    capacity = peewee.IntegerField()
    level = peewee.DoubleField()
    updated_at = peewee.DoubleField()

    class Meta:
        table_name = "rate_buckets"
        indexes = ((("key_id", "kind"), True),)


def _add_replica_coordination(db: peewee.Database) -> None:
    tables = [_V9Replica, _V9RunClaim, _V9RunEvent, _V9RateBucket]
    with db.bind_ctx(tables):
        db.create_tables(tables, safe=False)
    # One active run per thread, enforced by the database itself (replicas create runs concurrently).
    execute: Callable[..., Any] = db.execute_sql  # untyped in peewee's stubs
    execute(
        "CREATE UNIQUE INDEX runs_one_active_per_thread ON runs (thread_id)"
        " WHERE status IN ('cancelling', 'in_progress', 'queued', 'requires_action')"
    )


def _add_response_replicas(db: peewee.Database) -> None:
    # The replica executing a response, so that another can fail it once that replica's lease runs
    # out; null for responses stored before, and on SQLite (one process).
    _schema_migrator(db).add_column("responses", "replica_id", peewee.TextField(null=True)).run()


MIGRATIONS: tuple[Migration, ...] = (
    _create_initial_schema,  # 1: assistants, threads, messages, runs, run_steps
    _add_assistant_reasoning_effort,  # 2: assistants.reasoning_effort
    _index_messages_by_run,  # 3: index messages(thread_id, run_id, created_at, seq)
    _index_runs_by_status,  # 4: index runs(thread_id, status) and runs(status, expires_at)
    _add_projects_and_keys,  # 5: projects, api_keys; assistants and threads belong to a project
    _add_message_token_counts,  # 6: messages.token_counts
    _add_files_and_vector_stores,  # 7: files, vector stores, their files, batches and searchable chunks
    _add_responses_and_items,  # 8: responses; messages.item_details for function calls and outputs
    _add_replica_coordination,  # 9: replicas, run_claims, run_events, rate_buckets; one active run per thread
    _add_response_replicas,  # 10: responses.replica_id
)
LATEST_VERSION = len(MIGRATIONS)


def schema_version(db: peewee.Database) -> int:
    """The number of migrations applied to `db`; 0 for an empty database."""
    with connection_scope(db), db.bind_ctx([_SchemaVersion]):
        if not db.table_exists("schema_version"):
            return 0
        row = _SchemaVersion.get_or_none(_SchemaVersion.id == 1)
        return 0 if row is None else row.version


def migrate(db: peewee.Database, target: int = LATEST_VERSION) -> int:
    """Apply the migrations `db` lacks, up to `target`; return the resulting version.

    Re-running is a no-op. The version is read again inside each migration's write transaction,
    so two processes starting together do not apply a migration twice on SQLite.
    """
    if not 0 <= target <= LATEST_VERSION:
        raise ValueError(f"target must be between 0 and {LATEST_VERSION}, got {target}")
    migrator = _schema_migrator(db)
    with connection_scope(db), db.bind_ctx([_SchemaVersion]):
        with write_transaction(db):
            db.create_tables([_SchemaVersion], safe=True)
            if _SchemaVersion.get_or_none(_SchemaVersion.id == 1) is None:
                _SchemaVersion.insert(id=1, version=0).execute()
        for number, step in enumerate(MIGRATIONS[:target], start=1):
            # Outside any transaction, SQLite's foreign keys are switched off while a migration
            # runs, so a table rebuild by a future migration cannot cascade-delete rows.
            with migrator.migration_context(atomic=False), write_transaction(db):
                if _current(db) >= number:
                    continue
                step(db)
                _SchemaVersion.update(version=number).where(_SchemaVersion.id == 1).execute()
        return _current(db)


def _current(db: peewee.Database) -> int:
    version: int = _SchemaVersion.get(_SchemaVersion.id == 1).version
    return version
