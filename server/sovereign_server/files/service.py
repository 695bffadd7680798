"""Files and vector stores as the servicers (and the runs' `file_search` tool) use them: the
database (`FileStore`), the file directory (`BlobStore`), the background `Indexer` and the
`SearchService`, behind one object that every call names its project to."""

from __future__ import annotations

import logging
import time
from asyncio import to_thread
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sovereign_server.errors import InvalidRequestError
from sovereign_server.files import requests
from sovereign_server.files.embeddings import Embedder
from sovereign_server.files.indexer import Indexer
from sovereign_server.files.search import SearchHit, SearchRequest, SearchService
from sovereign_server.files.upload import receive_upload
from sovereign_storage import (
    BlobStore,
    FileBatchRecord,
    FileRecord,
    FileStore,
    NewFile,
    NewVectorStore,
    StoreFileSpec,
    VectorStoreFileRecord,
    VectorStoreRecord,
)
from sovereign_storage import NotFoundError as StoredNotFound

logger = logging.getLogger("sovereign.files")

# OpenAI's limit on one file.
DEFAULT_MAX_UPLOAD_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class FileSettings:
    # The file directory; None: `files/` beside the SQLite database (or `data/files`).
    directory: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES


class FileService:
    def __init__(self, store: FileStore, settings: FileSettings, embedder: Embedder | None = None) -> None:
        self._store = store
        self.settings = settings
        self.blobs = BlobStore(settings.directory)
        self.indexer = Indexer(store, self.blobs, embedder)
        self.search_service = SearchService(store, embedder)
        self._embedder = embedder

    async def start(self) -> None:
        await self.indexer.start()

    async def stop(self) -> None:
        await self.indexer.stop()
        if self._embedder is not None:
            await self._embedder.aclose()

    def store(self, project_id: str) -> FileStore:
        return self._store.scoped(project_id)

    # ------------------------------------------------------------------ files

    async def upload(self, project_id: str, chunks: AsyncIterator[tuple[str, bytes]]) -> FileRecord:
        upload = await receive_upload(chunks, self.blobs, self.settings.max_upload_bytes)
        try:
            purpose = requests.check_purpose(upload.fields.get("purpose"))
            expires_in = requests.check_file_expiry(upload.fields)
            if upload.sha256 is None or upload.filename is None:
                raise InvalidRequestError(
                    "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
                )
        except InvalidRequestError:
            if upload.sha256 is not None:
                await to_thread(self._forget_blob_if_unused, upload.sha256)
            raise
        expires_at = int(time.time()) + expires_in if expires_in is not None else None
        new = NewFile(upload.filename, purpose, upload.size, upload.sha256, expires_at)
        return await to_thread(self.store(project_id).create_file, new)

    def _forget_blob_if_unused(self, sha256: str) -> None:
        if not self._store.blob_in_use(sha256):
            self.blobs.delete(sha256)

    async def delete_file(self, project_id: str, file_id: str) -> None:
        record, unused = await to_thread(self.store(project_id).delete_file, file_id)
        if unused:
            await to_thread(self.blobs.delete, record.sha256)

    async def content(self, project_id: str, file_id: str) -> tuple[FileRecord, Iterator[bytes]]:
        record = await to_thread(self.store(project_id).get_file, file_id)
        return record, self.blobs.read(record.sha256)

    # ------------------------------------------------------------------ vector stores

    async def create_vector_store(
        self, project_id: str, new: NewVectorStore, files: Sequence[StoreFileSpec] = ()
    ) -> VectorStoreRecord:
        record = await to_thread(self.store(project_id).create_vector_store, new, files)
        self.indexer.wake()
        return record

    async def add_files(
        self, project_id: str, store_id: str, files: Sequence[StoreFileSpec]
    ) -> list[VectorStoreFileRecord]:
        records = await to_thread(self.store(project_id).add_files, store_id, files)
        self.indexer.wake()
        return records

    async def create_batch(self, project_id: str, store_id: str, files: Sequence[StoreFileSpec]) -> FileBatchRecord:
        record = await to_thread(self.store(project_id).create_batch, store_id, files)
        self.indexer.wake()
        return record

    async def delete_vector_store(self, project_id: str, store_id: str) -> None:
        await to_thread(self.store(project_id).delete_vector_store, store_id)
        self.search_service.forget(store_id)

    async def search(self, project_id: str, request: SearchRequest) -> list[SearchHit]:
        return await self.search_service.search(project_id, request)

    async def inline_vector_stores(
        self, project_id: str, tool_resources: dict[str, Any], param: str = "tool_resources"
    ) -> dict[str, Any]:
        """`tool_resources` with each `file_search.vector_stores` helper (`{file_ids, chunking_strategy,
        metadata}`, as `validation.check_tool_resources` left it) created as a vector store and named
        in `vector_store_ids` instead."""
        search = tool_resources.get("file_search")
        if not search or not search.get("vector_stores"):
            return tool_resources
        helpers_param = f"{param}.file_search.vector_stores"
        created = []
        for index, helper in enumerate(search["vector_stores"]):
            strategy = requests.check_chunking_strategy(
                helper.get("chunking_strategy"), f"{helpers_param}[{index}].chunking_strategy"
            )
            files = [StoreFileSpec(file_id, strategy) for file_id in helper["file_ids"]]
            created.append((NewVectorStore(metadata=helper.get("metadata", {})), files))
        ids = list(search.get("vector_store_ids", []))
        for new, files in created:
            ids.append((await self.create_vector_store(project_id, new, files)).id)
        return {**tool_resources, "file_search": {"vector_store_ids": ids}}


async def inline_vector_stores(
    files: FileService | None, project_id: str, tool_resources: dict[str, Any], param: str = "tool_resources"
) -> dict[str, Any]:
    """`FileService.inline_vector_stores`, or a 400 for a helper when the server has no files."""
    search = tool_resources.get("file_search") or {}
    if files is None:
        if search.get("vector_stores"):
            raise InvalidRequestError(
                f"Invalid '{param}.file_search.vector_stores': this server does not store files.",
                param=f"{param}.file_search.vector_stores",
                code="unsupported_parameter",
            )
        return tool_resources
    return await files.inline_vector_stores(project_id, tool_resources, param)


class FileImages:
    """The Files API as the run layer's `ImageFiles`: where `image_file` content parts are read."""

    def __init__(self, files: FileService) -> None:
        self._files = files

    def read(self, project_id: str, file_id: str) -> tuple[bytes, str] | None:
        try:
            record = self._files.store(project_id).get_file(file_id)
        except StoredNotFound:
            return None
        # The media type the bytes say: uploads carry no trustworthy one.
        return self._files.blobs.read_all(record.sha256), "application/octet-stream"
