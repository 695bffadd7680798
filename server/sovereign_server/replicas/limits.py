"""Rate limits shared by every replica: the token buckets of `auth.limits`, kept in the database."""

from __future__ import annotations

import asyncio
import logging
import math

from sovereign_server.auth.limits import WINDOW_SECONDS, Allowance, Budget, _over
from sovereign_server.caller import Caller
from sovereign_storage.replicas import BucketLevels, ReplicaStore

logger = logging.getLogger("sovereign.auth")


class DatabaseRateLimiter:
    """Requests and tokens per minute per key, counted in the database, so that a key's limit holds
    however its calls spread over replicas. Only keys with limits cost a transaction."""

    def __init__(self, store: ReplicaStore) -> None:
        self._store = store
        self._spending: set[asyncio.Future[None]] = set()

    def blocks(self, caller: Caller) -> bool:
        # Only limited keys cost a transaction.
        return caller.key_id is not None and (caller.rpm is not None or caller.tpm is not None)

    def admit(self, caller: Caller, *, uses_tokens: bool) -> Allowance:
        if not self.blocks(caller):
            return Allowance()
        assert caller.key_id is not None
        capacities = _capacities(caller)
        require = [
            kind for kind in ("requests", "tokens") if kind in capacities and (kind == "requests" or uses_tokens)
        ]
        take = {"requests": 1.0} if "requests" in capacities else {}
        drawn = self._store.draw(caller.key_id, capacities, window=WINDOW_SECONDS, require=require, take=take)
        allowance = Allowance(_budget(drawn, "requests", caller.rpm), _budget(drawn, "tokens", caller.tpm))
        if drawn.short is not None:
            limit = caller.rpm if drawn.short == "requests" else caller.tpm
            assert limit is not None
            raise _over(drawn.short, limit, _wait_for(drawn.levels[drawn.short], limit, 1.0), allowance)
        return allowance

    def spend_tokens(self, caller: Caller, tokens: int) -> None:
        if caller.key_id is None or caller.tpm is None or tokens <= 0:
            return
        key_id, capacities = caller.key_id, _capacities(caller)

        def spend() -> None:
            self._store.draw(key_id, {"tokens": capacities["tokens"]}, window=WINDOW_SECONDS, take={"tokens": tokens})

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            spend()
            return
        # Told from the event loop as a run's stretch ends: written in the background.
        future = loop.run_in_executor(None, spend)
        self._spending.add(future)
        future.add_done_callback(self._spent)

    def _spent(self, future: asyncio.Future[None]) -> None:
        self._spending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("charging tokens failed", exc_info=future.exception())


def _capacities(caller: Caller) -> dict[str, int]:
    return {kind: limit for kind, limit in (("requests", caller.rpm), ("tokens", caller.tpm)) if limit is not None}


def _wait_for(level: float, capacity: int, amount: float) -> float:
    return max(0.0, (amount - level) * WINDOW_SECONDS / capacity)


def _budget(drawn: BucketLevels, kind: str, capacity: int | None) -> Budget | None:
    if capacity is None or kind not in drawn.levels:
        return None
    level = drawn.levels[kind]
    return Budget(capacity, max(0, math.floor(level)), _wait_for(level, capacity, capacity))
