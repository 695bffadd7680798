"""Restart safety of indexing: vector store files left `in_progress` by a stopped server are indexed
at the next start, so the SDK's polling helpers always finish (they never stay `in_progress`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openai import OpenAI

from sovereign_storage import BlobStore, FileStore, NewFile, NewVectorStore, StoreFileSpec, migrate, open_database
from tests.conftest import ServiceProcess

pytestmark = pytest.mark.sdk

TEXT = "Refunds are accepted within thirty days. " * 20


def test_files_left_in_progress_are_indexed_at_the_next_start(tmp_path: Path, database: str) -> None:
    """What a process stopped mid-indexing leaves: a file attached, its indexing not done."""
    db = open_database(database)
    migrate(db)
    with BlobStore(tmp_path / "files").writer() as writer:
        writer.write(TEXT.encode())
        digest = writer.commit()
    store = FileStore(db)
    file = store.create_file(NewFile("notes.txt", "assistants", len(TEXT), digest))
    left = store.create_vector_store(NewVectorStore(name="left"), [StoreFileSpec(file.id)])
    assert left.status == "in_progress"
    db.close()

    service = ServiceProcess(database, "--files-dir", str(tmp_path / "files"))
    try:
        with OpenAI(base_url=service.base_url, api_key="sk-local", max_retries=0) as sdk:
            attached = sdk.vector_stores.files.poll(file.id, vector_store_id=left.id, poll_interval_ms=50)
            assert attached.status == "completed"
            assert sdk.vector_stores.retrieve(left.id).status == "completed"
            assert sdk.vector_stores.search(left.id, query="refunds").data[0].file_id == file.id
    finally:
        service.stop()


def test_indexing_cut_by_sigkill_completes_after_a_restart(tmp_path: Path, database: str) -> None:
    first = ServiceProcess(database, "--files-dir", str(tmp_path / "files"))
    try:
        with OpenAI(base_url=first.base_url, api_key="sk-local", max_retries=0) as sdk:
            files = [
                sdk.files.create(file=(f"part{index}.txt", io.BytesIO((TEXT * 200).encode())), purpose="assistants")
                for index in range(4)
            ]
            store = sdk.vector_stores.create(file_ids=[file.id for file in files])
            first.process.kill()
            first.process.wait()
    finally:
        first.stop()

    second = ServiceProcess(database, "--files-dir", str(tmp_path / "files"))
    try:
        with OpenAI(base_url=second.base_url, api_key="sk-local", max_retries=0) as sdk:
            batch = sdk.vector_stores.file_batches.create_and_poll(
                store.id, file_ids=[files[0].id], poll_interval_ms=50
            )
            assert batch.status == "completed"
            for file in files:
                polled = sdk.vector_stores.files.poll(file.id, vector_store_id=store.id, poll_interval_ms=50)
                assert polled.status == "completed"
            final = sdk.vector_stores.retrieve(store.id)
            assert (final.status, final.file_counts.completed, final.file_counts.in_progress) == ("completed", 4, 0)
    finally:
        second.stop()
