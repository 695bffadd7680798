"""Records of files and vector stores as the protobuf messages whose JSON (through the gateway) is
OpenAI's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import struct_pb2

from sovereign_assistant.v1 import file_pb2, vector_store_pb2
from sovereign_server.convert import to_struct, to_value
from sovereign_server.files.search import SearchHit
from sovereign_storage import FileBatchRecord, FileCounts, FileRecord, VectorStoreFileRecord, VectorStoreRecord, values


def file_message(record: FileRecord) -> file_pb2.File:
    return file_pb2.File(
        id=record.id,
        object="file",
        bytes=record.bytes,
        created_at=record.created_at,
        expires_at=to_value(record.expires_at),
        filename=record.filename,
        purpose=record.purpose,
        status="processed",
        status_details=to_value(None),
    )


def counts_message(counts: FileCounts) -> vector_store_pb2.FileCounts:
    return vector_store_pb2.FileCounts(
        in_progress=counts.in_progress,
        completed=counts.completed,
        failed=counts.failed,
        cancelled=counts.cancelled,
        total=counts.total,
    )


def vector_store_message(record: VectorStoreRecord) -> vector_store_pb2.VectorStore:
    return vector_store_pb2.VectorStore(
        id=record.id,
        object="vector_store",
        created_at=record.created_at,
        name=to_value(record.name),
        usage_bytes=record.usage_bytes,
        file_counts=counts_message(record.file_counts),
        status=record.status,
        expires_after=to_value(record.expires_after.to_json() if record.expires_after else None),
        expires_at=to_value(record.expires_at),
        last_active_at=to_value(record.last_active_at),
        metadata=record.metadata,
    )


def store_file_message(record: VectorStoreFileRecord) -> vector_store_pb2.VectorStoreFile:
    return vector_store_pb2.VectorStoreFile(
        id=record.id,
        object="vector_store.file",
        usage_bytes=record.usage_bytes,
        created_at=record.created_at,
        vector_store_id=record.vector_store_id,
        status=record.status,
        last_error=to_value(values.last_error_to_json(record.last_error) if record.last_error else None),
        chunking_strategy=to_struct(record.chunking_strategy.to_json()),
        attributes=_attributes(record.attributes),
    )


def batch_message(record: FileBatchRecord) -> vector_store_pb2.VectorStoreFileBatch:
    return vector_store_pb2.VectorStoreFileBatch(
        id=record.id,
        object="vector_store.files_batch",
        created_at=record.created_at,
        vector_store_id=record.vector_store_id,
        status=record.status,
        file_counts=counts_message(record.file_counts),
    )


def search_results(hits: Sequence[SearchHit]) -> list[vector_store_pb2.SearchResult]:
    return [
        vector_store_pb2.SearchResult(
            file_id=hit.file_id,
            filename=hit.filename,
            score=hit.score,
            attributes=_attributes(hit.attributes),
            content=[vector_store_pb2.TextPart(type="text", text=hit.text)],
        )
        for hit in hits
    ]


def text_parts(texts: Sequence[str]) -> list[vector_store_pb2.TextPart]:
    return [vector_store_pb2.TextPart(type="text", text=text) for text in texts]


def _attributes(value: dict[str, Any] | None) -> struct_pb2.Value:
    result = to_value(value)
    if value == {}:
        # An empty object must still be set, or it would print as a missing field.
        result.struct_value.SetInParent()
    return result
