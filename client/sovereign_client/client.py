"""Typed gRPC clients with the `openai` SDK's resource names: `assistants`, `threads`,
`threads.messages`. `SovereignClient` is synchronous, `AsyncSovereignClient` uses grpc.aio.

Methods return the generated protobuf messages; failures raise `sovereign_client.errors.APIError`
subclasses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any, TypeVar

import grpc

from sovereign_assistant.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    common_pb2,
    message_pb2,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from sovereign_client import requests
from sovereign_client.errors import from_rpc_error

_T = TypeVar("_T")


def _call(method: Callable[[Any], _T], request: Any) -> _T:
    try:
        return method(request)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


async def _acall(method: Callable[[Any], Awaitable[_T]], request: Any) -> _T:
    try:
        return await method(request)
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None


class Assistants:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = assistant_service_pb2_grpc.AssistantServiceStub(channel)

    def create(self, **fields: Any) -> assistant_pb2.Assistant:
        return _call(self._stub.CreateAssistant, requests.create_assistant(**fields))

    def retrieve(self, assistant_id: str) -> assistant_pb2.Assistant:
        return _call(self._stub.GetAssistant, assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id))

    def update(self, assistant_id: str, **changes: Any) -> assistant_pb2.Assistant:
        return _call(self._stub.ModifyAssistant, requests.update_assistant(assistant_id, **changes))

    def list(self, **page: Any) -> assistant_service_pb2.ListAssistantsResponse:
        request = assistant_service_pb2.ListAssistantsRequest(**requests.list_page(**page))
        return _call(self._stub.ListAssistants, request)

    def iterate(self, **page: Any) -> Iterator[assistant_pb2.Assistant]:
        """Every assistant, fetching pages as needed, like the SDK's auto-pagination."""
        while True:
            response = self.list(**page)
            yield from response.data
            if not response.has_more:
                return
            page["after"] = response.data[-1].id

    def delete(self, assistant_id: str) -> common_pb2.DeletionStatus:
        return _call(
            self._stub.DeleteAssistant,
            assistant_service_pb2.DeleteAssistantRequest(assistant_id=assistant_id),
        )


class Messages:
    def __init__(self, stub: thread_service_pb2_grpc.ThreadServiceStub) -> None:
        self._stub = stub

    def create(self, thread_id: str, **message: Any) -> message_pb2.Message:
        request = thread_service_pb2.CreateMessageRequest(
            thread_id=thread_id, message=requests.message_input(**message)
        )
        return _call(self._stub.CreateMessage, request)

    def retrieve(self, message_id: str, *, thread_id: str) -> message_pb2.Message:
        request = thread_service_pb2.GetMessageRequest(thread_id=thread_id, message_id=message_id)
        return _call(self._stub.GetMessage, request)

    def update(self, message_id: str, *, thread_id: str, metadata: Mapping[str, str]) -> message_pb2.Message:
        request = thread_service_pb2.ModifyMessageRequest(
            thread_id=thread_id, message_id=message_id, metadata=requests._struct(metadata)
        )
        return _call(self._stub.ModifyMessage, request)

    def list(
        self, thread_id: str, *, run_id: str | None = None, **page: Any
    ) -> thread_service_pb2.ListMessagesResponse:
        request = thread_service_pb2.ListMessagesRequest(
            thread_id=thread_id, run_id=run_id or "", **requests.list_page(**page)
        )
        return _call(self._stub.ListMessages, request)

    def delete(self, message_id: str, *, thread_id: str) -> common_pb2.DeletionStatus:
        request = thread_service_pb2.DeleteMessageRequest(thread_id=thread_id, message_id=message_id)
        return _call(self._stub.DeleteMessage, request)


class Threads:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = thread_service_pb2_grpc.ThreadServiceStub(channel)
        self.messages = Messages(self._stub)

    def create(self, **fields: Any) -> thread_pb2.Thread:
        return _call(self._stub.CreateThread, requests.create_thread(**fields))

    def retrieve(self, thread_id: str) -> thread_pb2.Thread:
        return _call(self._stub.GetThread, thread_service_pb2.GetThreadRequest(thread_id=thread_id))

    def update(self, thread_id: str, **fields: Any) -> thread_pb2.Thread:
        return _call(self._stub.ModifyThread, requests.update_thread(thread_id, **fields))

    def delete(self, thread_id: str) -> common_pb2.DeletionStatus:
        return _call(self._stub.DeleteThread, thread_service_pb2.DeleteThreadRequest(thread_id=thread_id))


