"""The Responses and Conversations APIs in the typed clients: `responses` (with `input_items`)
and `conversations` (with `items`), named as the `openai` SDK names them.

Responses stream `response_pb2.ResponseStreamEvent`s; `create` returns the response as it ended
(or, with `background=True`, as it was queued)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import grpc

from sovereign_assistant.v1 import (
    common_pb2,
    conversation_pb2,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    item_pb2,
    response_pb2,
    response_service_pb2,
    response_service_pb2_grpc,
)
from sovereign_client import requests
from sovereign_client.client import _acall, _aevents, _call, _events


def _last_response(events: Iterable[response_pb2.ResponseStreamEvent]) -> response_pb2.Response:
    """The response of the last lifecycle event (queued, completed, incomplete or failed)."""
    response = response_pb2.Response()
    for event in events:
        if event.HasField("response"):
            response = event.response
            if response.status == "queued":
                break
    return response


class InputItems:
    def __init__(self, stub: response_service_pb2_grpc.ResponseServiceStub) -> None:
        self._stub = stub

    def list(self, response_id: str, *, include: Iterable[str] = (), **page: Any) -> item_pb2.ItemList:
        request = response_service_pb2.ListInputItemsRequest(
            response_id=response_id, include=list(include), **requests.list_page(**page)
        )
        return _call(self._stub.ListInputItems, request)


class Responses:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = response_service_pb2_grpc.ResponseServiceStub(channel)
        self.input_items = InputItems(self._stub)

    def stream(self, **fields: Any) -> Iterator[response_pb2.ResponseStreamEvent]:
        """A new response's events as it executes; `fields` are the SDK's `responses.create` arguments."""
        return _events(self._stub.CreateResponseEvents, requests.create_response(**fields))

    def create(self, **fields: Any) -> response_pb2.Response:
        """The response once it has ended; with `background=True`, at once, queued."""
        return _last_response(self.stream(**fields))

    def events(
        self, response_id: str, *, starting_after: int | None = None, include: Iterable[str] = ()
    ) -> Iterator[response_pb2.ResponseStreamEvent]:
        """A stored response's events after `starting_after`: a background response's as they come."""
        request = requests.get_response(response_id, starting_after=starting_after, include=include)
        return _events(self._stub.GetResponseEvents, request)

    def retrieve(self, response_id: str, *, include: Iterable[str] = ()) -> response_pb2.Response:
        request = response_service_pb2.GetResponseRequest(response_id=response_id, include=list(include))
        return _call(self._stub.RetrieveResponse, request)

    def cancel(self, response_id: str) -> response_pb2.Response:
        return _call(self._stub.CancelResponse, response_service_pb2.CancelResponseRequest(response_id=response_id))

    def delete(self, response_id: str) -> common_pb2.DeletionStatus:
        return _call(self._stub.DeleteResponse, response_service_pb2.DeleteResponseRequest(response_id=response_id))


class Items:
    def __init__(self, stub: conversation_service_pb2_grpc.ConversationServiceStub) -> None:
        self._stub = stub

    def create(self, conversation_id: str, *, items: Iterable[Mapping[str, Any]]) -> item_pb2.ItemList:
        request = conversation_service_pb2.CreateConversationItemsRequest(
            conversation_id=conversation_id, items=requests._list(dict(item) for item in items)
        )
        return _call(self._stub.CreateConversationItems, request)

    def list(self, conversation_id: str, *, include: Iterable[str] = (), **page: Any) -> item_pb2.ItemList:
        request = conversation_service_pb2.ListConversationItemsRequest(
            conversation_id=conversation_id, include=list(include), **requests.list_page(**page)
        )
        return _call(self._stub.ListConversationItems, request)

    def iterate(self, conversation_id: str, **page: Any) -> Iterator[item_pb2.Item]:
        """Every item, fetching pages as needed, like the SDK's auto-pagination."""
        while True:
            response = self.list(conversation_id, **page)
            yield from response.data
            if not response.has_more:
                return
            page["after"] = response.data[-1].id

    def retrieve(self, item_id: str, *, conversation_id: str) -> item_pb2.Item:
        request = conversation_service_pb2.GetConversationItemRequest(conversation_id=conversation_id, item_id=item_id)
        return _call(self._stub.GetConversationItem, request)

    def delete(self, item_id: str, *, conversation_id: str) -> conversation_pb2.Conversation:
        request = conversation_service_pb2.DeleteConversationItemRequest(
            conversation_id=conversation_id, item_id=item_id
        )
        return _call(self._stub.DeleteConversationItem, request)


