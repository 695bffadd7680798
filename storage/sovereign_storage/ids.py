"""Public object ids, shaped like OpenAI's (`asst_...`, `thread_...`, ...)."""

from __future__ import annotations

import secrets
import string

ASSISTANT_PREFIX = "asst"
THREAD_PREFIX = "thread"
MESSAGE_PREFIX = "msg"
RUN_PREFIX = "run"
STEP_PREFIX = "step"
PROJECT_PREFIX = "proj"
KEY_PREFIX = "key"
# The Responses and Conversations APIs: a conversation is a thread, its items are messages.
CONVERSATION_PREFIX = "conv"
RESPONSE_PREFIX = "resp"
FUNCTION_CALL_PREFIX = "fc"
FUNCTION_OUTPUT_PREFIX = "fco"
FILE_SEARCH_CALL_PREFIX = "fs"

_ALPHABET = string.ascii_letters + string.digits
# 24 characters of a 62-letter alphabet give ~143 bits: collisions are not a practical concern.
_SUFFIX_LENGTH = 24


_SUFFIX_SPACE = len(_ALPHABET) ** _SUFFIX_LENGTH


def new_id(prefix: str) -> str:
    """Return `prefix` + "_" + a random alphanumeric suffix."""
    # One draw from the system's random source, written in base 62 (a draw per character made
    # id creation a visible share of a busy server's time).
    number = secrets.randbelow(_SUFFIX_SPACE)
    digits = []
    for _ in range(_SUFFIX_LENGTH):
        number, digit = divmod(number, len(_ALPHABET))
        digits.append(_ALPHABET[digit])
    return prefix + "_" + "".join(digits)
