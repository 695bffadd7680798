"""API keys, projects and rate limits: who may call, what they may see, how much they may spend."""

from sovereign_server.auth.gate import Admission, Gate
from sovereign_server.auth.keys import new_secret, secret_hash, visible_prefix
from sovereign_server.auth.limits import Allowance, MemoryRateLimiter, RateLimiter

__all__ = [
    "Admission",
    "Allowance",
    "Gate",
    "MemoryRateLimiter",
    "RateLimiter",
    "new_secret",
    "secret_hash",
    "visible_prefix",
]
