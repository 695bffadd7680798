"""Public object ids, shaped like OpenAI's (`asst_...`, `thread_...`, ...)."""

from __future__ import annotations

import secrets
import string

ASSISTANT_PREFIX = "asst"
THREAD_PREFIX = "thread"
MESSAGE_PREFIX = "msg"
RUN_PREFIX = "run"
STEP_PREFIX = "step"

_ALPHABET = string.ascii_letters + string.digits
# 24 characters of a 62-letter alphabet give ~143 bits: collisions are not a practical concern.
_SUFFIX_LENGTH = 24


def new_id(prefix: str) -> str:
    """Return `prefix` + "_" + a random alphanumeric suffix."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(_SUFFIX_LENGTH))
