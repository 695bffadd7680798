"""Typed gRPC clients with the `openai` SDK's resource names: `assistants`, `threads`,
`threads.messages`, `threads.runs`, `threads.runs.steps`, `responses`, `responses.input_items`,
`conversations`, `conversations.items`. `SovereignClient` is synchronous,
`AsyncSovereignClient` uses grpc.aio.

Methods return the generated protobuf messages; failures raise `sovereign_client.errors.APIError`
subclasses. Run streams yield `run_pb2.RunEvent`s; they start the call on first iteration and raise
on iteration, and leaving one early cancels only the stream: the run goes on in the server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import grpc

from sovereign_assistant.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    common_pb2,
    message_pb2,
    run_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_pb2,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from sovereign_client import requests
from sovereign_client.auth import KeyInterceptor, async_key_interceptors
from sovereign_client.channels import CaFile, open_aio_channel, open_channel
from sovereign_client.errors import InternalServerError, from_rpc_error

_T = TypeVar("_T")
# A streamed event message: a run's or a response's.
_E = TypeVar("_E")

# Where `*_and_poll` stops, as the SDK's `runs.poll` does: the run has ended, or waits for the caller.
POLL_STOP_STATUSES = frozenset({"requires_action", "cancelled", "completed", "failed", "expired", "incomplete"})


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


def _events(method: grpc.UnaryStreamMultiCallable[Any, _E], request: Any) -> Generator[_E, None, None]:
    call = method(request)
    try:
        yield from call
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
    finally:
        # A caller that stops reading early should not keep the stream open; the run (or response)
        # is unaffected.
        call.cancel()


async def _aevents(method: grpc.aio.UnaryStreamMultiCallable[Any, _E], request: Any) -> AsyncGenerator[_E, None]:
    call = method(request)
    try:
        async for event in call:
            yield event
    except grpc.RpcError as error:
        raise from_rpc_error(error) from None
    finally:
        call.cancel()


def _no_run() -> InternalServerError:
    return InternalServerError(
        grpc.StatusCode.UNKNOWN, "The run stream ended before it sent a run.", type=None, param=None, code=None
    )


def _first_run(events: Generator[run_pb2.RunEvent, None, None]) -> run_pb2.Run:
    """The run from the first event that carries one; then the stream is cancelled, since the run
    executes in the server whether anyone listens or not."""
    with contextlib.closing(events):
        for event in events:
            if event.WhichOneof("data") == "run":
                return event.run
    raise _no_run()


async def _afirst_run(events: AsyncGenerator[run_pb2.RunEvent, None]) -> run_pb2.Run:
    async with contextlib.aclosing(events):
        async for event in events:
            if event.WhichOneof("data") == "run":
                return event.run
    raise _no_run()


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


class Steps:
    def __init__(self, stub: run_service_pb2_grpc.RunServiceStub) -> None:
        self._stub = stub

    def list(
        self, run_id: str, *, thread_id: str, include: Iterable[str] = (), **page: Any
    ) -> run_service_pb2.ListRunStepsResponse:
        request = run_service_pb2.ListRunStepsRequest(
            thread_id=thread_id, run_id=run_id, include=list(include), **requests.list_page(**page)
        )
        return _call(self._stub.ListRunSteps, request)

    def retrieve(self, step_id: str, *, thread_id: str, run_id: str, include: Iterable[str] = ()) -> run_pb2.RunStep:
        request = run_service_pb2.GetRunStepRequest(
            thread_id=thread_id, run_id=run_id, step_id=step_id, include=list(include)
        )
        return _call(self._stub.GetRunStep, request)


class Runs:
    def __init__(self, stub: run_service_pb2_grpc.RunServiceStub) -> None:
        self._stub = stub
        self.steps = Steps(stub)

    def stream(self, thread_id: str, *, assistant_id: str, **options: Any) -> Iterator[run_pb2.RunEvent]:
        """The run's events as it executes; `options` are the SDK's `runs.create` arguments."""
        return _events(self._stub.CreateRunEvents, requests.create_run(thread_id, assistant_id=assistant_id, **options))

    def create(self, thread_id: str, *, assistant_id: str, **options: Any) -> run_pb2.Run:
        """The queued run, returned as soon as the server has stored it."""
        request = requests.create_run(thread_id, assistant_id=assistant_id, **options)
        return _first_run(_events(self._stub.CreateRunEvents, request))

    def create_and_poll(
        self, thread_id: str, *, assistant_id: str, poll_interval: float = 0.05, **options: Any
    ) -> run_pb2.Run:
        run = self.create(thread_id, assistant_id=assistant_id, **options)
        return self.poll(run.id, thread_id=thread_id, poll_interval=poll_interval)

    def poll(self, run_id: str, *, thread_id: str, poll_interval: float = 0.05) -> run_pb2.Run:
        """Retrieves the run until it has ended or requires action."""
        while True:
            run = self.retrieve(run_id, thread_id=thread_id)
            if run.status in POLL_STOP_STATUSES:
                return run
            time.sleep(poll_interval)

    def retrieve(self, run_id: str, *, thread_id: str) -> run_pb2.Run:
        return _call(self._stub.GetRun, run_service_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))

    def list(self, thread_id: str, **page: Any) -> run_service_pb2.ListRunsResponse:
        request = run_service_pb2.ListRunsRequest(thread_id=thread_id, **requests.list_page(**page))
        return _call(self._stub.ListRuns, request)

    def update(self, run_id: str, *, thread_id: str, metadata: Mapping[str, str]) -> run_pb2.Run:
        return _call(self._stub.ModifyRun, requests.update_run(run_id, thread_id=thread_id, metadata=metadata))

    def cancel(self, run_id: str, *, thread_id: str) -> run_pb2.Run:
        return _call(self._stub.CancelRun, run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id))

    def follow(self, run_id: str, *, thread_id: str) -> Iterator[run_pb2.RunEvent]:
        """The events of a run executing now (on any replica), from the first of its current stretch."""
        return _events(self._stub.StreamRunEvents, run_service_pb2.StreamRunRequest(thread_id=thread_id, run_id=run_id))

    def submit_tool_outputs_stream(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[Mapping[str, str]]
    ) -> Iterator[run_pb2.RunEvent]:
        request = requests.submit_tool_outputs(run_id, thread_id=thread_id, tool_outputs=tool_outputs)
        return _events(self._stub.SubmitToolOutputsEvents, request)

    def submit_tool_outputs(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[Mapping[str, str]]
    ) -> run_pb2.Run:
        """The run as it was queued again (the stream opens with the completed tool step, then the run)."""
        request = requests.submit_tool_outputs(run_id, thread_id=thread_id, tool_outputs=tool_outputs)
        return _first_run(_events(self._stub.SubmitToolOutputsEvents, request))

    def submit_tool_outputs_and_poll(
        self,
        run_id: str,
        *,
        thread_id: str,
        tool_outputs: Iterable[Mapping[str, str]],
        poll_interval: float = 0.05,
    ) -> run_pb2.Run:
        self.submit_tool_outputs(run_id, thread_id=thread_id, tool_outputs=tool_outputs)
        return self.poll(run_id, thread_id=thread_id, poll_interval=poll_interval)


class Threads:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = thread_service_pb2_grpc.ThreadServiceStub(channel)
        self._run_stub = run_service_pb2_grpc.RunServiceStub(channel)
        self.messages = Messages(self._stub)
        self.runs = Runs(self._run_stub)

    def create(self, **fields: Any) -> thread_pb2.Thread:
        return _call(self._stub.CreateThread, requests.create_thread(**fields))

    def retrieve(self, thread_id: str) -> thread_pb2.Thread:
        return _call(self._stub.GetThread, thread_service_pb2.GetThreadRequest(thread_id=thread_id))

    def update(self, thread_id: str, **fields: Any) -> thread_pb2.Thread:
        return _call(self._stub.ModifyThread, requests.update_thread(thread_id, **fields))

    def delete(self, thread_id: str) -> common_pb2.DeletionStatus:
        return _call(self._stub.DeleteThread, thread_service_pb2.DeleteThreadRequest(thread_id=thread_id))

    def create_and_run_stream(
        self, *, assistant_id: str, thread: Mapping[str, Any] | None = None, **options: Any
    ) -> Iterator[run_pb2.RunEvent]:
        """`thread.created`, then the run's events; `thread` takes `threads.create`'s arguments."""
        request = requests.create_thread_and_run(assistant_id=assistant_id, thread=thread, **options)
        return _events(self._run_stub.CreateThreadAndRunEvents, request)

    def create_and_run(
        self, *, assistant_id: str, thread: Mapping[str, Any] | None = None, **options: Any
    ) -> run_pb2.Run:
        request = requests.create_thread_and_run(assistant_id=assistant_id, thread=thread, **options)
        return _first_run(_events(self._run_stub.CreateThreadAndRunEvents, request))

    def create_and_run_poll(
        self,
        *,
        assistant_id: str,
        thread: Mapping[str, Any] | None = None,
        poll_interval: float = 0.05,
        **options: Any,
    ) -> run_pb2.Run:
        run = self.create_and_run(assistant_id=assistant_id, thread=thread, **options)
        return self.runs.poll(run.id, thread_id=run.thread_id, poll_interval=poll_interval)


class SovereignClient:
    """`SovereignClient("127.0.0.1:50051", api_key="sk-...")`, or over a channel of your own.

    TLS: `ca_file="server.crt"` (or `root_certificates=` its PEM bytes) trusts that certificate or
    CA; `tls=True` alone trusts gRPC's bundled public roots; `server_name=` is the name to expect
    in the certificate when the target address is not one of its names."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        api_key: str | None = None,
        tls: bool = False,
        ca_file: CaFile | None = None,
        root_certificates: bytes | None = None,
        server_name: str | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self._channel = channel or open_channel(
            target, tls=tls, ca_file=ca_file, root_certificates=root_certificates, server_name=server_name
        )
        if api_key is not None:
            self._channel = grpc.intercept_channel(self._channel, KeyInterceptor(api_key))
        self.assistants = Assistants(self._channel)
        self.threads = Threads(self._channel)
        # Imported here: that module builds on this one's call helpers.
        from sovereign_client.responses import Conversations, Responses

        self.responses = Responses(self._channel)
        self.conversations = Conversations(self._channel)

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


