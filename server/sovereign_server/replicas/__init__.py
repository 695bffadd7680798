"""Several replicas of the service on one PostgreSQL database: coordination of their runs
(`coordination`), the event log's encoding (`events`), shared rate limits (`limits`), and the
commands that start replicas and the gateway over them (`commands`, `supervisor`)."""

from __future__ import annotations

import peewee

from sovereign_server.auth.limits import MemoryRateLimiter, RateLimiter
from sovereign_server.replicas.coordination import DatabaseCoordination
from sovereign_server.replicas.limits import DatabaseRateLimiter
from sovereign_server.runs.coordination import Coordination, LocalCoordination
from sovereign_storage import Repository
from sovereign_storage.replicas import ReplicaStore, is_shared

__all__ = ["DatabaseCoordination", "DatabaseRateLimiter", "coordination_for", "is_shared"]


def coordination_for(
    database: peewee.Database, repository: Repository, *, lease_seconds: float = 5.0
) -> tuple[Coordination, RateLimiter]:
    """How runs and rate limits are shared, by the database in use: through PostgreSQL among any
    number of replicas, or within this process alone (SQLite)."""
    if is_shared(database):
        store = ReplicaStore(database, lease_seconds)
        return DatabaseCoordination(repository, store), DatabaseRateLimiter(store)
    return LocalCoordination(repository), MemoryRateLimiter()
