from __future__ import annotations

from asyncio import to_thread
from typing import Any

import grpc

from sovereign_assistant.v1 import (
    common_pb2,
    message_pb2,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from sovereign_server import convert, validation
from sovereign_server.caller import current_caller
from sovereign_server.errors import InvalidRequestError
from sovereign_server.files.service import FileService, inline_vector_stores
from sovereign_server.runs.images import ImageFiles, NoImageFiles, check_image_files, image_file_references
from sovereign_server.servicers.scope import CallerScoped
from sovereign_storage import Repository

Context = grpc.aio.ServicerContext[Any, Any]


class ThreadServicer(CallerScoped, thread_service_pb2_grpc.ThreadServiceServicer):
    def __init__(
        self, repository: Repository, files: FileService | None = None, image_files: ImageFiles | None = None
    ) -> None:
        super().__init__(repository)
        # Makes the vector stores of `tool_resources.file_search.vector_stores` helpers.
        self._files = files
        self._image_files = image_files or NoImageFiles()

    async def CreateThread(
        self, request: thread_service_pb2.CreateThreadRequest, context: Context
    ) -> thread_pb2.Thread:
        messages = convert.new_messages(request.messages)
        await self._check_image_files(image_file_references(messages, "messages"))
        tool_resources = validation.check_tool_resources(convert.from_value(request, "tool_resources"))
        tool_resources = await inline_vector_stores(self._files, current_caller().project_id, tool_resources)
        metadata = validation.check_metadata(dict(request.metadata))
        thread, _ = await to_thread(self._repository.create_thread, tool_resources, metadata, messages)
        return convert.thread_message(thread)

    async def GetThread(self, request: thread_service_pb2.GetThreadRequest, context: Context) -> thread_pb2.Thread:
        return convert.thread_message(await to_thread(self._repository.get_thread, request.thread_id))

    async def ModifyThread(
        self, request: thread_service_pb2.ModifyThreadRequest, context: Context
    ) -> thread_pb2.Thread:
        tool_resources = (
            validation.check_tool_resources(convert.from_value(request, "tool_resources"))
            if request.HasField("tool_resources")
            else None
        )
        if tool_resources is not None:
            tool_resources = await inline_vector_stores(self._files, current_caller().project_id, tool_resources)
        metadata = (
            validation.check_metadata(convert.from_value(request, "metadata")) if request.HasField("metadata") else None
        )
        thread = await to_thread(self._repository.update_thread, request.thread_id, tool_resources, metadata)
        return convert.thread_message(thread)

    async def DeleteThread(
        self, request: thread_service_pb2.DeleteThreadRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await to_thread(self._repository.delete_thread, request.thread_id)
        return common_pb2.DeletionStatus(id=request.thread_id, object="thread.deleted", deleted=True)

    async def CreateMessage(
        self, request: thread_service_pb2.CreateMessageRequest, context: Context
    ) -> message_pb2.Message:
        if not request.HasField("message"):
            raise InvalidRequestError(
                "Missing required parameter: 'role'.", param="role", code="missing_required_parameter"
            )
        message = convert.new_message(request.message)
        await self._check_image_files(image_file_references([message]))
        record = await to_thread(self._repository.create_message, request.thread_id, message)
        return convert.message_message(record)

    async def ListMessages(
        self, request: thread_service_pb2.ListMessagesRequest, context: Context
    ) -> thread_service_pb2.ListMessagesResponse:
        page = await to_thread(
            self._repository.list_messages,
            request.thread_id,
            convert.page_request(request),
            request.run_id or None,
        )
        return thread_service_pb2.ListMessagesResponse(
            data=[convert.message_message(record) for record in page.items],
            **convert.list_envelope([record.id for record in page.items], page.has_more),
        )

    async def GetMessage(self, request: thread_service_pb2.GetMessageRequest, context: Context) -> message_pb2.Message:
        record = await to_thread(self._repository.get_message, request.thread_id, request.message_id)
        return convert.message_message(record)

    async def ModifyMessage(
        self, request: thread_service_pb2.ModifyMessageRequest, context: Context
    ) -> message_pb2.Message:
        metadata = validation.check_metadata(convert.from_value(request, "metadata"))
        if not request.HasField("metadata"):
            record = await to_thread(self._repository.get_message, request.thread_id, request.message_id)
        else:
            record = await to_thread(self._repository.update_message, request.thread_id, request.message_id, metadata)
        return convert.message_message(record)

    async def DeleteMessage(
        self, request: thread_service_pb2.DeleteMessageRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await to_thread(self._repository.delete_message, request.thread_id, request.message_id)
        return common_pb2.DeletionStatus(id=request.message_id, object="thread.message.deleted", deleted=True)

    async def _check_image_files(self, references: list[tuple[str, str]]) -> None:
        await check_image_files(self._image_files, self._repository.project_id, references)
