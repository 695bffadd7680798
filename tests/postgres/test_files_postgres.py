"""Files, vector stores and full-text search on PostgreSQL (its `tsvector` ranking instead of FTS5)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import peewee
import pytest

from sovereign_server.files import FileService, FileSettings, SearchRequest
from sovereign_storage import (
    LATEST_VERSION,
    FileStore,
    NewChunk,
    NewFile,
    NewVectorStore,
    StoreFileSpec,
    migrate,
    open_database,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[peewee.Database]:
    db = open_database(postgres_url)
    assert migrate(db) == LATEST_VERSION
    yield db
    db.close()


def test_chunks_are_ranked_by_postgres_full_text_search(database: peewee.Database, tmp_path: Path) -> None:
    store = FileStore(database)
    file = store.create_file(NewFile("notes.txt", "assistants", 10, "a" * 64))
    other = store.create_file(NewFile("prices.txt", "assistants", 10, "b" * 64))
    vector_store = store.create_vector_store(
        NewVectorStore(name="pg"), [StoreFileSpec(file.id), StoreFileSpec(other.id)]
    )
    jobs = {job.file_id: job for job in store.pending_jobs() if job.vector_store_id == vector_store.id}
    assert store.finish_indexing(jobs[file.id], [NewChunk("Refunds are accepted within thirty days.", 6)])
    assert store.finish_indexing(jobs[other.id], [NewChunk("The premium plan costs forty dollars.", 6)])

    hits = store.lexical_search([vector_store.id], "refund policy", 10)
    assert [store.chunks([hit.chunk_id])[hit.chunk_id].file_id for hit in hits] == [file.id]
    assert store.lexical_search([vector_store.id], "refund", 10, file_ids=[other.id]) == []

    service = FileService(store, FileSettings(str(tmp_path / "files")))
    found = asyncio.run(service.search(store.project_id, SearchRequest((vector_store.id,), ("premium plan",))))
    assert [hit.filename for hit in found] == ["prices.txt"]

    store.delete_file(file.id)
    assert store.lexical_search([vector_store.id], "refund", 10) == []
