from __future__ import annotations

from asyncio import to_thread
from dataclasses import replace
from typing import Any

import grpc

from sovereign_assistant.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    common_pb2,
)
from sovereign_server import convert
from sovereign_server.caller import current_caller
from sovereign_server.files.service import FileService, inline_vector_stores
from sovereign_server.servicers.scope import CallerScoped
from sovereign_storage import Repository

Context = grpc.aio.ServicerContext[Any, Any]


class AssistantServicer(CallerScoped, assistant_service_pb2_grpc.AssistantServiceServicer):
    def __init__(self, repository: Repository, files: FileService | None = None) -> None:
        super().__init__(repository)
        # Makes the vector stores of `tool_resources.file_search.vector_stores` helpers.
        self._files = files

    async def CreateAssistant(
        self, request: assistant_service_pb2.CreateAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        new = convert.new_assistant(request)
        project = current_caller().project_id
        new = replace(new, tool_resources=await inline_vector_stores(self._files, project, new.tool_resources))
        record = await to_thread(self._repository.create_assistant, new)
        return convert.assistant_message(record)

    async def ListAssistants(
        self, request: assistant_service_pb2.ListAssistantsRequest, context: Context
    ) -> assistant_service_pb2.ListAssistantsResponse:
        page = await to_thread(
            self._repository.list_assistants,
            convert.page_request(request),
        )
        return assistant_service_pb2.ListAssistantsResponse(
            data=[convert.assistant_message(record) for record in page.items],
            **convert.list_envelope([record.id for record in page.items], page.has_more),
        )

    async def GetAssistant(
        self, request: assistant_service_pb2.GetAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        return convert.assistant_message(await to_thread(self._repository.get_assistant, request.assistant_id))

    async def ModifyAssistant(
        self, request: assistant_service_pb2.ModifyAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        changes = convert.assistant_changes(request)
        if "tool_resources" in changes:
            project = current_caller().project_id
            changes["tool_resources"] = await inline_vector_stores(self._files, project, changes["tool_resources"])
        record = await to_thread(self._repository.update_assistant, request.assistant_id, changes)
        return convert.assistant_message(record)

    async def DeleteAssistant(
        self, request: assistant_service_pb2.DeleteAssistantRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await to_thread(self._repository.delete_assistant, request.assistant_id)
        return common_pb2.DeletionStatus(id=request.assistant_id, object="assistant.deleted", deleted=True)
