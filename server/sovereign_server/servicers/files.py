from __future__ import annotations

from asyncio import to_thread
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.api import httpbody_pb2

from sovereign_assistant.v1 import common_pb2, file_pb2, file_service_pb2, file_service_pb2_grpc
from sovereign_server import convert, validation
from sovereign_server.caller import current_caller
from sovereign_server.errors import InvalidRequestError
from sovereign_server.files import FileService
from sovereign_server.files.render import file_message
from sovereign_server.files.requests import MAX_FILES_PAGE
from sovereign_storage import PageRequest

Context = grpc.aio.ServicerContext[Any, Any]

OCTET_STREAM = "application/octet-stream"


async def _chunks(requests: AsyncIterator[httpbody_pb2.HttpBody]) -> AsyncIterator[tuple[str, bytes]]:
    async for body in requests:
        yield body.content_type, body.data


class FileServicer(file_service_pb2_grpc.FileServiceServicer):
    def __init__(self, files: FileService) -> None:
        self._files = files

    async def UploadFile(
        self, request_iterator: AsyncIterator[httpbody_pb2.HttpBody], context: Context
    ) -> file_pb2.File:
        record = await self._files.upload(current_caller().project_id, _chunks(request_iterator))
        return file_message(record)

    async def ListFiles(
        self, request: file_service_pb2.ListFilesRequest, context: Context
    ) -> file_service_pb2.ListFilesResponse:
        limit = request.limit if request.HasField("limit") else MAX_FILES_PAGE
        if not 1 <= limit <= MAX_FILES_PAGE:
            raise InvalidRequestError(
                f"Invalid 'limit': expected an integer between 1 and {MAX_FILES_PAGE}, but got {limit} instead.",
                param="limit",
                code="integer_out_of_range",
            )
        order = validation.check_one_of("order", request.order or "desc", ("asc", "desc"))
        page = PageRequest(limit=limit, order=order, after=request.after or None)
        store = self._files.store(current_caller().project_id)
        result = await to_thread(store.list_files, page, request.purpose or None)
        return file_service_pb2.ListFilesResponse(
            data=[file_message(record) for record in result.items],
            **convert.list_envelope([record.id for record in result.items], result.has_more),
        )

    async def GetFile(self, request: file_service_pb2.GetFileRequest, context: Context) -> file_pb2.File:
        store = self._files.store(current_caller().project_id)
        return file_message(await to_thread(store.get_file, request.file_id))

    async def DeleteFile(
        self, request: file_service_pb2.DeleteFileRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await self._files.delete_file(current_caller().project_id, request.file_id)
        return common_pb2.DeletionStatus(id=request.file_id, object="file", deleted=True)

    async def GetFileContent(
        self, request: file_service_pb2.GetFileContentRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        _, pieces = await self._files.content(current_caller().project_id, request.file_id)
        first = True
        while True:
            piece = await to_thread(next, pieces, None)
            if piece is None:
                break
            # Only the first message's content type counts: Envoy takes the headers from it.
            yield httpbody_pb2.HttpBody(content_type=OCTET_STREAM if first else "", data=piece)
            first = False
        if first:
            yield httpbody_pb2.HttpBody(content_type=OCTET_STREAM, data=b"")
