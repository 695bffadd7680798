"""Calls into storage from the event loop."""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sovereign_storage import Repository

P = ParamSpec("P")
T = TypeVar("T")


async def stored(repository: Repository, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """`work(*args, **kwargs)`, which calls `repository`: at once on the event loop when storage
    says nothing it needs is held by another thread (an embedded SQLite file), else on a thread.

    A trip to a thread costs more than the transaction it carries on SQLite (the executor's queue,
    the thread's wake-up, the result's return through the loop): it was a quarter of a streamed
    run's CPU. A PostgreSQL round trip, or a wait for another thread's write, stays off the loop.
    """
    with repository.uncontended() as at_once:
        if at_once:
            return work(*args, **kwargs)
    return await to_thread(work, *args, **kwargs)
