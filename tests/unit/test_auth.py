"""Keys, the gate and rate limits on their own: a real SQLite key store, a hand-driven clock."""

from __future__ import annotations

import peewee
import pytest

from sovereign_server.auth import Gate, MemoryRateLimiter
from sovereign_server.auth.admin import create_key
from sovereign_server.auth.keys import redacted, secret_hash
from sovereign_server.auth.limits import duration
from sovereign_server.caller import Caller
from sovereign_server.errors import AuthenticationError, InvalidRequestError, PermissionDeniedError, RateLimitError
from sovereign_storage import DEFAULT_PROJECT_ID, KeyStore

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bearer(secret: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}", **extra}


def test_a_secret_is_high_entropy_shown_once_and_stored_as_its_hash(db: peewee.Database) -> None:
    keys = KeyStore(db)
    record, secret = create_key(keys, "alpha", name="ci")
    _, other_secret = create_key(keys, "alpha")
    assert secret.startswith("sk-")
    assert len(secret) >= 40
    assert secret != other_secret
    assert record.prefix == secret[:10]
    assert keys.find_key(secret_hash(secret)) == record
    assert redacted(secret) == f"{secret[:6]}***{secret[-4:]}"
    with pytest.raises(InvalidRequestError, match="project"):
        create_key(keys, "  ")
    with pytest.raises(InvalidRequestError, match="rpm"):
        create_key(keys, "alpha", rpm=0)


async def test_without_any_key_every_call_is_the_default_projects(db: peewee.Database) -> None:
    gate = Gate(KeyStore(db))
    admission = await gate.admit("/sovereign_assistant.v1.ThreadService/GetThread", {})
    assert admission.caller == Caller(DEFAULT_PROJECT_ID)
    # Whatever the SDK sends as its key is ignored then.
    assert (await gate.authenticate(bearer("unused"))).project_id == DEFAULT_PROJECT_ID


async def test_once_a_key_exists_calls_need_a_valid_unrevoked_key(db: peewee.Database) -> None:
    keys = KeyStore(db)
    clock = Clock()
    gate = Gate(keys, clock=clock)
    record, secret = create_key(keys, "alpha")
    gate.keys_changed()

    caller = await gate.authenticate(bearer(secret))
    assert (caller.project_id, caller.key_id, caller.admin) == (record.project_id, record.id, False)
    for metadata in ({}, {"authorization": "Basic abc"}, {"authorization": "Bearer "}):
        with pytest.raises(AuthenticationError, match="You didn't provide an API key") as missing:
            await gate.authenticate(metadata)
        assert missing.value.code == "invalid_api_key"
    with pytest.raises(AuthenticationError, match=r"Incorrect API key provided: sk-\w{3}\*\*\*"):
        await gate.authenticate(bearer("sk-madeupmadeupmadeup"))

    # The project header may name the key's project, by id or name, and no other.
    assert (await gate.authenticate(bearer(secret, **{"openai-project": "alpha"}))).key_id == record.id
    assert (await gate.authenticate(bearer(secret, **{"openai-project": record.project_id}))).key_id == record.id
    with pytest.raises(AuthenticationError, match="OpenAI-Project") as wrong_project:
        await gate.authenticate(bearer(secret, **{"openai-project": "beta"}))
    assert wrong_project.value.code == "invalid_project"

    # A revocation from elsewhere (the `keys` command) takes effect once the cache expires...
    keys.revoke_key(record.id)
    assert (await gate.authenticate(bearer(secret))).key_id == record.id
    clock.now += 2.5
    with pytest.raises(AuthenticationError, match="Incorrect API key"):
        await gate.authenticate(bearer(secret))
    # ... and one through this gate's admin service at once.
    _, fresh = create_key(keys, "alpha")
    gate.keys_changed()
    assert (await gate.authenticate(bearer(fresh))).project_id == record.project_id


async def test_only_admin_keys_reach_the_admin_service(db: peewee.Database) -> None:
    keys = KeyStore(db)
    gate = Gate(keys)
    _, plain = create_key(keys, "alpha")
    _, admin = create_key(keys, "ops", admin=True)
    gate.keys_changed()
    method = "/sovereign_assistant.v1.AdminService/ListKeys"
    with pytest.raises(PermissionDeniedError, match="admin key"):
        await gate.admit(method, bearer(plain))
    assert (await gate.admit(method, bearer(admin))).caller.admin
    assert Gate.is_open("/grpc.health.v1.Health/Check")
    assert not Gate.is_open(method)


def test_requests_per_minute_refill_evenly_and_tell_when_to_retry() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    caller = Caller("proj_a", "key_a", rpm=2)
    first = limiter.admit(caller, uses_tokens=False)
    assert first.requests is not None
    assert (first.requests.limit, first.requests.remaining) == (2, 1)
    assert limiter.admit(caller, uses_tokens=False).requests.remaining == 0  # type: ignore[union-attr]
    with pytest.raises(RateLimitError) as over:
        limiter.admit(caller, uses_tokens=False)
    assert (over.value.error_type, over.value.code, over.value.retry_after) == ("requests", "rate_limit_exceeded", 30.0)
    clock.now += 30
    again = limiter.admit(caller, uses_tokens=False)
    assert dict(again.headers()) == {
        "x-ratelimit-limit-requests": "2",
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
    }
    # Other keys, and keys without limits, are not affected.
    assert limiter.admit(Caller("proj_a", "key_b", rpm=2), uses_tokens=False).requests.remaining == 1  # type: ignore[union-attr]
    assert limiter.admit(Caller("proj_a", "key_c"), uses_tokens=False).headers() == ()


def test_tokens_per_minute_are_charged_after_runs_and_stop_new_runs_when_spent() -> None:
    clock = Clock()
    limiter = MemoryRateLimiter(clock)
    caller = Caller("proj_a", "key_a", tpm=100)
    assert limiter.admit(caller, uses_tokens=True).tokens.remaining == 100  # type: ignore[union-attr]
    limiter.spend_tokens(caller, 130)
    # Reading is still allowed; starting more model work is not, until the bucket refills past zero.
    assert limiter.admit(caller, uses_tokens=False).tokens.remaining == 0  # type: ignore[union-attr]
    with pytest.raises(RateLimitError) as over:
        limiter.admit(caller, uses_tokens=True)
    assert over.value.error_type == "tokens"
    assert over.value.retry_after == pytest.approx(18.6)
    clock.now += 19
    assert limiter.admit(caller, uses_tokens=True).tokens.remaining == 1  # type: ignore[union-attr]


def test_reset_durations_are_written_as_openai_writes_them() -> None:
    assert [duration(s) for s in (0.02, 0.5, 1, 1.5, 59.9, 60, 125)] == [
        "20ms",
        "500ms",
        "1s",
        "1.5s",
        "59.9s",
        "1m0s",
        "2m5s",
    ]
