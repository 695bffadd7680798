from __future__ import annotations

from asyncio import to_thread
from collections.abc import Sequence
from typing import Any

import grpc

from sovereign_assistant.v1 import (
    common_pb2,
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    item_pb2,
)
from sovereign_server import convert, convert_responses, validation
from sovereign_server.errors import NotFoundError
from sovereign_server.responses.context import conversation_item, image_file_references, record_item
from sovereign_server.runs.images import ImageFiles, NoImageFiles, check_image_files
from sovereign_server.servicers.scope import CallerScoped
from sovereign_storage import CONVERSATION_PREFIX, Item, Repository
from sovereign_storage import NotFoundError as StoredNotFoundError

Context = grpc.aio.ServicerContext[Any, Any]


class ConversationServicer(CallerScoped, conversation_service_pb2_grpc.ConversationServiceServicer):
    """Conversations are threads and their items the threads' messages: this reads and writes them
    through the same repository as `ThreadServicer`, under either id."""

    def __init__(self, repository: Repository, image_files: ImageFiles | None = None) -> None:
        super().__init__(repository)
        self._image_files: ImageFiles = image_files or NoImageFiles()

    async def CreateConversation(
        self, request: conversation_service_pb2.CreateConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        items = convert_responses.new_items(convert.from_value(request, "items"))
        metadata = validation.check_metadata(convert.from_value(request, "metadata"))
        await self._check_image_files(items)
        messages = [conversation_item(item) for item in items]
        thread, _ = await to_thread(self._repository.create_thread, {}, metadata, messages, prefix=CONVERSATION_PREFIX)
        return convert_responses.conversation_message(thread)

    async def GetConversation(
        self, request: conversation_service_pb2.GetConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        thread = await self._call(self._repository.get_thread, request.conversation_id)
        return convert_responses.conversation_message(thread)

    async def UpdateConversation(
        self, request: conversation_service_pb2.UpdateConversationRequest, context: Context
    ) -> conversation_pb2.Conversation:
        if not request.HasField("metadata"):
            raise validation.missing_parameter("metadata")
        metadata = validation.check_metadata(convert.from_value(request, "metadata"))
        thread = await self._call(self._repository.update_thread, request.conversation_id, None, metadata)
        return convert_responses.conversation_message(thread)

    async def DeleteConversation(
        self, request: conversation_service_pb2.DeleteConversationRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await self._call(self._repository.delete_thread, request.conversation_id)
        return common_pb2.DeletionStatus(id=request.conversation_id, object="conversation.deleted", deleted=True)

    async def CreateConversationItems(
        self, request: conversation_service_pb2.CreateConversationItemsRequest, context: Context
    ) -> item_pb2.ItemList:
        if not request.HasField("items"):
            raise validation.missing_parameter("items")
        validation.check_include(list(request.include))
        items = convert_responses.new_items(convert.from_value(request, "items"))
        await self._check_image_files(items)
        messages = [conversation_item(item) for item in items]
        added = await self._call(self._repository.add_items, request.conversation_id, messages)
        results = convert_responses.search_results_included(request.include)
        return convert_responses.item_list_message([record_item(record) for record in added], False, results)

    async def ListConversationItems(
        self, request: conversation_service_pb2.ListConversationItemsRequest, context: Context
    ) -> item_pb2.ItemList:
        validation.check_include(list(request.include))
        page_request = validation.page_request(
            request.limit if request.HasField("limit") else None, request.order, request.after, ""
        )
        page = await self._call(
            lambda: self._repository.list_messages(request.conversation_id, page_request, all_items=True)
        )
        results = convert_responses.search_results_included(request.include)
        return convert_responses.item_list_message(
            [record_item(record) for record in page.items], page.has_more, results
        )

    async def GetConversationItem(
        self, request: conversation_service_pb2.GetConversationItemRequest, context: Context
    ) -> item_pb2.Item:
        validation.check_include(list(request.include))
        record = await self._call(
            lambda: self._repository.get_message(request.conversation_id, request.item_id, all_items=True)
        )
        return convert_responses.item_message(
            record_item(record), convert_responses.search_results_included(request.include)
        )

    async def DeleteConversationItem(
        self, request: conversation_service_pb2.DeleteConversationItemRequest, context: Context
    ) -> conversation_pb2.Conversation:
        await self._call(self._repository.delete_message, request.conversation_id, request.item_id)
        thread = await self._call(self._repository.get_thread, request.conversation_id)
        return convert_responses.conversation_message(thread)

    async def _check_image_files(self, items: Sequence[Item]) -> None:
        references = image_file_references(items, "items")
        await check_image_files(self._image_files, self._repository.project_id, references)

    @staticmethod
    async def _call(function: Any, *args: Any) -> Any:
        """`function` in the database thread, a missing thread named as the conversation it is."""
        try:
            return await to_thread(function, *args)
        except StoredNotFoundError as error:
            if error.kind == "thread":
                raise NotFoundError(f"Conversation with id '{error.id}' not found.") from None
            if error.kind == "message":
                raise NotFoundError(f"Item with id '{error.id}' not found.") from None
            raise
