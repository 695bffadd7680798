"""Who a call comes from: the project whose objects it may see, and the key it used. Set once per
call by the interceptor, read by servicers (which scope storage to the project) and by the run
layer (which bills the key's tokens)."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    project_id: str
    # None when the service runs without keys (open, on loopback only).
    key_id: str | None = None
    admin: bool = False
    # Requests and tokens per minute allowed to the key; None: unlimited.
    rpm: int | None = None
    tpm: int | None = None


_CURRENT: ContextVar[Caller] = ContextVar("caller")


def current_caller() -> Caller:
    """The caller of the call being served (LookupError outside one: a call must be authenticated)."""
    return _CURRENT.get()


def set_current_caller(caller: Caller) -> None:
    _CURRENT.set(caller)