class Conversations:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = conversation_service_pb2_grpc.ConversationServiceStub(channel)
        self.items = Items(self._stub)

    def create(self, **fields: Any) -> conversation_pb2.Conversation:
        return _call(self._stub.CreateConversation, requests.create_conversation(**fields))

    def retrieve(self, conversation_id: str) -> conversation_pb2.Conversation:
        request = conversation_service_pb2.GetConversationRequest(conversation_id=conversation_id)
        return _call(self._stub.GetConversation, request)

    def update(self, conversation_id: str, *, metadata: Mapping[str, str]) -> conversation_pb2.Conversation:
        request = conversation_service_pb2.UpdateConversationRequest(
            conversation_id=conversation_id, metadata=requests._struct(metadata)
        )
        return _call(self._stub.UpdateConversation, request)

    def delete(self, conversation_id: str) -> common_pb2.DeletionStatus:
        request = conversation_service_pb2.DeleteConversationRequest(conversation_id=conversation_id)
        return _call(self._stub.DeleteConversation, request)


# ---------------------------------------------------------------- asyncio


class AsyncInputItems:
    def __init__(self, stub: response_service_pb2_grpc.ResponseServiceAsyncStub) -> None:
        self._stub = stub

    async def list(self, response_id: str, *, include: Iterable[str] = (), **page: Any) -> item_pb2.ItemList:
        request = response_service_pb2.ListInputItemsRequest(
            response_id=response_id, include=list(include), **requests.list_page(**page)
        )
        return await _acall(self._stub.ListInputItems, request)


class AsyncResponses:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = response_service_pb2_grpc.ResponseServiceStub(channel)
        self.input_items = AsyncInputItems(self._stub)

    def stream(self, **fields: Any) -> AsyncIterator[response_pb2.ResponseStreamEvent]:
        return _aevents(self._stub.CreateResponseEvents, requests.create_response(**fields))

    async def create(self, **fields: Any) -> response_pb2.Response:
        response = response_pb2.Response()
        async for event in self.stream(**fields):
            if event.HasField("response"):
                response = event.response
                if response.status == "queued":
                    break
        return response

    def events(
        self, response_id: str, *, starting_after: int | None = None, include: Iterable[str] = ()
    ) -> AsyncIterator[response_pb2.ResponseStreamEvent]:
        request = requests.get_response(response_id, starting_after=starting_after, include=include)
        return _aevents(self._stub.GetResponseEvents, request)

    async def retrieve(self, response_id: str, *, include: Iterable[str] = ()) -> response_pb2.Response:
        request = response_service_pb2.GetResponseRequest(response_id=response_id, include=list(include))
        return await _acall(self._stub.RetrieveResponse, request)

    async def cancel(self, response_id: str) -> response_pb2.Response:
        request = response_service_pb2.CancelResponseRequest(response_id=response_id)
        return await _acall(self._stub.CancelResponse, request)

    async def delete(self, response_id: str) -> common_pb2.DeletionStatus:
        request = response_service_pb2.DeleteResponseRequest(response_id=response_id)
        return await _acall(self._stub.DeleteResponse, request)


class AsyncItems:
    def __init__(self, stub: conversation_service_pb2_grpc.ConversationServiceAsyncStub) -> None:
        self._stub = stub

    async def create(self, conversation_id: str, *, items: Iterable[Mapping[str, Any]]) -> item_pb2.ItemList:
        request = conversation_service_pb2.CreateConversationItemsRequest(
            conversation_id=conversation_id, items=requests._list(dict(item) for item in items)
        )
        return await _acall(self._stub.CreateConversationItems, request)

    async def list(self, conversation_id: str, *, include: Iterable[str] = (), **page: Any) -> item_pb2.ItemList:
        request = conversation_service_pb2.ListConversationItemsRequest(
            conversation_id=conversation_id, include=list(include), **requests.list_page(**page)
        )
        return await _acall(self._stub.ListConversationItems, request)

    async def retrieve(self, item_id: str, *, conversation_id: str) -> item_pb2.Item:
        request = conversation_service_pb2.GetConversationItemRequest(conversation_id=conversation_id, item_id=item_id)
        return await _acall(self._stub.GetConversationItem, request)

    async def delete(self, item_id: str, *, conversation_id: str) -> conversation_pb2.Conversation:
        request = conversation_service_pb2.DeleteConversationItemRequest(
            conversation_id=conversation_id, item_id=item_id
        )
        return await _acall(self._stub.DeleteConversationItem, request)


class AsyncConversations:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = conversation_service_pb2_grpc.ConversationServiceStub(channel)
        self.items = AsyncItems(self._stub)

    async def create(self, **fields: Any) -> conversation_pb2.Conversation:
        return await _acall(self._stub.CreateConversation, requests.create_conversation(**fields))

    async def retrieve(self, conversation_id: str) -> conversation_pb2.Conversation:
        request = conversation_service_pb2.GetConversationRequest(conversation_id=conversation_id)
        return await _acall(self._stub.GetConversation, request)

    async def update(self, conversation_id: str, *, metadata: Mapping[str, str]) -> conversation_pb2.Conversation:
        request = conversation_service_pb2.UpdateConversationRequest(
            conversation_id=conversation_id, metadata=requests._struct(metadata)
        )
        return await _acall(self._stub.UpdateConversation, request)

    async def delete(self, conversation_id: str) -> common_pb2.DeletionStatus:
        request = conversation_service_pb2.DeleteConversationRequest(conversation_id=conversation_id)
        return await _acall(self._stub.DeleteConversation, request)
