"""API key secrets: made here, shown once, and stored only as a hash.

A secret is 256 random bits, so one SHA-256 pass is all a stored hash needs (slow password hashes
exist for secrets people choose), and it keeps checking a key cheap on every call."""

from __future__ import annotations

import hashlib
import secrets

SECRET_PREFIX = "sk-"
# What a listing shows of a key: enough to recognise it, far too little to use it.
VISIBLE_CHARACTERS = 10


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def visible_prefix(secret: str) -> str:
    return secret[:VISIBLE_CHARACTERS]


def redacted(secret: str) -> str:
    """A secret as error messages may show it (OpenAI shows `sk-abc***xyz`)."""
    if len(secret) <= 8:
        return "***"
    return f"{secret[:6]}***{secret[-4:]}"
