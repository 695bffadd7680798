"""Peewee models of the current schema.

The models are bound to a database late (`bind_models`), so one package serves SQLite and
PostgreSQL alike. Tables are created by `migrations`, never from these classes, so that an
existing database is only ever changed by a numbered migration.

Every table has an integer `seq` primary key, used with `created_at` for a stable order among
rows created in the same second, and a unique text `id`, the public id.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import peewee

from . import values as v

# Peewee's fields are generic only in the type stubs.
if TYPE_CHECKING:
    _TextField = peewee.TextField[Any]
else:
    _TextField = peewee.TextField


class JSONField(_TextField):
    """JSON kept as text: portable to every backend, no extension needed."""

    def db_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        if value is None:
            return None
        return json.loads(value)


class CodecField(JSONField):
    """A typed value (`values.py`) kept as its OpenAI JSON: rows hand out the typed value."""

    def __init__(self, encode: Callable[[Any], Any], decode: Callable[[Any], Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._encode = encode
        self._decode = decode

    def db_value(self, value: Any) -> str | None:
        return super().db_value(None if value is None else self._encode(value))

    def python_value(self, value: Any) -> Any:
        data = super().python_value(value)
        return None if data is None else self._decode(data)


class EnumField(_TextField):
    """A `StrEnum` kept as its string value."""

    def __init__(self, enum: type[StrEnum], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._enum = enum

    def db_value(self, value: Any) -> str | None:
        return None if value is None else str(value)

    def python_value(self, value: Any) -> Any:
        return None if value is None else self._enum(value)


def _content_field() -> CodecField:
    return CodecField(
        lambda parts: [v.content_to_json(part, stored=True) for part in parts],
        lambda data: tuple(v.content_from_json(part) for part in data),
    )


def _usage_field() -> CodecField:
    return CodecField(v.usage_to_json, v.usage_from_json, null=True)


def _last_error_field() -> CodecField:
    return CodecField(v.last_error_to_json, v.last_error_from_json, null=True)


def _incomplete_details_field() -> CodecField:
    return CodecField(v.incomplete_details_to_json, v.incomplete_details_from_json, null=True)


class BaseModel(peewee.Model):
    class Meta:
        # Index names then start with the table name, as playhouse.migrate names them.
        legacy_table_names = False


# Rows created before projects existed belong to this one, as do all rows of a service without keys.
DEFAULT_PROJECT_ID = "proj_default"
DEFAULT_PROJECT_NAME = "default"


class Project(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    name = peewee.TextField(unique=True)
    created_at = peewee.IntegerField()

    class Meta:
        table_name = "projects"


class ApiKey(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project = peewee.ForeignKeyField(Project, field=Project.id, column_name="project_id")
    project_id: str  # peewee's raw-id accessor of `project`
    name = peewee.TextField(null=True)
    # The first characters of the secret, to recognise a key in a list; the secret itself is never stored.
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


class Assistant(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    # Plain ids: every query of the repository is scoped by project.
    project_id = peewee.TextField(default=DEFAULT_PROJECT_ID)
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
    reasoning_effort = peewee.TextField(null=True)

    class Meta:
        table_name = "assistants"
        indexes = ((("created_at", "seq"), False), (("project_id", "created_at", "seq"), False))


class Thread(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default=DEFAULT_PROJECT_ID)
    created_at = peewee.IntegerField()
    tool_resources = JSONField()
    metadata = JSONField()

    class Meta:
        table_name = "threads"


class Message(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    # The composite indexes below lead with thread_id, so the foreign key needs no index of its own.
    thread = peewee.ForeignKeyField(Thread, field=Thread.id, column_name="thread_id", on_delete="CASCADE", index=False)
    thread_id: str  # peewee's raw-id accessor of `thread`
    created_at = peewee.IntegerField()
    status = EnumField(v.MessageStatus)
    incomplete_details = _incomplete_details_field()
    completed_at = peewee.IntegerField(null=True)
    incomplete_at = peewee.IntegerField(null=True)
    role = peewee.TextField()
    content = _content_field()
    # Plain ids, no foreign keys: deleting an assistant or a run leaves its messages in place.
    assistant_id = peewee.TextField(null=True)
    run_id = peewee.TextField(null=True)
    attachments = JSONField()
    metadata = JSONField()
    # The tokens of the content as each tokenizer (by its key) counted them, kept so that a long
    # thread is counted once, not on every run; null until first counted.
    token_counts = JSONField(null=True)
    # Set on the function calls and outputs the Responses API adds to a conversation (a thread).
    item_details = CodecField(v.item_details_to_json, v.item_details_from_json, null=True)

    class Meta:
        table_name = "messages"
        indexes = (
            (("thread", "created_at", "seq"), False),
            (("thread", "run_id", "created_at", "seq"), False),
        )


class Run(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    thread = peewee.ForeignKeyField(Thread, field=Thread.id, column_name="thread_id", on_delete="CASCADE", index=False)
    thread_id: str  # peewee's raw-id accessor of `thread`
    assistant_id = peewee.TextField()
    created_at = peewee.IntegerField()
    status = EnumField(v.RunStatus)
    model = peewee.TextField()
    instructions = peewee.TextField(null=True)
    tools = JSONField()
    metadata = JSONField()
    required_action = CodecField(v.required_action_to_json, v.required_action_from_json, null=True)
    last_error = _last_error_field()
    expires_at = peewee.IntegerField(null=True)
    started_at = peewee.IntegerField(null=True)
    cancelled_at = peewee.IntegerField(null=True)
    failed_at = peewee.IntegerField(null=True)
    completed_at = peewee.IntegerField(null=True)
    incomplete_details = _incomplete_details_field()
    usage = _usage_field()
    temperature = peewee.FloatField(null=True)
    top_p = peewee.FloatField(null=True)
    max_prompt_tokens = peewee.IntegerField(null=True)
    max_completion_tokens = peewee.IntegerField(null=True)
    truncation_strategy = CodecField(v.truncation_strategy_to_json, v.truncation_strategy_from_json, null=True)
    tool_choice = JSONField(null=True)
    parallel_tool_calls = peewee.BooleanField(null=True)
    response_format = JSONField(null=True)

    class Meta:
        table_name = "runs"
        indexes = (
            (("thread", "created_at", "seq"), False),
            # The active run of a thread, without walking the thread's run history.
            (("thread", "status"), False),
            # Runs by status for start-up recovery, and the expiry sweep over expires_at.
            (("status", "expires_at"), False),
        )


class RunStep(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    run = peewee.ForeignKeyField(Run, field=Run.id, column_name="run_id", on_delete="CASCADE", index=False)
    run_id: str  # peewee's raw-id accessor of `run`
    thread_id = peewee.TextField()
    assistant_id = peewee.TextField()
    created_at = peewee.IntegerField()
    type = peewee.TextField()
    status = EnumField(v.StepStatus)
    step_details = CodecField(v.step_details_to_json, v.step_details_from_json)
    last_error = _last_error_field()
    expired_at = peewee.IntegerField(null=True)
    cancelled_at = peewee.IntegerField(null=True)
    failed_at = peewee.IntegerField(null=True)
    completed_at = peewee.IntegerField(null=True)
    metadata = JSONField()
    usage = _usage_field()

    class Meta:
        table_name = "run_steps"
        indexes = ((("run", "created_at", "seq"), False),)


def _items_field() -> CodecField:
    return CodecField(
        lambda items: [v.item_to_json(item) for item in items],
        lambda data: tuple(v.item_from_json(item) for item in data),
    )


class Response(BaseModel):
    """A stored response of the Responses API; its items are kept inline, as they were at its end
    (a conversation also gets copies of them, as messages of its thread)."""

    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default=DEFAULT_PROJECT_ID)
    created_at = peewee.IntegerField()
    status = EnumField(v.ResponseStatus)
    background = peewee.BooleanField()
    store = peewee.BooleanField()
    model = peewee.TextField()
    instructions = peewee.TextField(null=True)
    input_items = _items_field()
    output_items = _items_field()
    # Plain ids: deleting a conversation or an earlier response leaves this one as it was.
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
    usage = _usage_field()
    error = _last_error_field()
    incomplete_details = _incomplete_details_field()
    completed_at = peewee.IntegerField(null=True)
    # The replica executing it (where it was created), if several share the database: when that
    # replica's lease runs out, another fails it. Not part of the record, like `project_id`.
    replica_id = peewee.TextField(null=True)

    class Meta:
        table_name = "responses"
        # Responses by status, for start-up recovery.
        indexes = ((("status",), False),)


# ---------------------------------------------------------------- what replicas of one service share


class Replica(BaseModel):
    """A running replica, alive while it renews `heartbeat_at` (seconds, by the database's clock)."""

    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    host = peewee.TextField()
    pid = peewee.IntegerField()
    started_at = peewee.DoubleField()
    heartbeat_at = peewee.DoubleField()

    class Meta:
        table_name = "replicas"


class RunClaim(BaseModel):
    """Which replica executes (or last executed) a run, and how many stretches it has had."""

    seq = peewee.AutoField()
    run = peewee.ForeignKeyField(Run, field=Run.id, column_name="run_id", on_delete="CASCADE", unique=True)
    run_id: str
    replica_id = peewee.TextField()
    stretch = peewee.IntegerField()
    claimed_at = peewee.DoubleField()

    class Meta:
        table_name = "run_claims"
        # Recovery looks for the runs of replicas that are gone.
        indexes = ((("replica_id",), False),)


class RunEvent(BaseModel):
    """One event of a stretch of a run, numbered from 1, for followers on other replicas."""

    seq = peewee.AutoField()
    run = peewee.ForeignKeyField(Run, field=Run.id, column_name="run_id", on_delete="CASCADE", index=False)
    run_id: str
    stretch = peewee.IntegerField()
    number = peewee.IntegerField()
    name = peewee.TextField()
    data = peewee.TextField(null=True)

    class Meta:
        table_name = "run_events"
        indexes = ((("run", "stretch", "number"), True),)


class RateBucket(BaseModel):
    """A key's requests or tokens bucket, shared by every replica."""

    seq = peewee.AutoField()
    key_id = peewee.TextField()
    kind = peewee.TextField()
    capacity = peewee.IntegerField()
    level = peewee.DoubleField()
    updated_at = peewee.DoubleField()

    class Meta:
        table_name = "rate_buckets"
        indexes = ((("key_id", "kind"), True),)


# At most one active run per thread, whichever replica creates it: the database refuses a second.
Run.add_index(
    Run.index(Run.thread, unique=True, name="runs_one_active_per_thread").where(
        Run.status.in_(sorted(v.ACTIVE_RUN_STATUSES))
    )
)

MODELS: tuple[type[BaseModel], ...] = (
    Project,
    ApiKey,
    Assistant,
    Thread,
    Message,
    Run,
    RunStep,
    Response,
    Replica,
    RunClaim,
    RunEvent,
    RateBucket,
)


def bind_models(db: peewee.Database) -> None:
    """Point every model at `db`; peewee binds per class, so the last call wins process-wide."""
    db.bind(MODELS)
