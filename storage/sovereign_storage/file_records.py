"""Plain immutable values of the files and vector stores API: files, vector stores, the files attached
to them, file batches and the chunks search reads."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

from .values import LastError

# An attribute value of a vector store file, as OpenAI allows them.
AttributeValue: TypeAlias = str | int | float | bool


class IndexStatus(StrEnum):
    """The status of a file in a vector store (and of a file batch)."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(frozen=True)
class ChunkingStrategy:
    """OpenAI's static chunking: chunks of at most `max_chunk_size_tokens`, each overlapping the
    previous one by `chunk_overlap_tokens` (the `auto` strategy is 800 and 400)."""

    max_chunk_size_tokens: int = 800
    chunk_overlap_tokens: int = 400

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_chunk_size_tokens,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
            },
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChunkingStrategy:
        static = data.get("static") or {}
        return cls(int(static.get("max_chunk_size_tokens", 800)), int(static.get("chunk_overlap_tokens", 400)))


@dataclass(frozen=True)
class FileRecord:
    id: str
    created_at: int
    bytes: int
    filename: str
    purpose: str
    # The SHA-256 of the bytes: the name of their blob in the file directory.
    sha256: str
    expires_at: int | None


@dataclass(frozen=True)
class NewFile:
    filename: str
    purpose: str
    bytes: int
    sha256: str
    expires_at: int | None = None


@dataclass(frozen=True)
class FileCounts:
    in_progress: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.in_progress + self.completed + self.failed + self.cancelled

    @classmethod
    def of(cls, statuses: Mapping[str, int]) -> FileCounts:
        return cls(
            statuses.get(IndexStatus.IN_PROGRESS, 0),
            statuses.get(IndexStatus.COMPLETED, 0),
            statuses.get(IndexStatus.FAILED, 0),
            statuses.get(IndexStatus.CANCELLED, 0),
        )


@dataclass(frozen=True)
class ExpiresAfter:
    """A vector store expires `days` after it was last active."""

    days: int
    anchor: str = "last_active_at"

    def to_json(self) -> dict[str, Any]:
        return {"anchor": self.anchor, "days": self.days}


@dataclass(frozen=True)
class VectorStoreRecord:
    id: str
    created_at: int
    name: str | None
    description: str | None
    metadata: dict[str, str]
    expires_after: ExpiresAfter | None
    expires_at: int | None
    last_active_at: int | None
    expired: bool
    file_counts: FileCounts
    usage_bytes: int

    @property
    def status(self) -> str:
        if self.expired:
            return "expired"
        return "in_progress" if self.file_counts.in_progress else "completed"


@dataclass(frozen=True)
class NewVectorStore:
    name: str | None = None
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    expires_after: ExpiresAfter | None = None


@dataclass(frozen=True)
class StoreFileSpec:
    """A file to attach to a vector store, with its settings."""

    file_id: str
    chunking_strategy: ChunkingStrategy = field(default_factory=ChunkingStrategy)
    attributes: dict[str, AttributeValue] | None = None


@dataclass(frozen=True)
class VectorStoreFileRecord:
    # The file's id.
    id: str
    vector_store_id: str
    created_at: int
    status: IndexStatus
    last_error: LastError | None
    chunking_strategy: ChunkingStrategy
    attributes: dict[str, AttributeValue] | None
    usage_bytes: int
    batch_id: str | None


@dataclass(frozen=True)
class FileBatchRecord:
    id: str
    vector_store_id: str
    created_at: int
    cancelled: bool
    file_counts: FileCounts

    @property
    def status(self) -> str:
        if self.file_counts.in_progress:
            return "in_progress"
        if self.cancelled:
            return "cancelled"
        if self.file_counts.total and self.file_counts.failed == self.file_counts.total:
            return "failed"
        return "completed"


@dataclass(frozen=True)
class IndexJob:
    """A vector store file waiting to be indexed, with what indexing needs to know."""

    project_id: str
    vector_store_id: str
    file_id: str
    filename: str
    sha256: str
    chunking_strategy: ChunkingStrategy


@dataclass(frozen=True)
class NewChunk:
    text: str
    tokens: int
    # Float32 bytes of the chunk's embedding; None without an embeddings backend.
    embedding: bytes | None = None


@dataclass(frozen=True)
class ChunkRecord:
    # The chunk's row number, unique across vector stores.
    id: int
    vector_store_id: str
    file_id: str
    position: int
    text: str


@dataclass(frozen=True)
class SearchableFile:
    """A completed file of a vector store, as search filters and results need it."""

    vector_store_id: str
    file_id: str
    filename: str
    attributes: dict[str, AttributeValue] | None