class AsyncSteps:
    def __init__(self, stub: run_service_pb2_grpc.RunServiceAsyncStub) -> None:
        self._stub = stub

    async def list(
        self, run_id: str, *, thread_id: str, include: Iterable[str] = (), **page: Any
    ) -> run_service_pb2.ListRunStepsResponse:
        request = run_service_pb2.ListRunStepsRequest(
            thread_id=thread_id, run_id=run_id, include=list(include), **requests.list_page(**page)
        )
        return await _acall(self._stub.ListRunSteps, request)

    async def retrieve(
        self, step_id: str, *, thread_id: str, run_id: str, include: Iterable[str] = ()
    ) -> run_pb2.RunStep:
        request = run_service_pb2.GetRunStepRequest(
            thread_id=thread_id, run_id=run_id, step_id=step_id, include=list(include)
        )
        return await _acall(self._stub.GetRunStep, request)


class AsyncRuns:
    def __init__(self, stub: run_service_pb2_grpc.RunServiceAsyncStub) -> None:
        self._stub = stub
        self.steps = AsyncSteps(stub)

    def stream(self, thread_id: str, *, assistant_id: str, **options: Any) -> AsyncIterator[run_pb2.RunEvent]:
        request = requests.create_run(thread_id, assistant_id=assistant_id, **options)
        return _aevents(self._stub.CreateRunEvents, request)

    async def create(self, thread_id: str, *, assistant_id: str, **options: Any) -> run_pb2.Run:
        request = requests.create_run(thread_id, assistant_id=assistant_id, **options)
        return await _afirst_run(_aevents(self._stub.CreateRunEvents, request))

    async def create_and_poll(
        self, thread_id: str, *, assistant_id: str, poll_interval: float = 0.05, **options: Any
    ) -> run_pb2.Run:
        run = await self.create(thread_id, assistant_id=assistant_id, **options)
        return await self.poll(run.id, thread_id=thread_id, poll_interval=poll_interval)

    async def poll(self, run_id: str, *, thread_id: str, poll_interval: float = 0.05) -> run_pb2.Run:
        while True:
            run = await self.retrieve(run_id, thread_id=thread_id)
            if run.status in POLL_STOP_STATUSES:
                return run
            await asyncio.sleep(poll_interval)

    async def retrieve(self, run_id: str, *, thread_id: str) -> run_pb2.Run:
        return await _acall(self._stub.GetRun, run_service_pb2.GetRunRequest(thread_id=thread_id, run_id=run_id))

    async def list(self, thread_id: str, **page: Any) -> run_service_pb2.ListRunsResponse:
        request = run_service_pb2.ListRunsRequest(thread_id=thread_id, **requests.list_page(**page))
        return await _acall(self._stub.ListRuns, request)

    async def update(self, run_id: str, *, thread_id: str, metadata: Mapping[str, str]) -> run_pb2.Run:
        return await _acall(self._stub.ModifyRun, requests.update_run(run_id, thread_id=thread_id, metadata=metadata))

    async def cancel(self, run_id: str, *, thread_id: str) -> run_pb2.Run:
        request = run_service_pb2.CancelRunRequest(thread_id=thread_id, run_id=run_id)
        return await _acall(self._stub.CancelRun, request)

    def follow(self, run_id: str, *, thread_id: str) -> AsyncIterator[run_pb2.RunEvent]:
        """The events of a run executing now (on any replica), from the first of its current stretch."""
        request = run_service_pb2.StreamRunRequest(thread_id=thread_id, run_id=run_id)
        return _aevents(self._stub.StreamRunEvents, request)

    def submit_tool_outputs_stream(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[Mapping[str, str]]
    ) -> AsyncIterator[run_pb2.RunEvent]:
        request = requests.submit_tool_outputs(run_id, thread_id=thread_id, tool_outputs=tool_outputs)
        return _aevents(self._stub.SubmitToolOutputsEvents, request)

    async def submit_tool_outputs(
        self, run_id: str, *, thread_id: str, tool_outputs: Iterable[Mapping[str, str]]
    ) -> run_pb2.Run:
        request = requests.submit_tool_outputs(run_id, thread_id=thread_id, tool_outputs=tool_outputs)
        return await _afirst_run(_aevents(self._stub.SubmitToolOutputsEvents, request))

    async def submit_tool_outputs_and_poll(
        self,
        run_id: str,
        *,
        thread_id: str,
        tool_outputs: Iterable[Mapping[str, str]],
        poll_interval: float = 0.05,
    ) -> run_pb2.Run:
        await self.submit_tool_outputs(run_id, thread_id=thread_id, tool_outputs=tool_outputs)
        return await self.poll(run_id, thread_id=thread_id, poll_interval=poll_interval)


