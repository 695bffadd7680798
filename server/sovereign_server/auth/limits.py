"""Requests and tokens per minute, per key, as token buckets: a key may spend up to its limit at
once, and regains it evenly over a minute, which is how OpenAI describes its own limits.

`RateLimiter` is the interface; `MemoryRateLimiter` keeps the buckets in this process. A service of
several replicas needs counters all of them share (the database), behind the same interface.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sovereign_server.caller import Caller
from sovereign_server.errors import RateLimitError

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Budget:
    """One limit as OpenAI's `x-ratelimit-*` headers describe it."""

    limit: int
    remaining: int
    # Seconds until the bucket is full again.
    reset: float


@dataclass(frozen=True)
class Allowance:
    """What a call may still spend: the headers every JSON response carries for a limited key."""

    requests: Budget | None = None
    tokens: Budget | None = None

    def headers(self) -> tuple[tuple[str, str], ...]:
        headers: list[tuple[str, str]] = []
        for kind, budget in (("requests", self.requests), ("tokens", self.tokens)):
            if budget is not None:
                headers += [
                    (f"x-ratelimit-limit-{kind}", str(budget.limit)),
                    (f"x-ratelimit-remaining-{kind}", str(budget.remaining)),
                    (f"x-ratelimit-reset-{kind}", duration(budget.reset)),
                ]
        return tuple(headers)


class RateLimiter(Protocol):
    def blocks(self, caller: Caller) -> bool:
        """Whether `admit(caller)` waits for I/O (a shared store): callers then run it off the event loop."""
        ...

    def admit(self, caller: Caller, *, uses_tokens: bool) -> Allowance:
        """Spends one request of the caller's key; raises RateLimitError when the key is over its
        requests per minute, or (for a call that uses tokens) over its tokens per minute."""
        ...

    def spend_tokens(self, caller: Caller, tokens: int) -> None:
        """Charges tokens a run of the caller used to its key."""
        ...


class _Bucket:
    def __init__(self, capacity: int, now: float) -> None:
        self.capacity = capacity
        self.level = float(capacity)
        self._updated = now

    def refill(self, now: float) -> None:
        rate = self.capacity / WINDOW_SECONDS
        self.level = min(float(self.capacity), self.level + (now - self._updated) * rate)
        self._updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` is available."""
        return max(0.0, (amount - self.level) * WINDOW_SECONDS / self.capacity)

    def budget(self) -> Budget:
        return Budget(self.capacity, max(0, math.floor(self.level)), self.wait_for(self.capacity))


class MemoryRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        # Tokens are charged from the run layer's threads as well as the event loop.
        self._lock = threading.Lock()

    def blocks(self, caller: Caller) -> bool:
        return False

    def admit(self, caller: Caller, *, uses_tokens: bool) -> Allowance:
        if caller.key_id is None or (caller.rpm is None and caller.tpm is None):
            return Allowance()
        with self._lock:
            now = self._clock()
            requests = self._bucket(caller.key_id, "requests", caller.rpm, now)
            tokens = self._bucket(caller.key_id, "tokens", caller.tpm, now)
            over = None
            if requests is not None and requests.level < 1:
                over = ("requests", caller.rpm, requests.wait_for(1))
            elif uses_tokens and tokens is not None and tokens.level < 1:
                over = ("tokens", caller.tpm, tokens.wait_for(1))
            elif requests is not None:
                requests.level -= 1
            allowance = Allowance(
                requests.budget() if requests is not None else None, tokens.budget() if tokens is not None else None
            )
        if over is not None:
            raise _over(*over, allowance)
        return allowance

    def spend_tokens(self, caller: Caller, tokens: int) -> None:
        if caller.key_id is None or caller.tpm is None or tokens <= 0:
            return
        with self._lock:
            bucket = self._bucket(caller.key_id, "tokens", caller.tpm, self._clock())
            if bucket is not None:
                # A run may overdraw: its key then waits until the bucket refills past zero.
                bucket.level -= tokens

    def _bucket(self, key_id: str, kind: str, capacity: int | None, now: float) -> _Bucket | None:
        if capacity is None:
            return None
        bucket = self._buckets.get((key_id, kind))
        if bucket is None or bucket.capacity != capacity:
            bucket = self._buckets[(key_id, kind)] = _Bucket(capacity, now)
        bucket.refill(now)
        return bucket


def _over(kind: str, limit: int | None, retry_after: float, allowance: Allowance) -> RateLimitError:
    unit = "RPM" if kind == "requests" else "TPM"
    return RateLimitError(
        f"Rate limit reached for {kind} per min ({unit}): Limit {limit}. Please try again in {duration(retry_after)}.",
        kind=kind,
        retry_after=retry_after,
        headers=allowance.headers(),
    )


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{round(rest):d}s"
