"""Peewee models of files, vector stores, their files and batches, and the chunks search reads.

Created by migration 6 (never from these classes). Files and vector stores belong to a project;
what hangs off a vector store (its files, batches and chunks) is reached through it, so scoping the
store scopes them.

Full-text search needs more than these columns: on SQLite an FTS5 table `file_chunks_fts` over
`file_chunks.text`, kept in step by triggers; on PostgreSQL a generated `tsv` column with a GIN
index. Both are created by the migration and only queried with SQL (`file_store.py`).
"""

from __future__ import annotations

from typing import Any

import peewee

from . import file_records as r
from . import values as v
from .models import DEFAULT_PROJECT_ID, BaseModel, CodecField, EnumField, JSONField


def _chunking_field() -> CodecField:
    return CodecField(lambda strategy: strategy.to_json(), r.ChunkingStrategy.from_json)


class StoredFile(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default=DEFAULT_PROJECT_ID)
    created_at = peewee.IntegerField()
    bytes = peewee.BigIntegerField()
    filename = peewee.TextField()
    purpose = peewee.TextField()
    sha256 = peewee.TextField(index=True)
    expires_at = peewee.IntegerField(null=True)

    class Meta:
        table_name = "files"
        indexes = ((("project_id", "created_at", "seq"), False),)


class VectorStore(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    project_id = peewee.TextField(default=DEFAULT_PROJECT_ID)
    created_at = peewee.IntegerField()
    name = peewee.TextField(null=True)
    description = peewee.TextField(null=True)
    metadata = JSONField()
    # Days after `last_active_at`; null: never expires.
    expires_after_days = peewee.IntegerField(null=True)
    expires_at = peewee.IntegerField(null=True)
    last_active_at = peewee.IntegerField(null=True)
    expired = peewee.BooleanField(default=False)

    class Meta:
        table_name = "vector_stores"
        indexes = ((("project_id", "created_at", "seq"), False),)


class VectorStoreFile(BaseModel):
    seq = peewee.AutoField()
    vector_store = peewee.ForeignKeyField(
        VectorStore, field=VectorStore.id, column_name="vector_store_id", on_delete="CASCADE", index=False
    )
    vector_store_id: str
    # The file's public id, which is also this object's id; a plain id, so deleting the file is
    # done (with its chunks) by the repository, on every backend alike.
    file_id = peewee.TextField()
    created_at = peewee.IntegerField()
    status = EnumField(r.IndexStatus)
    last_error = CodecField(v.last_error_to_json, v.last_error_from_json, null=True)
    chunking_strategy = _chunking_field()
    attributes = JSONField(null=True)
    usage_bytes = peewee.BigIntegerField(default=0)
    batch_id = peewee.TextField(null=True)

    class Meta:
        table_name = "vector_store_files"
        indexes = (
            (("vector_store", "file_id"), True),
            (("vector_store", "created_at", "seq"), False),
            (("file_id",), False),
            (("batch_id",), False),
            (("status",), False),
        )


class FileBatch(BaseModel):
    seq = peewee.AutoField()
    id = peewee.TextField(unique=True)
    vector_store = peewee.ForeignKeyField(
        VectorStore, field=VectorStore.id, column_name="vector_store_id", on_delete="CASCADE"
    )
    vector_store_id: str
    created_at = peewee.IntegerField()
    cancelled = peewee.BooleanField(default=False)

    class Meta:
        table_name = "vector_store_file_batches"


class FileChunk(BaseModel):
    # Also the chunk's rowid in the FTS5 table.
    seq = peewee.AutoField()
    vector_store_id = peewee.TextField()
    file_id = peewee.TextField()
    position = peewee.IntegerField()
    text = peewee.TextField()
    tokens = peewee.IntegerField()
    embedding = peewee.BlobField(null=True)

    class Meta:
        table_name = "file_chunks"
        indexes = ((("vector_store_id", "file_id", "position"), False),)


FILE_MODELS: tuple[type[BaseModel], ...] = (StoredFile, VectorStore, VectorStoreFile, FileBatch, FileChunk)


def bind_file_models(db: peewee.Database) -> None:
    db.bind(FILE_MODELS)


def table_columns(model: type[BaseModel]) -> dict[str, Any]:
    """Column names by field name (for raw SQL)."""
    return {name: field.column_name for name, field in model._meta.fields.items()}
