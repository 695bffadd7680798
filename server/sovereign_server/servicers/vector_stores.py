from __future__ import annotations

from asyncio import to_thread
from typing import Any

import grpc

from sovereign_assistant.v1 import common_pb2, vector_store_pb2, vector_store_service_pb2, vector_store_service_pb2_grpc
from sovereign_server import convert, validation
from sovereign_server.caller import current_caller
from sovereign_server.errors import InvalidRequestError
from sovereign_server.files import FileService, SearchRequest
from sovereign_server.files import requests as checks
from sovereign_server.files.filters import check_filter
from sovereign_server.files.render import (
    batch_message,
    search_results,
    store_file_message,
    text_parts,
    vector_store_message,
)
from sovereign_storage import FileStore, NewVectorStore, StoreFileSpec

Context = grpc.aio.ServicerContext[Any, Any]
Service = vector_store_service_pb2


class VectorStoreServicer(vector_store_service_pb2_grpc.VectorStoreServiceServicer):
    def __init__(self, files: FileService) -> None:
        self._files = files

    @property
    def _project(self) -> str:
        return current_caller().project_id

    @property
    def _store(self) -> FileStore:
        return self._files.store(self._project)

    # ------------------------------------------------------------------ vector stores

    async def CreateVectorStore(
        self, request: Service.CreateVectorStoreRequest, context: Context
    ) -> vector_store_pb2.VectorStore:
        strategy = checks.check_chunking_strategy(convert.from_value(request, "chunking_strategy"))
        file_ids = checks.check_file_ids(request.file_ids, "file_ids", checks.MAX_STORE_FILE_IDS)
        new = NewVectorStore(
            name=validation.check_max_length("name", request.name if request.HasField("name") else None, 256),
            description=validation.check_max_length(
                "description", request.description if request.HasField("description") else None, 512
            ),
            metadata=validation.check_metadata(convert.from_value(request, "metadata")),
            expires_after=checks.check_store_expiry(convert.from_value(request, "expires_after")),
        )
        files = [StoreFileSpec(file_id, strategy) for file_id in file_ids]
        return vector_store_message(await self._files.create_vector_store(self._project, new, files))

    async def ListVectorStores(
        self, request: Service.ListVectorStoresRequest, context: Context
    ) -> Service.ListVectorStoresResponse:
        page = await to_thread(self._store.list_vector_stores, convert.page_request(request))
        return Service.ListVectorStoresResponse(
            data=[vector_store_message(record) for record in page.items],
            **convert.list_envelope([record.id for record in page.items], page.has_more),
        )

    async def GetVectorStore(
        self, request: Service.GetVectorStoreRequest, context: Context
    ) -> vector_store_pb2.VectorStore:
        return vector_store_message(await to_thread(self._store.get_vector_store, request.vector_store_id))

    async def ModifyVectorStore(
        self, request: Service.ModifyVectorStoreRequest, context: Context
    ) -> vector_store_pb2.VectorStore:
        changes: dict[str, Any] = {}
        if request.HasField("name"):
            name = convert.from_value(request, "name")
            if name is not None and not isinstance(name, str):
                raise validation.invalid_type("name", "a string or null", name)
            changes["name"] = validation.check_max_length("name", name, 256)
            changes["clear_name"] = name is None
        if request.HasField("expires_after"):
            expiry = checks.check_store_expiry(convert.from_value(request, "expires_after"))
            changes["expires_after"] = expiry
            changes["clear_expiry"] = expiry is None
        if request.HasField("metadata"):
            changes["metadata"] = validation.check_metadata(convert.from_value(request, "metadata"))
        record = await to_thread(lambda: self._store.update_vector_store(request.vector_store_id, **changes))
        return vector_store_message(record)

    async def DeleteVectorStore(
        self, request: Service.DeleteVectorStoreRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await self._files.delete_vector_store(self._project, request.vector_store_id)
        return common_pb2.DeletionStatus(id=request.vector_store_id, object="vector_store.deleted", deleted=True)

    # ------------------------------------------------------------------ files of a vector store

    async def CreateVectorStoreFile(
        self, request: Service.CreateVectorStoreFileRequest, context: Context
    ) -> vector_store_pb2.VectorStoreFile:
        if not request.file_id:
            raise validation.missing_parameter("file_id")
        spec = StoreFileSpec(
            request.file_id,
            checks.check_chunking_strategy(convert.from_value(request, "chunking_strategy")),
            checks.check_attributes(convert.from_value(request, "attributes")),
        )
        records = await self._files.add_files(self._project, request.vector_store_id, [spec])
        return store_file_message(records[0])

    async def ListVectorStoreFiles(
        self, request: Service.ListVectorStoreFilesRequest, context: Context
    ) -> Service.ListVectorStoreFilesResponse:
        status = checks.check_status_filter(request.filter)
        page = await to_thread(
            self._store.list_store_files, request.vector_store_id, convert.page_request(request), status
        )
        return Service.ListVectorStoreFilesResponse(
            data=[store_file_message(record) for record in page.items],
            **convert.list_envelope([record.id for record in page.items], page.has_more),
        )

    async def GetVectorStoreFile(
        self, request: Service.GetVectorStoreFileRequest, context: Context
    ) -> vector_store_pb2.VectorStoreFile:
        record = await to_thread(self._store.get_store_file, request.vector_store_id, request.file_id)
        return store_file_message(record)

    async def UpdateVectorStoreFile(
        self, request: Service.UpdateVectorStoreFileRequest, context: Context
    ) -> vector_store_pb2.VectorStoreFile:
        attributes = checks.check_attributes(convert.from_value(request, "attributes"))
        record = await to_thread(self._store.update_store_file, request.vector_store_id, request.file_id, attributes)
        return store_file_message(record)

    async def DeleteVectorStoreFile(
        self, request: Service.DeleteVectorStoreFileRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await to_thread(self._store.delete_store_file, request.vector_store_id, request.file_id)
        return common_pb2.DeletionStatus(id=request.file_id, object="vector_store.file.deleted", deleted=True)

    async def GetVectorStoreFileContent(
        self, request: Service.GetVectorStoreFileContentRequest, context: Context
    ) -> Service.VectorStoreFileContent:
        texts = await to_thread(self._store.store_file_chunks, request.vector_store_id, request.file_id)
        content = Service.VectorStoreFileContent(
            object="vector_store.file_content.page", data=text_parts(texts), has_more=False
        )
        content.next_page.CopyFrom(convert.to_value(None))
        return content

    # ------------------------------------------------------------------ file batches

    async def CreateFileBatch(
        self, request: Service.CreateFileBatchRequest, context: Context
    ) -> vector_store_pb2.VectorStoreFileBatch:
        if request.file_ids and request.files:
            raise InvalidRequestError(
                "'file_ids' and 'files' are mutually exclusive.", param="files", code="invalid_value"
            )
        if request.files:
            checks.check_file_ids([f.file_id for f in request.files], "files", checks.MAX_BATCH_FILES)
            specs = []
            for index, item in enumerate(request.files):
                param = f"files[{index}]"
                if not item.file_id:
                    raise validation.missing_parameter(f"{param}.file_id")
                specs.append(
                    StoreFileSpec(
                        item.file_id,
                        checks.check_chunking_strategy(
                            convert.from_value(item, "chunking_strategy"), f"{param}.chunking_strategy"
                        ),
                        checks.check_attributes(convert.from_value(item, "attributes"), f"{param}.attributes"),
                    )
                )
        else:
            file_ids = checks.check_file_ids(request.file_ids, "file_ids", checks.MAX_BATCH_FILES, required=True)
            strategy = checks.check_chunking_strategy(convert.from_value(request, "chunking_strategy"))
            attributes = checks.check_attributes(convert.from_value(request, "attributes"))
            specs = [StoreFileSpec(file_id, strategy, attributes) for file_id in file_ids]
        return batch_message(await self._files.create_batch(self._project, request.vector_store_id, specs))

    async def GetFileBatch(
        self, request: Service.GetFileBatchRequest, context: Context
    ) -> vector_store_pb2.VectorStoreFileBatch:
        return batch_message(await to_thread(self._store.get_batch, request.vector_store_id, request.batch_id))

    async def CancelFileBatch(
        self, request: Service.CancelFileBatchRequest, context: Context
    ) -> vector_store_pb2.VectorStoreFileBatch:
        return batch_message(await to_thread(self._store.cancel_batch, request.vector_store_id, request.batch_id))

    async def ListFileBatchFiles(
        self, request: Service.ListFileBatchFilesRequest, context: Context
    ) -> Service.ListVectorStoreFilesResponse:
        status = checks.check_status_filter(request.filter)
        page = await to_thread(
            self._store.list_store_files,
            request.vector_store_id,
            convert.page_request(request),
            status,
            request.batch_id,
        )
        return Service.ListVectorStoreFilesResponse(
            data=[store_file_message(record) for record in page.items],
            **convert.list_envelope([record.id for record in page.items], page.has_more),
        )

    # ------------------------------------------------------------------ search

    async def SearchVectorStore(
        self, request: Service.SearchVectorStoreRequest, context: Context
    ) -> Service.SearchVectorStoreResponse:
        queries = checks.check_queries(convert.from_value(request, "query"))
        search = SearchRequest(
            vector_store_ids=(request.vector_store_id,),
            queries=queries,
            max_num_results=checks.check_max_results(
                request.max_num_results if request.HasField("max_num_results") else None
            ),
            score_threshold=checks.check_search_ranking(convert.from_value(request, "ranking_options")),
            filters=check_filter(convert.from_value(request, "filters")) if request.HasField("filters") else None,
        )
        # Unknown ids are a 404, as for every other route of the store.
        await to_thread(self._store.get_vector_store, request.vector_store_id)
        hits = await self._files.search(self._project, search)
        response = Service.SearchVectorStoreResponse(
            object="vector_store.search_results.page",
            search_query=list(queries),
            data=search_results(hits),
            has_more=False,
        )
        response.next_page.CopyFrom(convert.to_value(None))
        return response
