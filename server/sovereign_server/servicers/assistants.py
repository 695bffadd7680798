from __future__ import annotations

from asyncio import to_thread
from typing import Any

import grpc

from sovereign_assistant.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    common_pb2,
)
from sovereign_server import convert
from sovereign_server.servicers.scope import CallerScoped

Context = grpc.aio.ServicerContext[Any, Any]


class AssistantServicer(CallerScoped, assistant_service_pb2_grpc.AssistantServiceServicer):
    async def CreateAssistant(
        self, request: assistant_service_pb2.CreateAssistantRequest, context: Context
    ) -> assistant_pb2.Assistant:
        record = await to_thread(self._repository.create_assistant, convert.new_assistant(request))
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
        record = await to_thread(self._repository.update_assistant, request.assistant_id, changes)
        return convert.assistant_message(record)

    async def DeleteAssistant(
        self, request: assistant_service_pb2.DeleteAssistantRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await to_thread(self._repository.delete_assistant, request.assistant_id)
        return common_pb2.DeletionStatus(id=request.assistant_id, object="assistant.deleted", deleted=True)