class SovereignClient:
    """`SovereignClient("127.0.0.1:50051")`, or over a channel of your own."""

    def __init__(self, target: str = "127.0.0.1:50051", *, channel: grpc.Channel | None = None) -> None:
        self._channel = channel or grpc.insecure_channel(target)
        self.assistants = Assistants(self._channel)
        self.threads = Threads(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> SovereignClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncAssistants:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = assistant_service_pb2_grpc.AssistantServiceStub(channel)

    async def create(self, **fields: Any) -> assistant_pb2.Assistant:
        return await _acall(self._stub.CreateAssistant, requests.create_assistant(**fields))

    async def retrieve(self, assistant_id: str) -> assistant_pb2.Assistant:
        request = assistant_service_pb2.GetAssistantRequest(assistant_id=assistant_id)
        return await _acall(self._stub.GetAssistant, request)

    async def update(self, assistant_id: str, **changes: Any) -> assistant_pb2.Assistant:
        return await _acall(self._stub.ModifyAssistant, requests.update_assistant(assistant_id, **changes))

    async def list(self, **page: Any) -> assistant_service_pb2.ListAssistantsResponse:
        request = assistant_service_pb2.ListAssistantsRequest(**requests.list_page(**page))
        return await _acall(self._stub.ListAssistants, request)

    async def iterate(self, **page: Any) -> AsyncIterator[assistant_pb2.Assistant]:
        while True:
            response = await self.list(**page)
            for assistant in response.data:
                yield assistant
            if not response.has_more:
                return
            page["after"] = response.data[-1].id

    async def delete(self, assistant_id: str) -> common_pb2.DeletionStatus:
        request = assistant_service_pb2.DeleteAssistantRequest(assistant_id=assistant_id)
        return await _acall(self._stub.DeleteAssistant, request)


class AsyncMessages:
    def __init__(self, stub: thread_service_pb2_grpc.ThreadServiceAsyncStub) -> None:
        self._stub = stub

    async def create(self, thread_id: str, **message: Any) -> message_pb2.Message:
        request = thread_service_pb2.CreateMessageRequest(
            thread_id=thread_id, message=requests.message_input(**message)
        )
        return await _acall(self._stub.CreateMessage, request)

    async def retrieve(self, message_id: str, *, thread_id: str) -> message_pb2.Message:
        request = thread_service_pb2.GetMessageRequest(thread_id=thread_id, message_id=message_id)
        return await _acall(self._stub.GetMessage, request)

    async def update(self, message_id: str, *, thread_id: str, metadata: Mapping[str, str]) -> message_pb2.Message:
        request = thread_service_pb2.ModifyMessageRequest(
            thread_id=thread_id, message_id=message_id, metadata=requests._struct(metadata)
        )
        return await _acall(self._stub.ModifyMessage, request)

    async def list(
        self, thread_id: str, *, run_id: str | None = None, **page: Any
    ) -> thread_service_pb2.ListMessagesResponse:
        request = thread_service_pb2.ListMessagesRequest(
            thread_id=thread_id, run_id=run_id or "", **requests.list_page(**page)
        )
        return await _acall(self._stub.ListMessages, request)

    async def delete(self, message_id: str, *, thread_id: str) -> common_pb2.DeletionStatus:
        request = thread_service_pb2.DeleteMessageRequest(thread_id=thread_id, message_id=message_id)
        return await _acall(self._stub.DeleteMessage, request)


class AsyncThreads:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = thread_service_pb2_grpc.ThreadServiceStub(channel)
        self.messages = AsyncMessages(self._stub)

    async def create(self, **fields: Any) -> thread_pb2.Thread:
        return await _acall(self._stub.CreateThread, requests.create_thread(**fields))

    async def retrieve(self, thread_id: str) -> thread_pb2.Thread:
        return await _acall(self._stub.GetThread, thread_service_pb2.GetThreadRequest(thread_id=thread_id))

    async def update(self, thread_id: str, **fields: Any) -> thread_pb2.Thread:
        return await _acall(self._stub.ModifyThread, requests.update_thread(thread_id, **fields))

    async def delete(self, thread_id: str) -> common_pb2.DeletionStatus:
        return await _acall(self._stub.DeleteThread, thread_service_pb2.DeleteThreadRequest(thread_id=thread_id))


class AsyncSovereignClient:
    """`AsyncSovereignClient("127.0.0.1:50051")`; use `async with`, or `await client.close()`."""

    def __init__(self, target: str = "127.0.0.1:50051", *, channel: grpc.aio.Channel | None = None) -> None:
        self._channel = channel or grpc.aio.insecure_channel(target)
        self.assistants = AsyncAssistants(self._channel)
        self.threads = AsyncThreads(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncSovereignClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
