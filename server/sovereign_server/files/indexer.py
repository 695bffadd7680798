"""Indexing vector store files in the background: read the file's bytes, extract its text, chunk
it, embed the chunks (with an embeddings backend), store the chunks and mark the file `completed`;
or mark it `failed` with OpenAI's `last_error`.

The work list is the database: every vector store file `in_progress` is a job. So files attached
while the server was stopping, or whose indexing a crash interrupted, are indexed at the next start
(they never stay `in_progress`), and several servers on one database would share the list.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import to_thread

import numpy as np

from sovereign_server.files.chunking import chunk_text
from sovereign_server.files.embeddings import Embedder, EmbeddingError
from sovereign_server.files.extract import ExtractionError, extract_text
from sovereign_storage import BlobStore, FileStore, IndexJob, LastError, NewChunk

logger = logging.getLogger("sovereign.files")

# Jobs read from the database at a time.
BATCH = 16
EXPIRY_SWEEP_SECONDS = 60.0
MISSING_FILE = LastError("server_error", "The file's bytes are missing from the file directory.")
UNEXPECTED = LastError("server_error", "The server had an error while processing the file.")


class Indexer:
    def __init__(self, store: FileStore, blobs: BlobStore, embedder: Embedder | None = None) -> None:
        self._store = store
        self._blobs = blobs
        self._embedder = embedder
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # Seconds spent and bytes indexed, for the benchmark.
        self.indexed_bytes = 0

    async def start(self) -> None:
        orphans = await to_thread(self._store.fail_orphaned_jobs, MISSING_FILE)
        if orphans:
            logger.warning("%d vector store file(s) lost their file while the server was stopped", orphans)
        self._tasks = [
            asyncio.create_task(self._work(), name="file-indexer"),
            asyncio.create_task(self._sweep(), name="file-expiry"),
        ]
        self.wake()

    def wake(self) -> None:
        """New jobs were written: look for them now."""
        self._wake.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def idle(self, seconds: float = 30.0) -> None:
        """Waits until no job is left (for tests and benchmarks)."""
        deadline = time.monotonic() + seconds
        while await to_thread(self._store.pending_jobs, 1):
            if time.monotonic() > deadline:
                raise TimeoutError("indexing did not finish")
            await asyncio.sleep(0.02)

    async def _work(self) -> None:
        while True:
            self._wake.clear()
            try:
                jobs = await to_thread(self._store.pending_jobs, BATCH)
            except Exception:
                logger.exception("reading the indexing jobs failed")
                jobs = []
                await asyncio.sleep(1.0)
            if not jobs:
                await self._wake.wait()
                continue
            for job in jobs:
                await self.index(job)

    async def index(self, job: IndexJob) -> None:
        try:
            chunks = await self._chunks(job)
        except ExtractionError as error:
            await to_thread(self._store.fail_indexing, job, LastError(error.code, error.message))
            return
        except FileNotFoundError:
            await to_thread(self._store.fail_indexing, job, MISSING_FILE)
            return
        except EmbeddingError as error:
            logger.warning("embedding %s failed: %s", job.file_id, error)
            await to_thread(self._store.fail_indexing, job, LastError("server_error", str(error)))
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("indexing %s into %s failed", job.file_id, job.vector_store_id)
            await to_thread(self._store.fail_indexing, job, UNEXPECTED)
            return
        if await to_thread(self._store.finish_indexing, job, chunks):
            self.indexed_bytes += sum(len(chunk.text) for chunk in chunks)

    async def _chunks(self, job: IndexJob) -> list[NewChunk]:
        def split() -> list[NewChunk]:
            text = extract_text(job.filename, self._blobs.read_all(job.sha256))
            return [NewChunk(chunk.text, chunk.tokens) for chunk in chunk_text(text, job.chunking_strategy)]

        chunks = await to_thread(split)
        if self._embedder is None or not chunks:
            return chunks
        vectors = await self._embedder.embed([chunk.text for chunk in chunks])
        return [
            NewChunk(chunk.text, chunk.tokens, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]

    async def _sweep(self) -> None:
        """Vector stores past their expiry become `expired`; files past theirs are deleted."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_SECONDS)
            try:
                now = int(time.time())
                await to_thread(self._store.expire_vector_stores, now)
                for file_id, sha256 in await to_thread(self._store.expired_files_everywhere, now):
                    await to_thread(self._delete_expired, file_id, sha256)
            except Exception:
                logger.exception("the file expiry sweep failed")

    def _delete_expired(self, file_id: str, sha256: str) -> None:
        store = self._store.scoped(self._store.project_of_file(file_id) or self._store.project_id)
        try:
            _, unused = store.delete_file(file_id)
        except Exception:
            return
        if unused:
            self._blobs.delete(sha256)
