"""Synchronous data access for assistants, threads, messages, runs and run steps.

Methods are blocking and safe to call from several threads at once (the server calls them
through `asyncio.to_thread`): peewee gives each thread its own connection, and every method
opens and closes it unless the calling thread already holds one.
"""

from __future__ import annotations

import contextlib
import functools
import operator
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import fields
from typing import Any, TypeVar

import peewee

from . import prepared
from .database import checkpoint, connection_scope, read_transaction, uncontended, write_transaction
from .errors import ActiveRunError, InvalidCursorError, NotFoundError
from .ids import (
    ASSISTANT_PREFIX,
    FUNCTION_CALL_PREFIX,
    FUNCTION_OUTPUT_PREFIX,
    KEY_PREFIX,
    MESSAGE_PREFIX,
    PROJECT_PREFIX,
    RUN_PREFIX,
    STEP_PREFIX,
    THREAD_PREFIX,
    new_id,
)
from .models import (
    DEFAULT_PROJECT_ID,
    ApiKey,
    Assistant,
    BaseModel,
    Message,
    Project,
    Response,
    Run,
    RunStep,
    Thread,
    bind_models,
)
from .records import (
    ApiKeyRecord,
    AssistantRecord,
    MessageRecord,
    NewAssistant,
    NewMessage,
    NewRun,
    NewStep,
    Page,
    PageRequest,
    ProjectRecord,
    ResponseRecord,
    RunRecord,
    RunStepRecord,
    ThreadRecord,
    Transition,
)
from .values import (
    ACTIVE_RUN_STATUSES,
    ContentPart,
    FunctionCallDetails,
    FunctionOutputDetails,
    IncompleteDetails,
    LastError,
    MessageCreation,
    MessageStatus,
    ResponseStatus,
    RunStatus,
    StepStatus,
)

_Row = TypeVar("_Row", bound=BaseModel)
_Status = TypeVar("_Status", RunStatus, StepStatus, MessageStatus, ResponseStatus)

# Fields a caller may change with update_assistant; id and created_at are fixed at creation.
_ASSISTANT_UPDATABLE: dict[str, peewee.Field[Any]] = {
    "model": Assistant.model,
    "name": Assistant.name,
    "description": Assistant.description,
    "instructions": Assistant.instructions,
    "tools": Assistant.tools,
    "tool_resources": Assistant.tool_resources,
    "metadata": Assistant.metadata,
    "temperature": Assistant.temperature,
    "top_p": Assistant.top_p,
    "response_format": Assistant.response_format,
    "reasoning_effort": Assistant.reasoning_effort,
}

# Fields a run update may change: every RunRecord field but the identity (id, created_at,
# thread_id) and the status, which changes only by `transition_run`.
_RUN_UPDATABLE: dict[str, peewee.Field[Any]] = {
    "assistant_id": Run.assistant_id,
    "model": Run.model,
    "instructions": Run.instructions,
    "tools": Run.tools,
    "metadata": Run.metadata,
    "required_action": Run.required_action,
    "last_error": Run.last_error,
    "expires_at": Run.expires_at,
    "started_at": Run.started_at,
    "cancelled_at": Run.cancelled_at,
    "failed_at": Run.failed_at,
    "completed_at": Run.completed_at,
    "incomplete_details": Run.incomplete_details,
    "usage": Run.usage,
    "temperature": Run.temperature,
    "top_p": Run.top_p,
    "max_prompt_tokens": Run.max_prompt_tokens,
    "max_completion_tokens": Run.max_completion_tokens,
    "truncation_strategy": Run.truncation_strategy,
    "tool_choice": Run.tool_choice,
    "parallel_tool_calls": Run.parallel_tool_calls,
    "response_format": Run.response_format,
}

# Fields a step update may change; the step's identity and owners are fixed at creation, and its
# status changes only by `transition_step`.
_STEP_UPDATABLE: dict[str, peewee.Field[Any]] = {
    "step_details": RunStep.step_details,
    "last_error": RunStep.last_error,
    "expired_at": RunStep.expired_at,
    "cancelled_at": RunStep.cancelled_at,
    "failed_at": RunStep.failed_at,
    "completed_at": RunStep.completed_at,
    "metadata": RunStep.metadata,
    "usage": RunStep.usage,
}

# The column that records when an object entered a status, stamped by the transition into it.
_RUN_STAMPS: dict[RunStatus, peewee.Field[Any]] = {
    RunStatus.IN_PROGRESS: Run.started_at,
    RunStatus.COMPLETED: Run.completed_at,
    RunStatus.FAILED: Run.failed_at,
    RunStatus.CANCELLED: Run.cancelled_at,
}
_STEP_STAMPS: dict[StepStatus, peewee.Field[Any]] = {
    StepStatus.COMPLETED: RunStep.completed_at,
    StepStatus.FAILED: RunStep.failed_at,
    StepStatus.CANCELLED: RunStep.cancelled_at,
    StepStatus.EXPIRED: RunStep.expired_at,
}
_MESSAGE_STAMPS: dict[MessageStatus, peewee.Field[Any]] = {
    MessageStatus.COMPLETED: Message.completed_at,
    MessageStatus.INCOMPLETE: Message.incomplete_at,
}
_RESPONSE_STAMPS: dict[ResponseStatus, peewee.Field[Any]] = {ResponseStatus.COMPLETED: Response.completed_at}

# Fields a response's status change may set besides its status: what its execution produced.
_RESPONSE_UPDATABLE: dict[str, peewee.Field[Any]] = {
    "output_items": Response.output_items,
    "usage": Response.usage,
    "error": Response.error,
    "incomplete_details": Response.incomplete_details,
}

# The messages the Assistants API lists and returns: not the Responses API's function calls and
# outputs, nor its system and developer messages (a thread's other items, kept in order with them).
_ASSISTANTS_MESSAGE = Message.item_details.is_null() & Message.role.in_(["user", "assistant"])


def _now() -> int:
    return int(time.time())


