"""Synchronous data access for files, vector stores, their files and batches, and chunk search.

Like `Repository`, a `FileStore` sees one project: files and vector stores it creates are that
project's, and lookups and lists see only that project's (another project's ids do not exist). The
methods the indexer and the search service use on behalf of the server (`pending_jobs`,
`finish_indexing`, ...) name vector stores the caller reached through a scoped lookup.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import peewee

from .database import connection_scope, read_transaction, write_transaction
from .errors import NotFoundError
from .file_models import FileBatch, FileChunk, StoredFile, VectorStore, VectorStoreFile, bind_file_models
from .file_records import (
    ChunkRecord,
    ExpiresAfter,
    FileBatchRecord,
    FileCounts,
    FileRecord,
    IndexJob,
    IndexStatus,
    NewChunk,
    NewFile,
    NewVectorStore,
    SearchableFile,
    StoreFileSpec,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from .ids import new_id
from .models import DEFAULT_PROJECT_ID
from .records import Page, PageRequest
from .repository import _fetch_page
from .values import LastError

FILE_PREFIX = "file"
VECTOR_STORE_PREFIX = "vs"
BATCH_PREFIX = "vsfb"
_DAY = 86_400
# Seconds between two writes of a vector store's `last_active_at`.
_TOUCH_INTERVAL = 60
_WORDS = re.compile(r"\w+", re.UNICODE)
# Query words kept for full-text search; a query is rarely longer, and each word costs a lookup.
MAX_QUERY_TERMS = 64


def new_file_id() -> str:
    # OpenAI's file ids are `file-...` (a dash, where other ids have an underscore); clients check it.
    return new_id(FILE_PREFIX).replace("_", "-", 1)


def _now() -> int:
    return int(time.time())


@dataclass(frozen=True)
class LexicalHit:
    chunk_id: int
    # Higher is better; only comparable within one search.
    score: float


class FileStore:
    """Files and vector stores of one project (see the module docstring)."""

    def __init__(self, database: peewee.Database, project_id: str = DEFAULT_PROJECT_ID) -> None:
        self._db = database
        self.project_id = project_id
        bind_file_models(database)

    def scoped(self, project_id: str) -> FileStore:
        return self if project_id == self.project_id else FileStore(self._db, project_id)

    @property
    def is_sqlite(self) -> bool:
        return isinstance(self._db, peewee.SqliteDatabase)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        with connection_scope(self._db), read_transaction(self._db):
            yield

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        with connection_scope(self._db), write_transaction(self._db):
            yield

    # ------------------------------------------------------------------ files

    def create_file(self, new: NewFile) -> FileRecord:
        file_id = new_file_id()
        with self._writing():
            StoredFile.insert(
                id=file_id,
                project_id=self.project_id,
                created_at=_now(),
                bytes=new.bytes,
                filename=new.filename,
                purpose=new.purpose,
                sha256=new.sha256,
                expires_at=new.expires_at,
            ).execute()
            return _file_record(self._file_row(file_id))

    def get_file(self, file_id: str) -> FileRecord:
        with self._reading():
            return _file_record(self._file_row(file_id))

    def list_files(self, page: PageRequest, purpose: str | None = None) -> Page[FileRecord]:
        with self._reading():
            scope = [StoredFile.project_id == self.project_id]
            extra = None if not purpose else StoredFile.purpose == purpose
            rows, has_more = _fetch_page(
                StoredFile, StoredFile.id, StoredFile.created_at, StoredFile.seq, scope, page, extra
            )
            return Page([_file_record(row) for row in rows], has_more)

    def delete_file(self, file_id: str) -> tuple[FileRecord, bool]:
        """Deletes a file and takes it out of every vector store with its chunks. Returns the file,
        and whether its blob is no longer used by any file (the caller then removes it)."""
        with self._writing():
            record = _file_record(self._file_row(file_id))
            stores = [
                row.vector_store_id
                for row in VectorStoreFile.select(VectorStoreFile.vector_store).where(
                    VectorStoreFile.file_id == file_id
                )
            ]
            for store_id in stores:
                self._remove_store_file(store_id, file_id)
            StoredFile.delete().where(StoredFile.id == file_id).execute()
            unused = not StoredFile.select(StoredFile.seq).where(StoredFile.sha256 == record.sha256).exists()
            return record, unused

    def expired_files_everywhere(self, now: int) -> list[tuple[str, str]]:
        """(id, sha256) of the files of every project whose `expires_at` has passed."""
        with self._reading():
            query: Any = StoredFile.select(StoredFile.id, StoredFile.sha256).where(StoredFile.expires_at <= now)
            return [(str(file_id), str(sha256)) for file_id, sha256 in query.tuples()]

    def blob_in_use(self, sha256: str) -> bool:
        """Whether any file, of any project, has these bytes."""
        with self._reading():
            return bool(StoredFile.select(StoredFile.seq).where(StoredFile.sha256 == sha256).exists())

    def project_of_file(self, file_id: str) -> str | None:
        with self._reading():
            row = StoredFile.select(StoredFile.project_id).where(StoredFile.id == file_id).first()
            return None if row is None else str(row.project_id)

    def _file_row(self, file_id: str) -> StoredFile:
        row = StoredFile.get_or_none(StoredFile.id == file_id, StoredFile.project_id == self.project_id)
        if row is None:
            raise NotFoundError("file", file_id)
        return row

    # ------------------------------------------------------------------ vector stores

    def create_vector_store(self, new: NewVectorStore, files: Sequence[StoreFileSpec] = ()) -> VectorStoreRecord:
        store_id = new_id(VECTOR_STORE_PREFIX)
        now = _now()
        with self._writing():
            VectorStore.insert(
                id=store_id,
                project_id=self.project_id,
                created_at=now,
                name=new.name,
                description=new.description,
                metadata=new.metadata,
                expires_after_days=new.expires_after.days if new.expires_after else None,
                expires_at=now + new.expires_after.days * _DAY if new.expires_after else None,
                last_active_at=now,
                expired=False,
            ).execute()
            self._attach(store_id, files, None, now)
            return self._store_record(self._store_row(store_id))

    def get_vector_store(self, store_id: str) -> VectorStoreRecord:
        with self._reading():
            return self._store_record(self._store_row(store_id))

    def list_vector_stores(self, page: PageRequest) -> Page[VectorStoreRecord]:
        with self._reading():
            scope = [VectorStore.project_id == self.project_id]
            rows, has_more = _fetch_page(
                VectorStore, VectorStore.id, VectorStore.created_at, VectorStore.seq, scope, page
            )
            return Page([self._store_record(row) for row in rows], has_more)

    def update_vector_store(
        self,
        store_id: str,
        *,
        name: str | None = None,
        clear_name: bool = False,
        metadata: dict[str, str] | None = None,
        expires_after: ExpiresAfter | None = None,
        clear_expiry: bool = False,
    ) -> VectorStoreRecord:
        with self._writing():
            row = self._store_row(store_id)
            values: dict[peewee.Field[Any], Any] = {}
            if name is not None or clear_name:
                values[VectorStore.name] = name
            if metadata is not None:
                values[VectorStore.metadata] = metadata
            if expires_after is not None:
                anchor = row.last_active_at or _now()
                values[VectorStore.expires_after_days] = expires_after.days
                values[VectorStore.expires_at] = anchor + expires_after.days * _DAY
            elif clear_expiry:
                values[VectorStore.expires_after_days] = None
                values[VectorStore.expires_at] = None
            if values:
                VectorStore.update(values).where(VectorStore.id == store_id).execute()
            return self._store_record(self._store_row(store_id))

    def delete_vector_store(self, store_id: str) -> None:
        with self._writing():
            self._store_row(store_id)
            FileChunk.delete().where(FileChunk.vector_store_id == store_id).execute()
            VectorStoreFile.delete().where(VectorStoreFile.vector_store == store_id).execute()
            FileBatch.delete().where(FileBatch.vector_store == store_id).execute()
            VectorStore.delete().where(VectorStore.id == store_id).execute()

    def touch_vector_stores(self, store_ids: Collection[str]) -> list[str]:
        """Marks the stores active now (a search used them), moving their expiry; returns those of the
        project that exist and have not expired. A store marked within the last minute is left as it
        is: a write per search would make searches queue on SQLite's one writer."""
        now = _now()
        with self._reading():
            query = VectorStore.select().where(
                VectorStore.id.in_(list(store_ids)), VectorStore.project_id == self.project_id
            )
            rows = list(query)
        stale = [row for row in rows if (row.last_active_at or 0) < now - _TOUCH_INTERVAL]
        if stale:
            with self._writing():
                for row in stale:
                    values: dict[peewee.Field[Any], Any] = {VectorStore.last_active_at: now}
                    if row.expires_after_days is not None and not row.expired:
                        values[VectorStore.expires_at] = now + row.expires_after_days * _DAY
                    VectorStore.update(values).where(VectorStore.id == row.id).execute()
        return [row.id for row in rows if not row.expired]

    def expire_vector_stores(self, now: int) -> list[str]:
        """Marks expired, across projects, the stores whose `expires_at` has passed; returns their ids."""
        with self._writing():
            rows = [
                row.id
                for row in VectorStore.select(VectorStore.id).where(
                    VectorStore.expired == False,  # noqa: E712 (peewee builds SQL from ==)
                    VectorStore.expires_at <= now,
                )
            ]
            if rows:
                VectorStore.update({VectorStore.expired: True}).where(VectorStore.id.in_(rows)).execute()
            return rows

    def _store_row(self, store_id: str) -> VectorStore:
        row = VectorStore.get_or_none(VectorStore.id == store_id, VectorStore.project_id == self.project_id)
        if row is None:
            raise NotFoundError("vector store", store_id)
        return row

    def _store_record(self, row: VectorStore) -> VectorStoreRecord:
        counts = _counts(VectorStoreFile.vector_store == row.id)
        usage = (
            VectorStoreFile.select(peewee.fn.COALESCE(peewee.fn.SUM(VectorStoreFile.usage_bytes), 0))
            .where(VectorStoreFile.vector_store == row.id)
            .scalar()
        )
        return VectorStoreRecord(
            id=row.id,
            created_at=row.created_at,
            name=row.name,
            description=row.description,
            metadata=row.metadata,
            expires_after=ExpiresAfter(row.expires_after_days) if row.expires_after_days is not None else None,
            expires_at=row.expires_at,
            last_active_at=row.last_active_at,
            expired=row.expired,
            file_counts=counts,
            usage_bytes=int(usage or 0),
        )

    # ------------------------------------------------------------------ files of vector stores

    def add_files(
        self, store_id: str, files: Sequence[StoreFileSpec], batch_id: str | None = None
    ) -> list[VectorStoreFileRecord]:
        """Attaches files (to be indexed) to a store; a file already attached starts over with the
        new settings. NotFoundError if the store or a file does not exist."""
        with self._writing():
            self._store_row(store_id)
            self._attach(store_id, files, batch_id, _now())
            rows = VectorStoreFile.select().where(
                VectorStoreFile.vector_store == store_id, VectorStoreFile.file_id.in_([f.file_id for f in files])
            )
            return [_store_file_record(row) for row in rows]

    def _attach(self, store_id: str, files: Sequence[StoreFileSpec], batch_id: str | None, now: int) -> None:
        if not files:
            return
        ids = list(dict.fromkeys(spec.file_id for spec in files))
        known = {
            row.id
            for row in StoredFile.select(StoredFile.id).where(
                StoredFile.id.in_(ids), StoredFile.project_id == self.project_id
            )
        }
        for file_id in ids:
            if file_id not in known:
                raise NotFoundError("file", file_id)
        for spec in {spec.file_id: spec for spec in files}.values():
            self._remove_store_file(store_id, spec.file_id)
            VectorStoreFile.insert(
                vector_store=store_id,
                file_id=spec.file_id,
                created_at=now,
                status=IndexStatus.IN_PROGRESS,
                last_error=None,
                chunking_strategy=spec.chunking_strategy,
                attributes=spec.attributes,
                usage_bytes=0,
                batch_id=batch_id,
            ).execute()

    def get_store_file(self, store_id: str, file_id: str) -> VectorStoreFileRecord:
        with self._reading():
            self._store_row(store_id)
            return _store_file_record(self._store_file_row(store_id, file_id))

    def list_store_files(
        self,
        store_id: str,
        page: PageRequest,
        status: IndexStatus | None = None,
        batch_id: str | None = None,
    ) -> Page[VectorStoreFileRecord]:
        with self._reading():
            self._store_row(store_id)
            scope = [VectorStoreFile.vector_store == store_id]
            if batch_id is not None:
                self._batch_row(store_id, batch_id)
                scope.append(VectorStoreFile.batch_id == batch_id)
            extra = None if status is None else VectorStoreFile.status == status
            rows, has_more = _fetch_page(
                VectorStoreFile,
                VectorStoreFile.file_id,
                VectorStoreFile.created_at,
                VectorStoreFile.seq,
                scope,
                page,
                extra,
            )
            return Page([_store_file_record(row) for row in rows], has_more)

    def update_store_file(
        self, store_id: str, file_id: str, attributes: dict[str, Any] | None
    ) -> VectorStoreFileRecord:
        with self._writing():
            self._store_row(store_id)
            self._store_file_row(store_id, file_id)
            VectorStoreFile.update({VectorStoreFile.attributes: attributes}).where(
                VectorStoreFile.vector_store == store_id, VectorStoreFile.file_id == file_id
            ).execute()
            return _store_file_record(self._store_file_row(store_id, file_id))

    def delete_store_file(self, store_id: str, file_id: str) -> None:
        with self._writing():
            self._store_row(store_id)
            self._store_file_row(store_id, file_id)
            self._remove_store_file(store_id, file_id)

    def store_file_chunks(self, store_id: str, file_id: str) -> list[str]:
        """The texts of a vector store file's chunks, in order."""
        with self._reading():
            self._store_row(store_id)
            self._store_file_row(store_id, file_id)
            query = (
                FileChunk.select(FileChunk.text)
                .where(FileChunk.vector_store_id == store_id, FileChunk.file_id == file_id)
                .order_by(FileChunk.position)
            )
            return [row.text for row in query]

    def _remove_store_file(self, store_id: str, file_id: str) -> None:
        FileChunk.delete().where(FileChunk.vector_store_id == store_id, FileChunk.file_id == file_id).execute()
        VectorStoreFile.delete().where(
            VectorStoreFile.vector_store == store_id, VectorStoreFile.file_id == file_id
        ).execute()

    def _store_file_row(self, store_id: str, file_id: str) -> VectorStoreFile:
        row = VectorStoreFile.get_or_none(VectorStoreFile.vector_store == store_id, VectorStoreFile.file_id == file_id)
        if row is None:
            raise NotFoundError("vector store file", file_id)
        return row

    # ------------------------------------------------------------------ file batches

    def create_batch(self, store_id: str, files: Sequence[StoreFileSpec]) -> FileBatchRecord:
        batch_id = new_id(BATCH_PREFIX)
        now = _now()
        with self._writing():
            self._store_row(store_id)
            FileBatch.insert(id=batch_id, vector_store=store_id, created_at=now, cancelled=False).execute()
            self._attach(store_id, files, batch_id, now)
            return _batch_record(self._batch_row(store_id, batch_id))

    def get_batch(self, store_id: str, batch_id: str) -> FileBatchRecord:
        with self._reading():
            self._store_row(store_id)
            return _batch_record(self._batch_row(store_id, batch_id))

    def cancel_batch(self, store_id: str, batch_id: str) -> FileBatchRecord:
        """Cancels the batch's files still in progress (the indexer skips them)."""
        with self._writing():
            self._store_row(store_id)
            self._batch_row(store_id, batch_id)
            FileBatch.update({FileBatch.cancelled: True}).where(FileBatch.id == batch_id).execute()
            VectorStoreFile.update({VectorStoreFile.status: IndexStatus.CANCELLED}).where(
                VectorStoreFile.batch_id == batch_id, VectorStoreFile.status == IndexStatus.IN_PROGRESS
            ).execute()
            return _batch_record(self._batch_row(store_id, batch_id))

    def _batch_row(self, store_id: str, batch_id: str) -> FileBatch:
        row = FileBatch.get_or_none(FileBatch.id == batch_id, FileBatch.vector_store == store_id)
        if row is None:
            raise NotFoundError("file batch", batch_id)
        return row

    # ------------------------------------------------------------------ indexing (for the server's indexer)

    def pending_jobs(self, limit: int | None = None) -> list[IndexJob]:
        """Vector store files waiting to be indexed, across projects, oldest first."""
        with self._reading():
            query: Any = (
                VectorStoreFile.select(VectorStoreFile, VectorStore.project_id, StoredFile.filename, StoredFile.sha256)
                .join(VectorStore, on=(VectorStoreFile.vector_store == VectorStore.id))
                .switch(VectorStoreFile)
                .join(StoredFile, on=(VectorStoreFile.file_id == StoredFile.id))
                .where(VectorStoreFile.status == IndexStatus.IN_PROGRESS)
                .order_by(VectorStoreFile.seq)
                .objects()
            )
            if limit is not None:
                query = query.limit(limit)
            return [
                IndexJob(
                    project_id=row.project_id,
                    vector_store_id=row.vector_store_id,
                    file_id=row.file_id,
                    filename=row.filename,
                    sha256=row.sha256,
                    chunking_strategy=row.chunking_strategy,
                )
                for row in query
            ]

    def fail_orphaned_jobs(self, error: LastError) -> int:
        """Fails the vector store files in progress whose file is gone (nothing can index them)."""
        with self._writing():
            orphans = VectorStoreFile.select(VectorStoreFile.seq).where(
                VectorStoreFile.status == IndexStatus.IN_PROGRESS,
                VectorStoreFile.file_id.not_in(StoredFile.select(StoredFile.id)),
            )
            updated: int = (
                VectorStoreFile.update({VectorStoreFile.status: IndexStatus.FAILED, VectorStoreFile.last_error: error})
                .where(VectorStoreFile.seq.in_(orphans))
                .execute()
            )
            return updated

    def finish_indexing(self, job: IndexJob, chunks: Sequence[NewChunk]) -> bool:
        """Stores a file's chunks and marks it completed, in one transaction. False (and nothing
        written) if the file is no longer waiting: removed, cancelled, or attached again meanwhile."""
        with self._writing():
            row = VectorStoreFile.get_or_none(
                VectorStoreFile.vector_store == job.vector_store_id, VectorStoreFile.file_id == job.file_id
            )
            if (
                row is None
                or row.status is not IndexStatus.IN_PROGRESS
                or row.chunking_strategy != job.chunking_strategy
            ):
                return False
            FileChunk.delete().where(
                FileChunk.vector_store_id == job.vector_store_id, FileChunk.file_id == job.file_id
            ).execute()
            rows = [
                {
                    "vector_store_id": job.vector_store_id,
                    "file_id": job.file_id,
                    "position": position,
                    "text": chunk.text,
                    "tokens": chunk.tokens,
                    "embedding": chunk.embedding,
                }
                for position, chunk in enumerate(chunks)
            ]
            for start in range(0, len(rows), 500):
                FileChunk.insert_many(rows[start : start + 500]).execute()
            usage = sum(len(chunk.text.encode()) for chunk in chunks)
            VectorStoreFile.update(
                {VectorStoreFile.status: IndexStatus.COMPLETED, VectorStoreFile.usage_bytes: usage}
            ).where(VectorStoreFile.seq == row.seq).execute()
            return True

    def fail_indexing(self, job: IndexJob, error: LastError) -> bool:
        with self._writing():
            updated: int = (
                VectorStoreFile.update({VectorStoreFile.status: IndexStatus.FAILED, VectorStoreFile.last_error: error})
                .where(
                    VectorStoreFile.vector_store == job.vector_store_id,
                    VectorStoreFile.file_id == job.file_id,
                    VectorStoreFile.status == IndexStatus.IN_PROGRESS,
                )
                .execute()
            )
            return updated > 0

    # ------------------------------------------------------------------ search (for the search service)

    def searchable_files(self, store_ids: Collection[str]) -> list[SearchableFile]:
        """The completed files of this project's stores among `store_ids`."""
        with self._reading():
            query: Any = (
                VectorStoreFile.select(VectorStoreFile, StoredFile.filename)
                .join(VectorStore, on=(VectorStoreFile.vector_store == VectorStore.id))
                .switch(VectorStoreFile)
                .join(StoredFile, on=(VectorStoreFile.file_id == StoredFile.id))
                .where(
                    VectorStoreFile.vector_store.in_(list(store_ids)),
                    VectorStore.project_id == self.project_id,
                    VectorStoreFile.status == IndexStatus.COMPLETED,
                )
                .order_by(VectorStoreFile.seq)
                .objects()
            )
            return [SearchableFile(row.vector_store_id, row.file_id, row.filename, row.attributes) for row in query]

    def lexical_search(
        self,
        store_ids: Collection[str],
        query: str,
        limit: int,
        file_ids: Collection[str] | None = None,
    ) -> list[LexicalHit]:
        """The best `limit` chunks of the stores for `query` by full-text rank (BM25 on SQLite,
        `ts_rank` on PostgreSQL); any word of the query may match. `file_ids` narrows the files."""
        terms = list(dict.fromkeys(word.lower() for word in _WORDS.findall(query)))[:MAX_QUERY_TERMS]
        if not terms or not store_ids or (file_ids is not None and not file_ids):
            return []
        stores = list(store_ids)
        files = None if file_ids is None else list(file_ids)
        param = self._db.param
        where = f"c.vector_store_id IN ({', '.join(param for _ in stores)})"
        params: list[Any] = []
        if files is not None:
            where += f" AND c.file_id IN ({', '.join(param for _ in files)})"
        if self.is_sqlite:
            match = " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)
            sql = (
                "SELECT c.seq, -bm25(file_chunks_fts) AS score FROM file_chunks_fts "
                "JOIN file_chunks c ON c.seq = file_chunks_fts.rowid "
                f"WHERE file_chunks_fts MATCH {param} AND {where} ORDER BY score DESC LIMIT {param}"
            )
            params = [match, *stores, *(files or []), limit]
        else:
            # Words only (the pattern above): no tsquery operator can slip in.
            tsquery = " | ".join(terms)
            sql = (
                "SELECT c.seq, ts_rank(c.tsv, q) AS score FROM file_chunks c, "
                f"to_tsquery('english', {param}) q WHERE c.tsv @@ q AND {where} ORDER BY score DESC LIMIT {param}"
            )
            params = [tsquery, *stores, *(files or []), limit]
        with self._reading():
            execute: Any = self._db.execute_sql
            return [LexicalHit(int(seq), float(score)) for seq, score in execute(sql, params)]

    def chunks(self, chunk_ids: Collection[int]) -> dict[int, ChunkRecord]:
        if not chunk_ids:
            return {}
        with self._reading():
            query = FileChunk.select(
                FileChunk.seq, FileChunk.vector_store_id, FileChunk.file_id, FileChunk.position, FileChunk.text
            ).where(FileChunk.seq.in_(list(chunk_ids)))
            return {
                row.seq: ChunkRecord(row.seq, row.vector_store_id, row.file_id, row.position, row.text) for row in query
            }

    def chunk_version(self, store_id: str) -> tuple[int, int]:
        """Changes whenever a chunk of the store is added or removed (for caches of its embeddings)."""
        with self._reading():
            row = (
                FileChunk.select(peewee.fn.COUNT(FileChunk.seq), peewee.fn.COALESCE(peewee.fn.SUM(FileChunk.seq), 0))
                .where(FileChunk.vector_store_id == store_id)
                .tuples()
                .first()
            )
            return (int(row[0]), int(row[1])) if row else (0, 0)

    def chunk_embeddings(self, store_id: str) -> list[tuple[int, str, bytes]]:
        """(chunk id, file id, embedding bytes) of the store's embedded chunks."""
        with self._reading():
            query: Any = FileChunk.select(FileChunk.seq, FileChunk.file_id, FileChunk.embedding).where(
                FileChunk.vector_store_id == store_id, FileChunk.embedding.is_null(False)
            )
            return [(int(seq), str(file_id), bytes(embedding)) for seq, file_id, embedding in query.tuples()]


