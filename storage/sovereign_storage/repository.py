"""Synchronous data access for assistants, threads and messages.

Methods are blocking and safe to call from several threads at once (the server calls them
through `asyncio.to_thread`): peewee gives each thread its own connection, and every method
opens and closes it unless the calling thread already holds one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import peewee

from .database import connection_scope, write_transaction
from .errors import InvalidCursorError, NotFoundError
from .ids import ASSISTANT_PREFIX, MESSAGE_PREFIX, THREAD_PREFIX, new_id
from .models import Assistant, BaseModel, Message, Run, RunStep, Thread, bind_models
from .records import (
    AssistantRecord,
    MessageRecord,
    NewAssistant,
    NewMessage,
    Page,
    PageRequest,
    ThreadRecord,
)

_Row = TypeVar("_Row", bound=BaseModel)

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


def _now() -> int:
    return int(time.time())


class Repository:
    """Storage of the Assistants API objects in one database (bound process-wide)."""

    def __init__(self, database: peewee.Database) -> None:
        self._db = database
        bind_models(database)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        # One transaction, so that a lookup and the query depending on it see the same snapshot.
        with connection_scope(self._db), self._db.atomic():
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with connection_scope(self._db), write_transaction(self._db):
            yield

    # Assistants

    def create_assistant(self, new: NewAssistant) -> AssistantRecord:
        assistant_id = new_id(ASSISTANT_PREFIX)
        with self._writing():
            Assistant.insert(
                id=assistant_id,
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
            return _assistant_record(self._assistant_row(assistant_id))

    def get_assistant(self, assistant_id: str) -> AssistantRecord:
        with self._reading():
            return _assistant_record(self._assistant_row(assistant_id))

    def update_assistant(self, assistant_id: str, changes: Mapping[str, Any]) -> AssistantRecord:
        unknown = set(changes) - set(_ASSISTANT_UPDATABLE)
        if unknown:
            raise ValueError(f"cannot update assistant fields: {sorted(unknown)}")
        with self._writing():
            if changes:
                values = {_ASSISTANT_UPDATABLE[name]: value for name, value in changes.items()}
                Assistant.update(values).where(Assistant.id == assistant_id).execute()
            return _assistant_record(self._assistant_row(assistant_id))

    def delete_assistant(self, assistant_id: str) -> None:
        # Threads, messages and runs keep their plain assistant_id, as in OpenAI's API.
        with self._writing():
            deleted: int = Assistant.delete().where(Assistant.id == assistant_id).execute()
            if deleted == 0:
                raise NotFoundError("assistant", assistant_id)

    def list_assistants(self, page: PageRequest) -> Page[AssistantRecord]:
        with self._reading():
            rows, has_more = _fetch_page(Assistant, Assistant.id, Assistant.created_at, Assistant.seq, [], page)
            return Page([_assistant_record(row) for row in rows], has_more)

    def _assistant_row(self, assistant_id: str) -> Assistant:
        row = Assistant.get_or_none(Assistant.id == assistant_id)
        if row is None:
            raise NotFoundError("assistant", assistant_id)
        return row

    # Threads

    def create_thread(
        self,
        tool_resources: dict[str, Any],
        metadata: dict[str, str],
        messages: Sequence[NewMessage],
    ) -> tuple[ThreadRecord, list[MessageRecord]]:
        thread_id = new_id(THREAD_PREFIX)
        now = _now()
        with self._writing():
            Thread.insert(id=thread_id, created_at=now, tool_resources=tool_resources, metadata=metadata).execute()
            if messages:
                # Rows are inserted in the given order, so `seq` keeps that order within the second.
                Message.insert_many([_message_values(thread_id, now, m) for m in messages]).execute()
            thread = _thread_record(self._thread_row(thread_id))
            rows = Message.select().where(Message.thread == thread_id).order_by(Message.seq)
            return thread, [_message_record(row) for row in rows]

    def get_thread(self, thread_id: str) -> ThreadRecord:
        with self._reading():
            return _thread_record(self._thread_row(thread_id))

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
            if values:
                Thread.update(values).where(Thread.id == thread_id).execute()
            return _thread_record(self._thread_row(thread_id))

    def delete_thread(self, thread_id: str) -> None:
        # Children first and explicitly, so the result does not depend on the backend's cascades.
        with self._writing():
            self._thread_row(thread_id)
            runs = Run.select(Run.id).where(Run.thread == thread_id)
            RunStep.delete().where(RunStep.run.in_(runs)).execute()
            Run.delete().where(Run.thread == thread_id).execute()
            Message.delete().where(Message.thread == thread_id).execute()
            Thread.delete().where(Thread.id == thread_id).execute()

    def _thread_row(self, thread_id: str) -> Thread:
        row = Thread.get_or_none(Thread.id == thread_id)
        if row is None:
            raise NotFoundError("thread", thread_id)
        return row

    # Messages

    def create_message(self, thread_id: str, new: NewMessage) -> MessageRecord:
        with self._writing():
            self._thread_row(thread_id)
            values = _message_values(thread_id, _now(), new)
            Message.insert(values).execute()
            return _message_record(self._message_row(thread_id, values["id"]))

    def get_message(self, thread_id: str, message_id: str) -> MessageRecord:
        with self._reading():
            self._thread_row(thread_id)
            return _message_record(self._message_row(thread_id, message_id))

    def update_message(self, thread_id: str, message_id: str, metadata: dict[str, str]) -> MessageRecord:
        with self._writing():
            self._thread_row(thread_id)
            self._message_row(thread_id, message_id)
            Message.update({Message.metadata: metadata}).where(Message.id == message_id).execute()
            return _message_record(self._message_row(thread_id, message_id))

    def delete_message(self, thread_id: str, message_id: str) -> None:
        with self._writing():
            self._thread_row(thread_id)
            deleted: int = Message.delete().where((Message.thread == thread_id) & (Message.id == message_id)).execute()
            if deleted == 0:
                raise NotFoundError("message", message_id)

    def list_messages(self, thread_id: str, page: PageRequest, run_id: str | None = None) -> Page[MessageRecord]:
        scope = [Message.thread == thread_id]
        with self._reading():
            self._thread_row(thread_id)
            rows, has_more = _fetch_page(
                Message,
                Message.id,
                Message.created_at,
                Message.seq,
                scope,
                page,
                extra_filter=None if run_id is None else Message.run_id == run_id,
            )
            return Page([_message_record(row) for row in rows], has_more)

    def _message_row(self, thread_id: str, message_id: str) -> Message:
        row = Message.get_or_none((Message.thread == thread_id) & (Message.id == message_id))
        if row is None:
            raise NotFoundError("message", message_id)
        return row


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
    # A row-value comparison is portable and seeks the (scope..., created_at, seq) index directly on
    # PostgreSQL. SQLite seeks on created_at only (seq is its rowid) and then skips the rows of the
    # cursor's own second: still no sort and no full scan.
    key = peewee.Tuple(created_at, seq)
    conditions = list(scope)
    if extra_filter is not None:
        conditions.append(extra_filter)
    if page.after is not None:
        position = _cursor_position(model, id_field, created_at, seq, scope, "after", page.after)
        conditions.append(key > position if ascending else key < position)
    if page.before is not None:
        position = _cursor_position(model, id_field, created_at, seq, scope, "before", page.before)
        conditions.append(key < position if ascending else key > position)
    # With only `before`, the page is the `limit` rows closest to the cursor: scan away from it,
    # then restore the requested order.
    backwards = page.before is not None and page.after is None
    forward = ascending != backwards
    ordering = [created_at.asc(), seq.asc()] if forward else [created_at.desc(), seq.desc()]
    query = model.select()
    if conditions:
        query = query.where(*conditions)
    rows = list(query.order_by(*ordering).limit(page.limit + 1))
    has_more = len(rows) > page.limit
    rows = rows[: page.limit]
    if backwards:
        rows.reverse()
    return rows, has_more


def _cursor_position(
    model: type[_Row],
    id_field: peewee.Field[str],
    created_at: peewee.Field[int],
    seq: peewee.Field[int],
    scope: list[peewee.Expression],
    param: str,
    value: str,
) -> Any:
    found = model.select(created_at, seq).where(id_field == value, *scope).tuples().first()
    if found is None:
        raise InvalidCursorError(param, value)
    return peewee.Tuple(*found)


def _message_values(thread_id: str, now: int, new: NewMessage) -> dict[str, Any]:
    return {
        "id": new_id(MESSAGE_PREFIX),
        "thread": thread_id,
        "created_at": now,
        "status": new.status,
        "incomplete_details": None,
        "completed_at": now if new.status == "completed" else None,
        "incomplete_at": None,
        "role": new.role,
        "content": new.content,
        "assistant_id": new.assistant_id,
        "run_id": new.run_id,
        "attachments": new.attachments,
        "metadata": new.metadata,
    }


def _assistant_record(row: Assistant) -> AssistantRecord:
    return AssistantRecord(
        id=row.id,
        created_at=row.created_at,
        model=row.model,
        name=row.name,
        description=row.description,
        instructions=row.instructions,
        tools=row.tools,
        tool_resources=row.tool_resources,
        metadata=row.metadata,
        temperature=row.temperature,
        top_p=row.top_p,
        response_format=row.response_format,
        reasoning_effort=row.reasoning_effort,
    )


def _thread_record(row: Thread) -> ThreadRecord:
    return ThreadRecord(id=row.id, created_at=row.created_at, tool_resources=row.tool_resources, metadata=row.metadata)


def _message_record(row: Message) -> MessageRecord:
    return MessageRecord(
        id=row.id,
        created_at=row.created_at,
        thread_id=row.thread_id,
        status=row.status,
        incomplete_details=row.incomplete_details,
        completed_at=row.completed_at,
        incomplete_at=row.incomplete_at,
        role=row.role,
        content=row.content,
        assistant_id=row.assistant_id,
        run_id=row.run_id,
        attachments=row.attachments,
        metadata=row.metadata,
    )
