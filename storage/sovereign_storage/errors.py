"""Errors raised by the storage layer; callers map them to API errors."""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error this package raises on purpose."""


class NotFoundError(StorageError):
    """No object of `kind` has the public id `id` (in the scope that was asked)."""

    def __init__(self, kind: str, id: str) -> None:
        super().__init__(f"No {kind} found with id '{id}'.")
        self.kind = kind
        self.id = id


class InvalidCursorError(StorageError):
    """A pagination cursor (`after` or `before`) names no object of the listed collection."""

    def __init__(self, param: str, value: str) -> None:
        super().__init__(f"Invalid '{param}': no object with id '{value}' in this list.")
        self.param = param
        self.value = value


class UnstorableValueError(StorageError):
    """The database refused a value as such: a string with a NUL character (PostgreSQL's text
    cannot hold one), or a number beyond its column's range."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"A value of this request cannot be stored: {detail}")


class ActiveRunError(StorageError):
    """The thread already has a run in an active status, so no run or message may be added."""

    def __init__(self, thread_id: str, run_id: str) -> None:
        super().__init__(f"Thread {thread_id} already has an active run {run_id}.")
        self.thread_id = thread_id
        self.run_id = run_id