class Repository:
    """Storage of the Assistants API objects in one database (bound process-wide), seen from one
    project: every assistant and thread it creates is that project's, and every lookup or list
    sees that project's objects only (another project's ids are as if they did not exist). Messages,
    runs and steps belong to their thread's project and are only ever reached through it.

    `scoped(project_id)` gives the same storage seen from another project. Methods that take a
    run, step or message by id alone serve the run layer, which reached them through a scoped lookup.
    """

    def __init__(self, database: peewee.Database, project_id: str = DEFAULT_PROJECT_ID) -> None:
        self._db = database
        self.project_id = project_id
        bind_models(database)

    def bind(self) -> None:
        """Points every model at this storage's database again: peewee binds per class, process-wide,
        so a process holding several databases (tests running several servers) binds the one it uses."""
        bind_models(self._db)

    def scoped(self, project_id: str) -> Repository:
        """This storage, seen from `project_id`."""
        return self if project_id == self.project_id else Repository(self._db, project_id)

    def uncontended(self) -> contextlib.AbstractContextManager[bool]:
        """Whether calls of this storage made within the block can run at once on the calling
        thread, without waiting for another thread of this process (see `database.uncontended`)."""
        return uncontended(self._db)

    def checkpoint(self) -> None:
        """Blocking: moves what SQLite's write-ahead log holds into the database file (commits do
        not); nothing on PostgreSQL."""
        checkpoint(self._db)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        # One transaction, so that a lookup and the query depending on it see the same snapshot.
        with connection_scope(self._db), read_transaction(self._db):
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with connection_scope(self._db), write_transaction(self._db):
            yield

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Several calls of this repository, from one thread, as one write transaction: one commit
        instead of one each (SQLite has a single writer, so commits are what a busy server waits on)."""
        with self._writing():
            yield

    # Assistants

    def create_assistant(self, new: NewAssistant) -> AssistantRecord:
        assistant_id = new_id(ASSISTANT_PREFIX)
        with self._writing():
            Assistant.insert(
                id=assistant_id,
                project_id=self.project_id,
                created_at=_now(),
                model=new.model,
                name=new.name,
                description=new.description,
                instructions=new.instructions,
                tools=new.tools,
                tool_resources=new.tool_resources,
                metadata=new.metadata,
                temperature=new.temperature,
                top_p=new.top_p,
                response_format=new.response_format,
                reasoning_effort=new.reasoning_effort,
            ).execute()
            return self._assistant_row(assistant_id)

    def get_assistant(self, assistant_id: str) -> AssistantRecord:
        with self._reading():
            return self._assistant_row(assistant_id)

    def update_assistant(self, assistant_id: str, changes: Mapping[str, Any]) -> AssistantRecord:
        unknown = set(changes) - set(_ASSISTANT_UPDATABLE)
        if unknown:
            raise ValueError(f"cannot update assistant fields: {sorted(unknown)}")
        with self._writing():
            if changes:
                values = {_ASSISTANT_UPDATABLE[name]: value for name, value in changes.items()}
                self._assistant_row(assistant_id)
                Assistant.update(values).where(Assistant.id == assistant_id).execute()
            return self._assistant_row(assistant_id)

    def delete_assistant(self, assistant_id: str) -> None:
        # Threads, messages and runs keep their plain assistant_id, as in OpenAI's API.
        with self._writing():
            deleted: int = (
                Assistant.delete()
                .where(Assistant.id == assistant_id, Assistant.project_id == self.project_id)
                .execute()
            )
            if deleted == 0:
                raise NotFoundError("assistant", assistant_id)

    def list_assistants(self, page: PageRequest) -> Page[AssistantRecord]:
        with self._reading():
            scope = [Assistant.project_id == self.project_id]
            rows, has_more = _fetch_page(Assistant, Assistant.id, Assistant.created_at, Assistant.seq, scope, page)
            return Page([_assistant_record(row) for row in rows], has_more)

    def _assistant_row(self, assistant_id: str) -> AssistantRecord:
        def build() -> peewee.Query:
            return Assistant.select().where(
                Assistant.id == prepared.value("id"), Assistant.project_id == prepared.value("project")
            )

        statement = prepared.statement(_bound(), "assistant", build, Assistant._meta.sorted_fields)
        found = prepared.rows(_bound(), statement, {"id": assistant_id, "project": self.project_id})
        if not found:
            raise NotFoundError("assistant", assistant_id)
        return _record_from_values(found[0], AssistantRecord)

    # Threads

    def create_thread(
        self,
        tool_resources: dict[str, Any],
        metadata: dict[str, str],
        messages: Sequence[NewMessage],
        *,
        prefix: str = THREAD_PREFIX,
    ) -> tuple[ThreadRecord, list[MessageRecord]]:
        """A new thread with its messages; the Conversations API's get the `conv` id `prefix`."""
        thread_id = new_id(prefix)
        now = _now()
        with self._writing():
            self._insert_thread(thread_id, now, tool_resources, metadata)
            if messages:
                # Rows are inserted in the given order, so `seq` keeps that order within the second.
                _insert(_bound(), Message, [_message_values(thread_id, now, m) for m in messages])
            thread = self._thread_row(thread_id)
            rows = Message.select().where(Message.thread == thread_id).order_by(Message.seq)
            return thread, [_message_record(row) for row in rows]

    def create_thread_and_run(
        self,
        tool_resources: dict[str, Any],
        metadata: dict[str, str],
        messages: Sequence[NewMessage],
        new: NewRun,
        expires_in: int = 600,
    ) -> tuple[ThreadRecord, RunRecord]:
        """A new thread with its messages, and a queued run on it, in one transaction."""
        thread_id = new_id(THREAD_PREFIX)
        now = _now()
        with self._writing():
            self._insert_thread(thread_id, now, tool_resources, metadata)
            if messages:
                _insert(_bound(), Message, [_message_values(thread_id, now, m) for m in messages])
            values = _run_values(thread_id, now, new, expires_in)
            _insert(_bound(), Run, [values])
            return self._thread_row(thread_id), self._run_row(thread_id, values["id"])

    def _insert_thread(
        self, thread_id: str, now: int, tool_resources: dict[str, Any], metadata: dict[str, str]
    ) -> None:
        values = {
            "id": thread_id,
            "project_id": self.project_id,
            "created_at": now,
            "tool_resources": tool_resources,
            "metadata": metadata,
        }
        _insert(_bound(), Thread, [values])

    def get_thread(self, thread_id: str) -> ThreadRecord:
        with self._reading():
            return self._thread_row(thread_id)

    def update_thread(
        self,
        thread_id: str,
        tool_resources: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> ThreadRecord:
        """Replace the given fields; None leaves a field unchanged."""
        values: dict[peewee.Field[Any], Any] = {}
        if tool_resources is not None:
            values[Thread.tool_resources] = tool_resources
        if metadata is not None:
            values[Thread.metadata] = metadata
        with self._writing():
            self._thread_row(thread_id)
            if values:
                Thread.update(values).where(Thread.id == thread_id).execute()
            return self._thread_row(thread_id)

    def delete_thread(self, thread_id: str) -> None:
        # Children first and explicitly, so the result does not depend on the backend's cascades.
        with self._writing():
            self._thread_row(thread_id)
            runs = Run.select(Run.id).where(Run.thread == thread_id)
            RunStep.delete().where(RunStep.run.in_(runs)).execute()
            Run.delete().where(Run.thread == thread_id).execute()
            Message.delete().where(Message.thread == thread_id).execute()
            Thread.delete().where(Thread.id == thread_id).execute()

    def _thread_row(self, thread_id: str, *, lock: bool = False) -> ThreadRecord:
        """The project's thread, or NotFoundError; with `lock`, its row stays locked until the
        transaction ends (where the database has row locks)."""
        lock = lock and bool(self._db.for_update)

        def build() -> peewee.Query:
            query = Thread.select().where(
                Thread.id == prepared.value("id"), Thread.project_id == prepared.value("project")
            )
            return query.for_update() if lock else query

        statement = prepared.statement(_bound(), ("thread", lock), build, Thread._meta.sorted_fields)
        found = prepared.rows(_bound(), statement, {"id": thread_id, "project": self.project_id})
        if not found:
            raise NotFoundError("thread", thread_id)
        return _record_from_values(found[0], ThreadRecord)

    def _claim_idle_thread(self, thread_id: str) -> None:
        """Inside a write transaction: fail unless the thread exists and has no active run.

        The check holds until the transaction ends: on SQLite the write transaction already holds
        the database's write lock; elsewhere the thread's row is locked (SELECT ... FOR UPDATE), so
        concurrent writers adding runs or messages to the same thread queue up behind each other.
        """
        self._thread_row(thread_id, lock=True)
        active = self._active_run(thread_id)
        if active is not None:
            raise ActiveRunError(thread_id, active.id)

    def _active_run(self, thread_id: str) -> RunRecord | None:
        # At most one run per thread is active; the (thread_id, status) index finds it.
        statuses = sorted(ACTIVE_RUN_STATUSES)

        def build() -> peewee.Query:
            active = [prepared.value(f"status{index}", Run.status) for index in range(len(statuses))]
            return Run.select().where(Run.thread == prepared.value("thread"), Run.status.in_(active)).limit(1)

        statement = prepared.statement(_bound(), "active run", build, Run._meta.sorted_fields)
        values: dict[str, Any] = {f"status{index}": status for index, status in enumerate(statuses)}
        found = prepared.rows(_bound(), statement, {**values, "thread": thread_id})
        return _record_from_values(found[0], RunRecord) if found else None

    # Messages

    def create_message(self, thread_id: str, new: NewMessage, *, allow_active_run: bool = False) -> MessageRecord:
        """Add a message; refused with ActiveRunError while the thread has an active run, unless
        `allow_active_run` (the run itself writing its reply)."""
        with self._writing():
            if allow_active_run:
                self._thread_row(thread_id)
            else:
                self._claim_idle_thread(thread_id)
            values = _message_values(thread_id, _now(), new)
            _insert(_bound(), Message, [values])
            return self._message_row(thread_id, values["id"])

    def get_message(self, thread_id: str, message_id: str, *, all_items: bool = False) -> MessageRecord:
        """A message of the Assistants API, or any item of the conversation (`all_items`)."""
        with self._reading():
            self._thread_row(thread_id)
            record = self._message_row(thread_id, message_id)
            if not all_items and (record.item_details is not None or record.role not in ("user", "assistant")):
                raise NotFoundError("message", message_id)
            return record

    def update_message(self, thread_id: str, message_id: str, metadata: dict[str, str]) -> MessageRecord:
        with self._writing():
            self._thread_row(thread_id)
            self._message_row(thread_id, message_id)
            Message.update({Message.metadata: metadata}).where(Message.id == message_id).execute()
            return self._message_row(thread_id, message_id)

    def delete_message(self, thread_id: str, message_id: str) -> None:
        with self._writing():
            self._thread_row(thread_id)
            deleted: int = Message.delete().where((Message.thread == thread_id) & (Message.id == message_id)).execute()
            if deleted == 0:
                raise NotFoundError("message", message_id)

    def list_messages(
        self, thread_id: str, page: PageRequest, run_id: str | None = None, *, all_items: bool = False
    ) -> Page[MessageRecord]:
        """A page of the thread's Assistants messages, or of all its items as a conversation (`all_items`)."""
        scope = [Message.thread == thread_id]
        filters = [] if all_items else [_ASSISTANTS_MESSAGE]
        if run_id is not None:
            filters.append(Message.run_id == run_id)
        with self._reading():
            self._thread_row(thread_id)
            rows, has_more = _fetch_page(
                Message,
                Message.id,
                Message.created_at,
                Message.seq,
                scope,
                page,
                extra_filter=functools.reduce(operator.and_, filters) if filters else None,
            )
            return Page([_message_record(row) for row in rows], has_more)

    def add_items(self, thread_id: str, items: Sequence[NewMessage]) -> list[MessageRecord]:
        """Adds items to a conversation in order, in one transaction; refused with ActiveRunError
        while the thread has an active run, as a message would be."""
        with self._writing():
            self._claim_idle_thread(thread_id)
            return self._insert_items(thread_id, items)

    def append_items(self, thread_id: str, items: Sequence[NewMessage]) -> bool:
        """Adds a response's output to its conversation; False (and nothing added) when the
        conversation was deleted meanwhile."""
        with self._writing():
            if Thread.get_or_none(Thread.id == thread_id, Thread.project_id == self.project_id) is None:
                return False
            self._insert_items(thread_id, items)
            return True

    @staticmethod
    def _insert_items(thread_id: str, items: Sequence[NewMessage]) -> list[MessageRecord]:
        if not items:
            return []
        values = [_message_values(thread_id, _now(), item) for item in items]
        Message.insert_many(values).execute()
        rows = Message.select().where(Message.id.in_([value["id"] for value in values])).order_by(Message.seq)
        return [_message_record(row) for row in rows]

    def transition_message(
        self,
        message_id: str,
        to: MessageStatus,
        sources: Collection[MessageStatus],
        *,
        content: Sequence[ContentPart] | None = None,
        incomplete_details: IncompleteDetails | None = None,
    ) -> Transition[MessageRecord]:
        """Move a message to `to` if its status is one of `sources` (a compare-and-set), with its
        final `content` and `incomplete_details` when given; stamps completed_at / incomplete_at."""
        changes: dict[peewee.Field[Any], Any] = {}
        if content is not None:
            changes[Message.content] = tuple(content)
        if incomplete_details is not None:
            changes[Message.incomplete_details] = incomplete_details
        with self._writing():
            row, applied = _transition(_bound(), Message, _MESSAGE_STAMPS, "message", message_id, to, sources, changes)
            return Transition(_record_from_values(row, MessageRecord), applied)

    def update_growing_messages(self, contents: Mapping[str, Sequence[ContentPart]]) -> None:
        """Replace the content of replies still being generated, all in one write transaction.

        A message that is no longer `in_progress` keeps its content: its final text was written
        when it ended, and an earlier snapshot must not overwrite it."""
        if not contents:
            return
        # One statement for every reply, prepared once: with many streams this runs several times a
        # second, and building an UPDATE per reply cost more than SQLite's work.
        param = self._db.param
        statement = (
            f"UPDATE {Message._meta.table_name} SET {Message.content.column_name} = {param}"
            f" WHERE {Message.id.column_name} = {param} AND {Message.status.column_name} = {param}"
        )
        rows = [
            (Message.content.db_value(tuple(content)), message_id, str(MessageStatus.IN_PROGRESS))
            for message_id, content in contents.items()
        ]
        with self._writing():
            cursor: Any = _bound().cursor()  # type: ignore[no-untyped-call]
            cursor.executemany(statement, rows)

    def thread_messages(self, thread_id: str) -> list[MessageRecord]:
        """All of the thread's messages, oldest first (its newest few: `newest_items`)."""
        with self._reading():
            self._thread_row(thread_id)
            query = Message.select().where(Message.thread == thread_id)
            rows = list(query.order_by(Message.created_at.asc(), Message.seq.asc()))
            return [_message_record(row) for row in rows]

    def newest_items(self, thread_id: str, count: int) -> list[MessageRecord]:
        """The thread's `count` newest items, newest first: its messages, and a conversation's other
        items. What every run reads as it starts, so one prepared statement from the end of the index."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")

        def build() -> peewee.Query:
            newest = Message.select().where(Message.thread == prepared.value("thread"))
            return newest.order_by(Message.created_at.desc(), Message.seq.desc()).limit(prepared.value("count"))

        with self._reading():
            self._thread_row(thread_id)
            statement = prepared.statement(_bound(), "newest items", build, Message._meta.sorted_fields)
            found = prepared.rows(_bound(), statement, {"thread": thread_id, "count": count})
            return [_record_from_values(values, MessageRecord) for values in found]

    def first_message(self, thread_id: str, role: str) -> MessageRecord | None:
        """The thread's oldest message of `role`, if any (a function call's output is no message)."""
        with self._reading():
            self._thread_row(thread_id)
            row: Message | None = (
                Message.select()
                .where(Message.thread == thread_id, Message.role == role, Message.item_details.is_null())
                .order_by(Message.created_at.asc(), Message.seq.asc())
                .first()
            )
            return None if row is None else _message_record(row)

    def save_token_counts(self, tokenizer: str, counts: Mapping[str, int]) -> None:
        """Keep the token counts of messages (by id) as `tokenizer` counted them, beside the counts
        of other tokenizers; messages deleted meanwhile are skipped."""
        if not counts:
            return
        with self._writing():
            rows = Message.select(Message.id, Message.token_counts).where(Message.id.in_(list(counts)))
            for message_id, kept in [(row.id, row.token_counts) for row in rows]:
                merged = {**(kept or {}), tokenizer: counts[message_id]}
                Message.update({Message.token_counts: merged}).where(Message.id == message_id).execute()

    def _message_row(self, thread_id: str, message_id: str) -> MessageRecord:
        def build() -> peewee.Query:
            return Message.select().where(
                Message.thread == prepared.value("thread"), Message.id == prepared.value("id")
            )

        statement = prepared.statement(_bound(), "message", build, Message._meta.sorted_fields)
        found = prepared.rows(_bound(), statement, {"thread": thread_id, "id": message_id})
        if not found:
            raise NotFoundError("message", message_id)
        return _record_from_values(found[0], MessageRecord)

    # Runs

    def create_run(
        self,
        thread_id: str,
        new: NewRun,
        additional_messages: Sequence[NewMessage] = (),
        expires_in: int = 600,
    ) -> tuple[RunRecord, list[MessageRecord]]:
        """Queue a run on an idle thread, after adding `additional_messages` to it (part of the run's context).

        NotFoundError for an unknown thread; ActiveRunError if the thread already has an active
        run. The check and the inserts are one write transaction, so of two concurrent creators
        on one thread exactly one succeeds.
        """
        with self._writing():
            self._claim_idle_thread(thread_id)
            now = _now()
            messages = [_message_values(thread_id, now, m) for m in additional_messages]
            _insert(_bound(), Message, messages)
            values = _run_values(thread_id, now, new, expires_in)
            _insert(_bound(), Run, [values])
            run = _record_from_values({**values, "thread_id": thread_id}, RunRecord)
            if not messages:
                return run, []
            rows = Message.select().where(Message.id.in_([m["id"] for m in messages])).order_by(Message.seq)
            return run, [_message_record(row) for row in rows]

    def open_reply(self, run: RunRecord) -> tuple[MessageRecord, RunStepRecord]:
        """The run's reply as it starts: an `in_progress` assistant message and the
        `message_creation` step that makes it, in one write transaction."""
        now = _now()
        message = _message_values(
            run.thread_id,
            now,
            NewMessage(
                role="assistant",
                content=(),
                status=MessageStatus.IN_PROGRESS,
                assistant_id=run.assistant_id,
                run_id=run.id,
            ),
        )
        step = {
            "id": new_id(STEP_PREFIX),
            "run": run.id,
            "thread_id": run.thread_id,
            "assistant_id": run.assistant_id,
            "created_at": now,
            "type": "message_creation",
            "status": StepStatus.IN_PROGRESS,
            "step_details": MessageCreation(message["id"]),
            "metadata": {},
        }
        with self._writing():
            _insert(_bound(), Message, [message])
            _insert(_bound(), RunStep, [step])
            # Built from what was written: reading the rows back would only cost time.
            return (
                _record_from_values({**message, "thread_id": run.thread_id}, MessageRecord),
                _record_from_values({**step, "run_id": run.id}, RunStepRecord),
            )

    def discard_reply(self, message_id: str, step_id: str) -> None:
        """Removes a reply that was opened but never written to, with its step."""
        with self._writing():
            RunStep.delete().where(RunStep.id == step_id).execute()
            Message.delete().where(Message.id == message_id).execute()

    def get_run(self, thread_id: str, run_id: str) -> RunRecord:
        with self._reading():
            self._thread_row(thread_id)
            return self._run_row(thread_id, run_id)

    def list_runs(self, thread_id: str, page: PageRequest) -> Page[RunRecord]:
        with self._reading():
            self._thread_row(thread_id)
            rows, has_more = _fetch_page(Run, Run.id, Run.created_at, Run.seq, [Run.thread == thread_id], page)
            return Page([_run_record(row) for row in rows], has_more)

    def transition_run(
        self,
        run_id: str,
        to: RunStatus,
        sources: Collection[RunStatus],
        changes: Mapping[str, Any] | None = None,
    ) -> Transition[RunRecord]:
        """Move a run to `to` if its status is one of `sources`, applying `changes` (RunRecord
        field names) with it, in one UPDATE: a compare-and-set, so of two concurrent changes only
        one applies. Entering in_progress stamps started_at (once), completed/failed/cancelled
        their `*_at`. Returns the run as it now is; NotFoundError if no run has the id."""
        values = _field_values(_RUN_UPDATABLE, changes or {}, "run")
        with self._writing():
            row, applied = _transition(_bound(), Run, _RUN_STAMPS, "run", run_id, to, sources, values)
            return Transition(_record_from_values(row, RunRecord), applied)

    def update_run(self, thread_id: str, run_id: str, changes: Mapping[str, Any]) -> RunRecord:
        """Apply `changes` (RunRecord field names other than the status) to a run of the thread."""
        values = _field_values(_RUN_UPDATABLE, changes, "run")
        with self._writing():
            self._thread_row(thread_id)
            self._run_row(thread_id, run_id)
            if values:
                Run.update(values).where(Run.id == run_id).execute()
            return self._run_row(thread_id, run_id)

    def active_run(self, thread_id: str) -> RunRecord | None:
        """The thread's run in an active status (queued, in_progress, requires_action, cancelling), if any."""
        with self._reading():
            self._thread_row(thread_id)
            return self._active_run(thread_id)

    def end_interrupted_runs(
        self,
        error: LastError,
        *,
        failing: Collection[RunStatus],
        cancelling: Collection[RunStatus],
    ) -> list[str]:
        """End, in one transaction, the runs a stopped process left in `failing` statuses (as
        `failed` with `error`) or in `cancelling` ones (as `cancelled`); return their ids.

        Their steps still in progress end the same way, and their messages still in progress become
        "incomplete" (reason "run_failed" or "run_cancelled")."""
        with self._writing():
            now = _now()
            query = (
                Run.select(Run.id, Run.thread, Run.status)
                .where(Run.status.in_([*failing, *cancelling]))
                .order_by(Run.created_at.asc(), Run.seq.asc())
            )
            if self._db.for_update:
                query = query.for_update()
            runs = [(row.id, row.thread_id, row.status) for row in query]
            for run_id, thread_id, status in runs:
                cancelled = status in cancelling
                run_to = RunStatus.CANCELLED if cancelled else RunStatus.FAILED
                step_to = StepStatus.CANCELLED if cancelled else StepStatus.FAILED
                reason = "run_cancelled" if cancelled else "run_failed"
                failure: dict[peewee.Field[Any], Any] = {} if cancelled else {Run.last_error: error}
                _transition(_bound(), Run, _RUN_STAMPS, "run", run_id, run_to, [status], failure)
                step_values: dict[peewee.Field[Any], Any] = {RunStep.status: step_to, _STEP_STAMPS[step_to]: now}
                if not cancelled:
                    step_values[RunStep.last_error] = error
                RunStep.update(step_values).where(
                    RunStep.run == run_id, RunStep.status == StepStatus.IN_PROGRESS
                ).execute()
                _end_run_messages(thread_id, run_id, now, reason)
            return [run_id for run_id, _, _ in runs]

    def expire_runs(self, now: int, expiring: Collection[RunStatus]) -> list[RunRecord]:
        """Expire the runs in `expiring` statuses whose expires_at is at or before `now`.

        Their steps in progress become "expired" and their messages in progress "incomplete"
        (reason "run_expired"). Returns the expired runs, oldest first.
        """
        with self._writing():
            query = Run.select(Run.id, Run.thread).where(Run.status.in_(list(expiring)), Run.expires_at <= now)
            if self._db.for_update:
                query = query.for_update()
            runs = [(row.id, row.thread_id) for row in query]
            if not runs:
                return []
            run_ids = [run_id for run_id, _ in runs]
            Run.update({Run.status: RunStatus.EXPIRED, Run.required_action: None}).where(Run.id.in_(run_ids)).execute()
            RunStep.update({RunStep.status: StepStatus.EXPIRED, RunStep.expired_at: now}).where(
                RunStep.run.in_(run_ids), RunStep.status == StepStatus.IN_PROGRESS
            ).execute()
            for run_id, thread_id in runs:
                _end_run_messages(thread_id, run_id, now, "run_expired")
            rows = Run.select().where(Run.id.in_(run_ids)).order_by(Run.created_at.asc(), Run.seq.asc())
            return [_run_record(row) for row in rows]

    def _run_row(self, thread_id: str, run_id: str) -> RunRecord:
        def build() -> peewee.Query:
            return Run.select().where(Run.thread == prepared.value("thread"), Run.id == prepared.value("id"))

        statement = prepared.statement(_bound(), "run", build, Run._meta.sorted_fields)
        found = prepared.rows(_bound(), statement, {"thread": thread_id, "id": run_id})
        if not found:
            raise NotFoundError("run", run_id)
        return _record_from_values(found[0], RunRecord)

    # Run steps

    def create_step(self, new: NewStep) -> RunStepRecord:
        step_id = new_id(STEP_PREFIX)
        now = _now()
        with self._writing():
            if Run.get_or_none(Run.id == new.run_id) is None:
                raise NotFoundError("run", new.run_id)
            RunStep.insert(
                id=step_id,
                run=new.run_id,
                thread_id=new.thread_id,
                assistant_id=new.assistant_id,
                created_at=now,
                type=new.type,
                status=new.status,
                step_details=new.step_details,
                completed_at=now if new.status == StepStatus.COMPLETED else None,
                metadata={},
            ).execute()
            return _step_record(RunStep.get(RunStep.id == step_id))

    def update_step(self, step_id: str, changes: Mapping[str, Any]) -> RunStepRecord:
        """Apply `changes` (RunStepRecord field names other than the status) to a step."""
        values = _field_values(_STEP_UPDATABLE, changes, "run step")
        with self._writing():
            if values:
                RunStep.update(values).where(RunStep.id == step_id).execute()
            row = RunStep.get_or_none(RunStep.id == step_id)
            if row is None:
                raise NotFoundError("step", step_id)
            return _step_record(row)

    def transition_step(
        self,
        step_id: str,
        to: StepStatus,
        sources: Collection[StepStatus],
        changes: Mapping[str, Any] | None = None,
    ) -> Transition[RunStepRecord]:
        """Move a step to `to` if its status is one of `sources`, with `changes`; stamps `<to>_at`."""
        values = _field_values(_STEP_UPDATABLE, changes or {}, "run step")
        with self._writing():
            row, applied = _transition(_bound(), RunStep, _STEP_STAMPS, "step", step_id, to, sources, values)
            return Transition(_record_from_values(row, RunStepRecord), applied)

    def get_step(self, thread_id: str, run_id: str, step_id: str) -> RunStepRecord:
        with self._reading():
            self._thread_row(thread_id)
            self._run_row(thread_id, run_id)
            row = RunStep.get_or_none((RunStep.run == run_id) & (RunStep.id == step_id))
            if row is None:
                raise NotFoundError("step", step_id)
            return _step_record(row)

    def list_steps(self, thread_id: str, run_id: str, page: PageRequest) -> Page[RunStepRecord]:
        with self._reading():
            self._thread_row(thread_id)
            self._run_row(thread_id, run_id)
            rows, has_more = _fetch_page(
                RunStep, RunStep.id, RunStep.created_at, RunStep.seq, [RunStep.run == run_id], page
            )
            return Page([_step_record(row) for row in rows], has_more)

    # Responses

    def create_response(
        self, record: ResponseRecord, items: Sequence[NewMessage] = (), *, replica_id: str | None = None
    ) -> None:
        """Stores a new response (its id is the caller's), executing on `replica_id` (if several
        replicas share the database), and adds `items`, its input, to its conversation: refused
        with ActiveRunError while an Assistants run is active on that thread."""
        with self._writing():
            if record.conversation_id is not None:
                self._claim_idle_thread(record.conversation_id)
                self._insert_items(record.conversation_id, items)
            values = {field.name: getattr(record, field.name) for field in fields(ResponseRecord)}
            Response.insert({**values, "project_id": self.project_id, "replica_id": replica_id}).execute()

    def get_response(self, response_id: str) -> ResponseRecord:
        with self._reading():
            return _response_record(self._response_row(response_id))

    def response_chain(self, response_id: str) -> list[ResponseRecord]:
        """The response and those it follows by `previous_response_id`, oldest first. An earlier
        response that was deleted ends the chain there."""
        chain: list[ResponseRecord] = []
        with self._reading():
            row: Response | None = self._response_row(response_id)
            while row is not None:
                chain.append(_response_record(row))
                previous = row.previous_response_id
                row = None if previous is None else self._scoped_response(previous).first()
        chain.reverse()
        return chain

    def delete_response(self, response_id: str) -> None:
        with self._writing():
            deleted: int = (
                Response.delete().where(Response.id == response_id, Response.project_id == self.project_id).execute()
            )
            if deleted == 0:
                raise NotFoundError("response", response_id)

    def transition_response(
        self,
        response_id: str,
        to: ResponseStatus,
        sources: Collection[ResponseStatus],
        changes: Mapping[str, Any] | None = None,
    ) -> Transition[ResponseRecord]:
        """Moves a response to `to` if its status is one of `sources` (a compare-and-set), with
        `changes` (`output_items`, `usage`, `error`, `incomplete_details`); completing stamps completed_at."""
        values = _field_values(_RESPONSE_UPDATABLE, changes or {}, "response")
        with self._writing():
            row, applied = _transition(
                _bound(), Response, _RESPONSE_STAMPS, "response", response_id, to, sources, values
            )
            return Transition(_record_from_values(row, ResponseRecord), applied)

    def end_interrupted_responses(
        self, error: LastError, failing: Collection[ResponseStatus], only: Collection[str] | None = None
    ) -> list[str]:
        """Fails, with `error`, the responses a stopped process left in `failing` statuses (those of
        `only`, when given: the ones a replica of several was executing); returns their ids."""
        with self._writing():
            query = Response.select(Response.id).where(Response.status.in_(list(failing))).order_by(Response.seq)
            if only is not None:
                query = query.where(Response.id.in_(list(only)))
            if self._db.for_update:
                query = query.for_update()
            ids = [row.id for row in query]
            if ids:
                Response.update({Response.status: ResponseStatus.FAILED, Response.error: error}).where(
                    Response.id.in_(ids)
                ).execute()
            return ids

    def _scoped_response(self, response_id: str) -> peewee.ModelSelect[Response]:
        return Response.select().where(Response.id == response_id, Response.project_id == self.project_id)

    def _response_row(self, response_id: str) -> Response:
        row: Response | None = self._scoped_response(response_id).first()
        if row is None:
            raise NotFoundError("response", response_id)
        return row


class KeyStore:
    """Projects and API keys, seen from the whole service (the `keys` command, the admin service and
    authentication): keys are looked up by the hash of their secret, which is all that is stored."""

    def __init__(self, database: peewee.Database) -> None:
        self._db = database
        bind_models(database)

    def ensure_project(self, name: str) -> ProjectRecord:
        """The project called `name`, created on first use."""
        with connection_scope(self._db), write_transaction(self._db):
            row = Project.get_or_none(Project.name == name)
            if row is None:
                project_id = DEFAULT_PROJECT_ID if name == "default" else new_id(PROJECT_PREFIX)
                Project.insert(id=project_id, name=name, created_at=_now()).execute()
                row = Project.get(Project.name == name)
            return _record(row, ProjectRecord)

    def list_projects(self) -> list[ProjectRecord]:
        with connection_scope(self._db), read_transaction(self._db):
            return [_record(row, ProjectRecord) for row in Project.select().order_by(Project.seq)]

    def create_key(
        self,
        project_name: str,
        secret_hash: str,
        prefix: str,
        *,
        name: str | None = None,
        admin: bool = False,
        rpm: int | None = None,
        tpm: int | None = None,
    ) -> ApiKeyRecord:
        project = self.ensure_project(project_name)
        key_id = new_id(KEY_PREFIX)
        with connection_scope(self._db), write_transaction(self._db):
            ApiKey.insert(
                id=key_id,
                project=project.id,
                name=name,
                prefix=prefix,
                secret_hash=secret_hash,
                admin=admin,
                rpm=rpm,
                tpm=tpm,
                created_at=_now(),
            ).execute()
            return self._key_record(ApiKey.get(ApiKey.id == key_id))

    def list_keys(self) -> list[ApiKeyRecord]:
        with connection_scope(self._db), read_transaction(self._db):
            return [self._key_record(row) for row in self._keys().order_by(ApiKey.seq)]

    def revoke_key(self, key_id: str) -> ApiKeyRecord:
        """Revoke a key (idempotent); NotFoundError for an unknown id."""
        with connection_scope(self._db), write_transaction(self._db):
            ApiKey.update(revoked_at=_now()).where(ApiKey.id == key_id, ApiKey.revoked_at.is_null()).execute()
            row: ApiKey | None = self._keys().where(ApiKey.id == key_id).first()
            if row is None:
                raise NotFoundError("key", key_id)
            return self._key_record(row)

    def find_key(self, secret_hash: str) -> ApiKeyRecord | None:
        """The key whose secret hashes to `secret_hash`, revoked or not; None if there is none."""
        with connection_scope(self._db), read_transaction(self._db):
            row: ApiKey | None = self._keys().where(ApiKey.secret_hash == secret_hash).first()
            return None if row is None else self._key_record(row)

    def has_keys(self) -> bool:
        """Whether any key, even a revoked one, was ever created: then every call needs a key."""
        with connection_scope(self._db), read_transaction(self._db):
            return bool(ApiKey.select(ApiKey.seq).limit(1).count())

    def mark_used(self, last_used: Mapping[str, int]) -> None:
        """Record when keys were last used (one write for many calls)."""
        with connection_scope(self._db), write_transaction(self._db):
            for key_id, when in last_used.items():
                ApiKey.update(last_used_at=when).where(ApiKey.id == key_id).execute()

    @staticmethod
    def _keys() -> peewee.ModelSelect[ApiKey]:
        return ApiKey.select(ApiKey, Project.id, Project.name).join(Project)

    @staticmethod
    def _key_record(row: ApiKey) -> ApiKeyRecord:
        return ApiKeyRecord(
            id=row.id,
            project_id=row.project_id,
            project_name=row.project.name,
            name=row.name,
            prefix=row.prefix,
            admin=row.admin,
            rpm=row.rpm,
            tpm=row.tpm,
            created_at=row.created_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
        )


def _field_values(
    updatable: Mapping[str, peewee.Field[Any]], changes: Mapping[str, Any], kind: str
) -> dict[peewee.Field[Any], Any]:
    unknown = set(changes) - set(updatable)
    if unknown:
        raise ValueError(f"cannot update {kind} fields: {sorted(unknown)}")
    return {updatable[name]: value for name, value in changes.items()}


def _bound() -> peewee.Database:
    """The database the models are bound to: statements prepared here run where Peewee's own
    queries run (one database a process; see `bind_models`)."""
    database: peewee.Database = Thread._meta.database
    return database


def _insert(db: peewee.Database, model: type[BaseModel], rows: Sequence[Mapping[str, Any]]) -> None:
    """Inserts rows (values by field name, all rows with the same fields) in the given order."""
    if not rows:
        return
    fields = [model._meta.fields[name] for name in rows[0]]

    def build() -> peewee.Query:
        return model.insert({field: prepared.value(field.name, field) for field in fields})

    statement = prepared.statement(db, ("insert", model._meta.table_name, tuple(rows[0])), build)
    if len(rows) == 1:
        prepared.execute(db, statement, rows[0])
        return
    cursor: Any = db.cursor()  # type: ignore[no-untyped-call]
    cursor.executemany(statement.sql, [statement.parameters(row) for row in rows])


def _transition(
    db: peewee.Database,
    model: type[BaseModel],
    stamps: Mapping[_Status, peewee.Field[Any]],
    kind: str,
    row_id: str,
    to: _Status,
    sources: Collection[_Status],
    values: Mapping[peewee.Field[Any], Any],
) -> tuple[dict[str, Any], bool]:
    """Inside a write transaction: the compare-and-set of a status, then the row as it now is (its
    values by column name)."""
    status: peewee.Field[Any] = model.status  # type: ignore[attr-defined]
    row_key: peewee.Field[str] = model.id  # type: ignore[attr-defined]
    columns = model._meta.sorted_fields
    if sources:
        changed = tuple(values)
        stamp = stamps.get(to)

        def build() -> peewee.Query:
            changes: dict[peewee.Field[Any], Any] = {field: prepared.value(field.name, field) for field in changed}
            changes[status] = prepared.value("to", status)
            if stamp is not None:
                # COALESCE: a status entered again (in_progress after tool outputs) keeps its first stamp.
                changes[stamp] = peewee.fn.COALESCE(stamp, prepared.value("now"))
            allowed = [prepared.value(f"from{index}", status) for index in range(len(sources))]
            # RETURNING gives the changed row in the same statement: no read after the write.
            return model.update(changes).where(row_key == prepared.value("id"), status.in_(allowed)).returning(model)

        key = (
            "transition",
            model._meta.table_name,
            tuple(field.name for field in changed),
            stamp.name if stamp is not None else None,
            len(sources),
        )
        statement = prepared.statement(db, key, build, columns)
        parameters: dict[str, Any] = {field.name: value for field, value in values.items()}
        parameters.update({f"from{index}": source for index, source in enumerate(sorted(sources))})
        found = prepared.rows(db, statement, {**parameters, "to": to, "now": _now(), "id": row_id})
        if found:
            return found[0], True

    def by_id() -> peewee.Query:
        return model.select().where(row_key == prepared.value("id"))

    current = prepared.rows(
        db, prepared.statement(db, ("by id", model._meta.table_name), by_id, columns), {"id": row_id}
    )
    if not current:
        raise NotFoundError(kind, row_id)
    return current[0], False


def _end_run_messages(thread_id: str, run_id: str, now: int, reason: str) -> None:
    """Mark the run's messages still in progress as incomplete for `reason`."""
    Message.update(
        {
            Message.status: MessageStatus.INCOMPLETE,
            Message.incomplete_at: now,
            Message.incomplete_details: IncompleteDetails(reason),
        }
    ).where(
        Message.thread == thread_id, Message.run_id == run_id, Message.status == MessageStatus.IN_PROGRESS
    ).execute()


def _fetch_page(
    model: type[_Row],
    id_field: peewee.Field[str],
    created_at: peewee.Field[int],
    seq: peewee.Field[int],
    scope: list[peewee.Expression],
    page: PageRequest,
    extra_filter: peewee.Expression | None = None,
) -> tuple[list[_Row], bool]:
    """One page of `model` rows within `scope`, ordered by (created_at, seq).

    `scope` bounds both the listed rows and the valid cursors; `extra_filter` only the rows, so a
    cursor may name any object of the list even when the page is filtered (like the run filter).
    """
    if page.order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {page.order!r}")
    ascending = page.order == "asc"
    conditions = list(scope)
    if extra_filter is not None:
        conditions.append(extra_filter)
    # With only `before`, the page is the `limit` rows closest to the cursor: scan away from it,
    # then restore the requested order.
    backwards = page.before is not None and page.after is None
    forward = ascending != backwards
    ordering = [created_at.asc(), seq.asc()] if forward else [created_at.desc(), seq.desc()]
    cursors = [(param, value) for param, value in (("after", page.after), ("before", page.before)) if value]
    if len(cursors) == 1:
        param, value = cursors[0]
        position = _cursor_position(model, id_field, created_at, seq, scope, param, value)
        rows = _seek(model, created_at, seq, conditions, ordering, position, forward, page.limit + 1)
    else:
        # Both cursors bound a range; a row-value comparison is portable (and rare enough here).
        key = peewee.Tuple(created_at, seq)
        if page.after is not None:
            position = peewee.Tuple(*_cursor_position(model, id_field, created_at, seq, scope, "after", page.after))
            conditions.append(key > position if ascending else key < position)
        if page.before is not None:
            position = peewee.Tuple(*_cursor_position(model, id_field, created_at, seq, scope, "before", page.before))
            conditions.append(key < position if ascending else key > position)
        query = model.select()
        if conditions:
            query = query.where(*conditions)
        rows = list(query.order_by(*ordering).limit(page.limit + 1))
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if backwards:
        rows.reverse()
    return rows, has_more


def _seek(
    model: type[_Row],
    created_at: peewee.Field[int],
    seq: peewee.Field[int],
    conditions: list[peewee.Expression],
    ordering: list[Any],
    position: tuple[int, int],
    forward: bool,
    limit: int,
) -> list[_Row]:
    """Up to `limit` rows past the cursor at `position`, scanning `forward` (or back).

    Two index seeks, the rest of the cursor's own second and then the seconds past it, so that a
    page costs O(limit) even when thousands of rows share one timestamp (one row-value comparison
    would make SQLite walk that whole second)."""
    second, cursor_seq = position
    same_second = [*conditions, created_at == second, seq > cursor_seq if forward else seq < cursor_seq]
    rows = list(model.select().where(*same_second).order_by(*ordering).limit(limit))
    if len(rows) < limit:
        later = [*conditions, created_at > second if forward else created_at < second]
        rows += list(model.select().where(*later).order_by(*ordering).limit(limit - len(rows)))
    return rows


def _cursor_position(
    model: type[_Row],
    id_field: peewee.Field[str],
    created_at: peewee.Field[int],
    seq: peewee.Field[int],
    scope: list[peewee.Expression],
    param: str,
    value: str,
) -> tuple[int, int]:
    found = model.select(created_at, seq).where(id_field == value, *scope).tuples().first()
    if found is None:
        raise InvalidCursorError(param, value)
    return int(found[0]), int(found[1])


def _message_values(thread_id: str, now: int, new: NewMessage) -> dict[str, Any]:
    return {
        "id": new.id or new_id(_ITEM_PREFIXES.get(type(new.item_details), MESSAGE_PREFIX)),
        "thread": thread_id,
        "created_at": now,
        "status": new.status,
        "incomplete_details": None,
        "completed_at": now if new.status == MessageStatus.COMPLETED else None,
        "incomplete_at": None,
        "role": new.role,
        "content": new.content,
        "assistant_id": new.assistant_id,
        "run_id": new.run_id,
        "attachments": new.attachments,
        "metadata": new.metadata,
        "item_details": new.item_details,
    }


_ITEM_PREFIXES: dict[type, str] = {
    FunctionCallDetails: FUNCTION_CALL_PREFIX,
    FunctionOutputDetails: FUNCTION_OUTPUT_PREFIX,
}


def _run_values(thread_id: str, now: int, new: NewRun, expires_in: int) -> dict[str, Any]:
    return {
        "id": new_id(RUN_PREFIX),
        "thread": thread_id,
        "assistant_id": new.assistant_id,
        "created_at": now,
        "status": RunStatus.QUEUED,
        "model": new.model,
        "instructions": new.instructions,
        "tools": new.tools,
        "metadata": new.metadata,
        "expires_at": now + expires_in,
        "temperature": new.temperature,
        "top_p": new.top_p,
        "max_prompt_tokens": new.max_prompt_tokens,
        "max_completion_tokens": new.max_completion_tokens,
        "truncation_strategy": new.truncation_strategy,
        "tool_choice": new.tool_choice,
        "parallel_tool_calls": new.parallel_tool_calls,
        "response_format": new.response_format,
    }


_R = TypeVar("_R")


def _record(row: BaseModel, record_type: type[_R]) -> _R:
    """A row as its frozen record: records name their fields as the models name their columns."""
    return record_type(**{field.name: getattr(row, field.name) for field in fields(record_type)})  # type: ignore[arg-type]


def _record_from_values(values: Mapping[str, Any], record_type: type[_R]) -> _R:
    """A record from the values of an insert; fields the insert left out are None."""
    return record_type(**{field.name: values.get(field.name) for field in fields(record_type)})  # type: ignore[arg-type]


def _assistant_record(row: Assistant) -> AssistantRecord:
    return _record(row, AssistantRecord)


def _thread_record(row: Thread) -> ThreadRecord:
    return _record(row, ThreadRecord)


def _message_record(row: Message) -> MessageRecord:
    return _record(row, MessageRecord)


def _run_record(row: Run) -> RunRecord:
    return _record(row, RunRecord)


def _step_record(row: RunStep) -> RunStepRecord:
    return _record(row, RunStepRecord)


def _response_record(row: Response) -> ResponseRecord:
    return _record(row, ResponseRecord)
