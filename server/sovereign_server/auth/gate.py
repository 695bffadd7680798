"""Who may make a call: the API key it carries (checked against the stored hashes, with a short
cache so that a check costs microseconds), the project it names, the admin rights it needs, and the
key's rate limits. Transport-free: it reads the call's metadata as a mapping."""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import to_thread
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sovereign_server.auth.keys import redacted, secret_hash
from sovereign_server.auth.limits import Allowance, MemoryRateLimiter, RateLimiter
from sovereign_server.caller import Caller
from sovereign_server.errors import AuthenticationError, PermissionDeniedError
from sovereign_storage import DEFAULT_PROJECT_ID, ApiKeyRecord, KeyStore

logger = logging.getLogger("sovereign.auth")

# Reachable without a key: load balancers' health checks and tools' reflection.
OPEN_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")
ADMIN_SERVICE = "sovereign_assistant.v1.AdminService"
# Calls that start model work: they also need tokens left in the key's budget.
TOKEN_METHODS = frozenset(
    {
        "CreateRun",
        "CreateRunEvents",
        "CreateThreadAndRun",
        "CreateThreadAndRunEvents",
        "SubmitToolOutputs",
        "SubmitToolOutputsEvents",
        "CreateResponse",
        "CreateResponseEvents",
    }
)
MISSING_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization header "
    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


@dataclass(frozen=True)
class Admission:
    caller: Caller
    allowance: Allowance


@dataclass
class _Cached:
    key: ApiKeyRecord | None
    expires: float


class Gate:
    """Admits calls. While the database holds no key at all, every call is admitted to the default
    project: the server then refuses to listen beyond loopback (see `cli`)."""

    def __init__(
        self,
        keys: KeyStore,
        limiter: RateLimiter | None = None,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keys = keys
        self.limiter: RateLimiter = limiter or MemoryRateLimiter()
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        # Keys are revoked, never deleted: once one exists, one always will.
        self._keys_exist = False
        self._keys_checked = -float("inf")
        self._last_used: dict[str, int] = {}

    @staticmethod
    def is_open(method: str) -> bool:
        return method.lstrip("/").split("/", 1)[0] in OPEN_SERVICES

    async def admit(self, method: str, metadata: Mapping[str, str]) -> Admission:
        """The call's caller and what its key may still spend; raises AuthenticationError,
        PermissionDeniedError or RateLimitError."""
        caller = await self.authenticate(metadata)
        service, _, name = method.lstrip("/").partition("/")
        if service == ADMIN_SERVICE and not caller.admin:
            raise PermissionDeniedError("This call needs an admin key (`sovereign keys create --admin`).")
        uses_tokens = name in TOKEN_METHODS
        if self.limiter.blocks(caller):
            return Admission(caller, await to_thread(self.limiter.admit, caller, uses_tokens=uses_tokens))
        return Admission(caller, self.limiter.admit(caller, uses_tokens=uses_tokens))

    async def authenticate(self, metadata: Mapping[str, str]) -> Caller:
        now = self._clock()
        if not await self._any_keys(now):
            return Caller(DEFAULT_PROJECT_ID)
        scheme, _, secret = metadata.get("authorization", "").strip().partition(" ")
        secret = secret.strip()
        if scheme.lower() != "bearer" or not secret:
            raise AuthenticationError(MISSING_KEY)
        digest = secret_hash(secret)
        cached = self._cache.get(digest)
        if cached is None or cached.expires <= now:
            if len(self._cache) > 10_000:
                self._cache.clear()  # bounds memory against a flood of made-up keys
            cached = self._cache[digest] = _Cached(
                await to_thread(self._keys.find_key, digest), now + self._cache_seconds
            )
        key = cached.key
        if key is None or key.revoked_at is not None:
            raise AuthenticationError(f"Incorrect API key provided: {redacted(secret)}.")
        project = metadata.get("openai-project")
        if project and project not in (key.project_id, key.project_name):
            raise AuthenticationError(
                f"OpenAI-Project header should match project for API key: the key belongs to {key.project_name!r}.",
                code="invalid_project",
            )
        self._last_used[key.id] = int(time.time())
        return Caller(key.project_id, key.id, key.admin, key.rpm, key.tpm)

    def keys_changed(self) -> None:
        """A key was created or revoked here: forget what the cache says at once."""
        self._cache.clear()
        self._keys_checked = -float("inf")

    async def _any_keys(self, now: float) -> bool:
        if not self._keys_exist and now - self._keys_checked >= self._cache_seconds:
            self._keys_exist = await to_thread(self._keys.has_keys)
            self._keys_checked = now
        return self._keys_exist

    async def record_use(self, interval: float = 5.0) -> None:
        """Writes keys' `last_used_at` every `interval` seconds (one write for many calls)."""
        while True:
            await asyncio.sleep(interval)
            if self._last_used:
                used, self._last_used = self._last_used, {}
                try:
                    await to_thread(self._keys.mark_used, used)
                except Exception:
                    logger.exception("recording key use failed")