def _counts(condition: peewee.Expression) -> FileCounts:
    query: Any = (
        VectorStoreFile.select(VectorStoreFile.status, peewee.fn.COUNT(VectorStoreFile.seq))
        .where(condition)
        .group_by(VectorStoreFile.status)
    )
    return FileCounts.of({str(status): int(count) for status, count in query.tuples()})


def _file_record(row: StoredFile) -> FileRecord:
    return FileRecord(
        id=row.id,
        created_at=row.created_at,
        bytes=row.bytes,
        filename=row.filename,
        purpose=row.purpose,
        sha256=row.sha256,
        expires_at=row.expires_at,
    )


def _store_file_record(row: VectorStoreFile) -> VectorStoreFileRecord:
    return VectorStoreFileRecord(
        id=row.file_id,
        vector_store_id=row.vector_store_id,
        created_at=row.created_at,
        status=row.status,
        last_error=row.last_error,
        chunking_strategy=row.chunking_strategy,
        attributes=row.attributes,
        usage_bytes=row.usage_bytes,
        batch_id=row.batch_id,
    )


def _batch_record(row: FileBatch) -> FileBatchRecord:
    return FileBatchRecord(
        id=row.id,
        vector_store_id=row.vector_store_id,
        created_at=row.created_at,
        cancelled=row.cancelled,
        file_counts=_counts(VectorStoreFile.batch_id == row.id),
    )