class AsyncThreads:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = thread_service_pb2_grpc.ThreadServiceStub(channel)
        self._run_stub = run_service_pb2_grpc.RunServiceStub(channel)
        self.messages = AsyncMessages(self._stub)
        self.runs = AsyncRuns(self._run_stub)

    async def create(self, **fields: Any) -> thread_pb2.Thread:
        return await _acall(self._stub.CreateThread, requests.create_thread(**fields))

    async def retrieve(self, thread_id: str) -> thread_pb2.Thread:
        return await _acall(self._stub.GetThread, thread_service_pb2.GetThreadRequest(thread_id=thread_id))

    async def update(self, thread_id: str, **fields: Any) -> thread_pb2.Thread:
        return await _acall(self._stub.ModifyThread, requests.update_thread(thread_id, **fields))

    async def delete(self, thread_id: str) -> common_pb2.DeletionStatus:
        return await _acall(self._stub.DeleteThread, thread_service_pb2.DeleteThreadRequest(thread_id=thread_id))

    def create_and_run_stream(
        self, *, assistant_id: str, thread: Mapping[str, Any] | None = None, **options: Any
    ) -> AsyncIterator[run_pb2.RunEvent]:
        request = requests.create_thread_and_run(assistant_id=assistant_id, thread=thread, **options)
        return _aevents(self._run_stub.CreateThreadAndRunEvents, request)

    async def create_and_run(
        self, *, assistant_id: str, thread: Mapping[str, Any] | None = None, **options: Any
    ) -> run_pb2.Run:
        request = requests.create_thread_and_run(assistant_id=assistant_id, thread=thread, **options)
        return await _afirst_run(_aevents(self._run_stub.CreateThreadAndRunEvents, request))

    async def create_and_run_poll(
        self,
        *,
        assistant_id: str,
        thread: Mapping[str, Any] | None = None,
        poll_interval: float = 0.05,
        **options: Any,
    ) -> run_pb2.Run:
        run = await self.create_and_run(assistant_id=assistant_id, thread=thread, **options)
        return await self.runs.poll(run.id, thread_id=run.thread_id, poll_interval=poll_interval)


class AsyncSovereignClient:
    """`AsyncSovereignClient("127.0.0.1:50051", api_key="sk-...")`; use `async with`, or `await client.close()`.
    TLS options as for `SovereignClient`."""

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        api_key: str | None = None,
        tls: bool = False,
        ca_file: CaFile | None = None,
        root_certificates: bytes | None = None,
        server_name: str | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        interceptors = async_key_interceptors(api_key) if api_key is not None else None
        self._channel = channel or open_aio_channel(
            target,
            tls=tls,
            ca_file=ca_file,
            root_certificates=root_certificates,
            server_name=server_name,
            interceptors=interceptors,
        )
        self.assistants = AsyncAssistants(self._channel)
        self.threads = AsyncThreads(self._channel)
        from sovereign_client.responses import AsyncConversations, AsyncResponses

        self.responses = AsyncResponses(self._channel)
        self.conversations = AsyncConversations(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncSovereignClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
