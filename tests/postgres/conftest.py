"""The PostgreSQL tests' database: one on the session's server (`postgres_server`, tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.databases import PostgresServer


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """An empty PostgreSQL database (not migrated) for the tests of this folder."""
    return postgres_server.create_database(migrated=False)
