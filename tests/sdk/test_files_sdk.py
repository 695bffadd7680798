"""Files and vector stores through the official SDK, a real Envoy and a real server: uploads
streamed to the file directory, OpenAI's error bodies for bad uploads, vector stores indexing in the
background, the SDK's polling helpers, search with attribute filters, and deletion cascading."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from sovereign_server.gateway import Gateway
from tests.conftest import ServerThread

pytestmark = pytest.mark.sdk

MAX_UPLOAD = 1_000_000

NOTES = b"The return policy allows refunds within thirty days of purchase.\nShipping takes five days.\n"
PRICES = b"# Prices\n\nThe premium plan costs forty dollars a month. The basic plan is free.\n"


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    return {"max_upload_bytes": MAX_UPLOAD}


def _upload(client: OpenAI, name: str, data: bytes, purpose: str = "assistants") -> Any:
    return client.files.create(file=(name, io.BytesIO(data), "text/plain"), purpose=purpose)  # type: ignore[arg-type]


def test_upload_retrieve_list_download_and_delete(openai_client: OpenAI, grpc_server: ServerThread) -> None:
    uploaded = _upload(openai_client, "notes.txt", NOTES)
    assert uploaded.id.startswith("file-")
    assert (uploaded.object, uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        "file",
        len(NOTES),
        "notes.txt",
        "assistants",
    )
    assert openai_client.files.retrieve(uploaded.id).model_dump() == uploaded.model_dump()
    assert openai_client.files.content(uploaded.id).content == NOTES

    other = _upload(openai_client, "data.jsonl", b'{"a": 1}\n', purpose="batch")
    listed = [file.id for file in openai_client.files.list()]
    assert listed[:2] == [other.id, uploaded.id]
    assert [file.id for file in openai_client.files.list(purpose="batch")] == [other.id]
    page = openai_client.files.list(limit=1, order="asc", after=uploaded.id)
    assert [file.id for file in page.data] == [other.id]

    deleted = openai_client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (uploaded.id, True, "file")
    with pytest.raises(openai.NotFoundError):
        openai_client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        openai_client.files.content(uploaded.id)


def test_identical_uploads_share_their_bytes_until_both_are_deleted(openai_client: OpenAI) -> None:
    first = _upload(openai_client, "a.txt", b"same bytes")
    second = _upload(openai_client, "b.txt", b"same bytes")
    openai_client.files.delete(first.id)
    assert openai_client.files.content(second.id).content == b"same bytes"
    openai_client.files.delete(second.id)


def test_large_upload_is_streamed_whole(openai_client: OpenAI) -> None:
    data = bytes(range(256)) * (MAX_UPLOAD // 256)
    uploaded = _upload(openai_client, "blob.bin", data, purpose="user_data")
    assert uploaded.bytes == len(data)
    assert openai_client.files.content(uploaded.id).content == data


def test_bad_uploads_get_openai_errors(openai_client: OpenAI, gateway: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as unknown_purpose:
        _upload(openai_client, "a.txt", b"x", purpose="nonsense")
    assert unknown_purpose.value.body["param"] == "purpose"  # type: ignore[index]

    with pytest.raises(openai.APIStatusError) as too_large:
        _upload(openai_client, "big.txt", b"x" * (MAX_UPLOAD + 1))
    assert too_large.value.status_code == 413
    assert too_large.value.body["param"] == "file"  # type: ignore[index]

    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=10) as http:
        no_file = http.post("/files", files={"purpose": (None, "assistants")})
        assert no_file.status_code == 400
        assert no_file.json()["error"]["param"] == "file"
        not_multipart = http.post("/files", json={"purpose": "assistants"})
        assert not_multipart.status_code == 400
        assert not_multipart.json()["error"]["type"] == "invalid_request_error"


def _wait_completed(client: OpenAI, store_id: str) -> Any:
    deadline = time.monotonic() + 20
    store = client.vector_stores.retrieve(store_id)
    while store.status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
        store = client.vector_stores.retrieve(store_id)
    return store


def test_vector_store_indexes_its_files_and_searches_them(openai_client: OpenAI) -> None:
    notes = _upload(openai_client, "notes.txt", NOTES)
    prices = _upload(openai_client, "prices.md", PRICES)
    store = openai_client.vector_stores.create(
        name="Policies", file_ids=[notes.id, prices.id], metadata={"team": "support"}
    )
    assert store.id.startswith("vs_")
    assert (store.name, store.metadata, store.file_counts.total) == ("Policies", {"team": "support"}, 2)
    store = _wait_completed(openai_client, store.id)
    assert (store.status, store.file_counts.completed, store.file_counts.in_progress) == ("completed", 2, 0)
    assert store.usage_bytes > 0

    results = openai_client.vector_stores.search(store.id, query="What is the refund policy?")
    assert results.data[0].file_id == notes.id
    assert results.data[0].filename == "notes.txt"
    assert "thirty days" in results.data[0].content[0].text
    assert 0 < results.data[0].score <= 1

    content = openai_client.vector_stores.files.content(notes.id, vector_store_id=store.id)
    assert "".join(part.text or "" for part in content.data) == NOTES.decode().strip()
    attached = openai_client.vector_stores.files.retrieve(notes.id, vector_store_id=store.id)
    assert attached.chunking_strategy is not None
    assert attached.chunking_strategy.model_dump() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


def test_upload_and_poll_helpers_and_filters(openai_client: OpenAI) -> None:
    store = openai_client.vector_stores.create(name="Helpers")
    attached = openai_client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("notes.txt", io.BytesIO(NOTES)), poll_interval_ms=50
    )
    assert attached.status == "completed"
    openai_client.vector_stores.files.update(
        attached.id, vector_store_id=store.id, attributes={"kind": "policy", "year": 2024}
    )

    batch = openai_client.vector_stores.file_batches.upload_and_poll(
        store.id, files=[("prices.md", io.BytesIO(PRICES)), ("empty.txt", io.BytesIO(b"   "))], poll_interval_ms=50
    )
    assert batch.object == "vector_store.files_batch"
    assert (batch.status, batch.file_counts.completed, batch.file_counts.failed, batch.file_counts.total) == (
        "completed",
        1,
        1,
        2,
    )
    failed = list(openai_client.vector_stores.files.list(store.id, filter="failed"))
    assert len(failed) == 1
    assert failed[0].last_error is not None
    assert failed[0].last_error.code == "invalid_file"
    batch_files = list(openai_client.vector_stores.file_batches.list_files(batch.id, vector_store_id=store.id))
    assert len(batch_files) == 2

    query = "refunds and plans"
    everything = openai_client.vector_stores.search(store.id, query=query)
    assert {result.filename for result in everything.data} == {"notes.txt", "prices.md"}
    policies = openai_client.vector_stores.search(
        store.id, query=query, filters={"type": "eq", "key": "kind", "value": "policy"}
    )
    assert [result.filename for result in policies.data] == ["notes.txt"]
    assert policies.data[0].attributes == {"kind": "policy", "year": 2024}
    recent = openai_client.vector_stores.search(
        store.id,
        query=query,
        filters={
            "type": "or",
            "filters": [
                {"type": "gte", "key": "year", "value": 2025},
                {"type": "nin", "key": "kind", "value": ["policy"]},
            ],
        },
    )
    assert [result.filename for result in recent.data] == ["prices.md"]
    top = openai_client.vector_stores.search(store.id, query=query, max_num_results=1, rewrite_query=True)
    assert len(top.data) == 1
    strict = openai_client.vector_stores.search(store.id, query="refunds", ranking_options={"score_threshold": 1.0})
    assert all(result.score >= 1.0 for result in strict.data)

    bad: Any = {"type": "near", "key": "k", "value": 1}
    with pytest.raises(openai.BadRequestError) as bad_filter:
        openai_client.vector_stores.search(store.id, query=query, filters=bad)
    assert bad_filter.value.body["param"] == "filters.type"  # type: ignore[index]


def test_deleting_a_file_removes_its_chunks_from_every_store(openai_client: OpenAI) -> None:
    notes = _upload(openai_client, "notes.txt", NOTES)
    first = openai_client.vector_stores.create(file_ids=[notes.id])
    second = openai_client.vector_stores.create(file_ids=[notes.id])
    for store in (first, second):
        assert _wait_completed(openai_client, store.id).file_counts.completed == 1
        assert openai_client.vector_stores.search(store.id, query="refunds").data

    openai_client.files.delete(notes.id)
    for store in (first, second):
        assert openai_client.vector_stores.search(store.id, query="refunds").data == []
        assert openai_client.vector_stores.retrieve(store.id).file_counts.total == 0

    kept = _upload(openai_client, "prices.md", PRICES)
    store = openai_client.vector_stores.create(file_ids=[kept.id])
    _wait_completed(openai_client, store.id)
    removed = openai_client.vector_stores.files.delete(kept.id, vector_store_id=store.id)
    assert (removed.deleted, removed.object) == (True, "vector_store.file.deleted")
    assert openai_client.vector_stores.search(store.id, query="premium").data == []
    assert openai_client.files.retrieve(kept.id).id == kept.id
    deleted = openai_client.vector_stores.delete(store.id)
    assert (deleted.deleted, deleted.object) == (True, "vector_store.deleted")
    with pytest.raises(openai.NotFoundError):
        openai_client.vector_stores.retrieve(store.id)


def test_vector_store_listing_modify_and_batch_cancel(openai_client: OpenAI) -> None:
    created = [openai_client.vector_stores.create(name=f"s{index}") for index in range(3)]
    listed = openai_client.vector_stores.list(limit=2)
    assert [store.id for store in listed.data] == [created[2].id, created[1].id]
    assert listed.has_more
    modified = openai_client.vector_stores.update(
        created[0].id, name="renamed", metadata={"a": "b"}, expires_after={"anchor": "last_active_at", "days": 3}
    )
    assert (modified.name, modified.metadata) == ("renamed", {"a": "b"})
    assert modified.expires_after is not None
    assert modified.expires_after.days == 3
    assert modified.expires_at is not None

    with pytest.raises(openai.NotFoundError):
        openai_client.vector_stores.files.create(vector_store_id=created[0].id, file_id="file-missing")
    with pytest.raises(openai.BadRequestError) as bad_chunking:
        openai_client.vector_stores.create(
            chunking_strategy={"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 80}}
        )
    assert bad_chunking.value.body["param"] == "chunking_strategy.static.chunk_overlap_tokens"  # type: ignore[index]

    notes = _upload(openai_client, "notes.txt", NOTES)
    batch = openai_client.vector_stores.file_batches.create(created[1].id, file_ids=[notes.id])
    cancelled = openai_client.vector_stores.file_batches.cancel(batch.id, vector_store_id=created[1].id)
    assert cancelled.status in ("cancelled", "completed")
    assert cancelled.file_counts.in_progress == 0
