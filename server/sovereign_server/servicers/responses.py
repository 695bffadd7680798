from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from typing import Any

import grpc
from google.api import httpbody_pb2

from sovereign_assistant.v1 import (
    common_pb2,
    item_pb2,
    response_pb2,
    response_service_pb2,
    response_service_pb2_grpc,
)
from sovereign_server import convert, convert_responses, sse, validation
from sovereign_server.caller import current_caller
from sovereign_server.metrics import Metrics
from sovereign_server.responses import ResponseEvent, ResponseManager
from sovereign_server.servicers.scope import CallerScoped
from sovereign_storage import Repository, ResponseStatus

Context = grpc.aio.ServicerContext[Any, Any]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


class ResponseServicer(CallerScoped, response_service_pb2_grpc.ResponseServiceServicer):
    """The routes that may stream answer JSON callers with `HttpBody` (one JSON response, or
    OpenAI's Server-Sent Events when `stream` is set) and gRPC callers with typed
    `ResponseStreamEvent`s; both render the same events from `ResponseManager`."""

    def __init__(self, repository: Repository, responses: ResponseManager, metrics: Metrics | None = None) -> None:
        super().__init__(repository)
        self._responses = responses
        self._metrics = metrics

    # ------------------------------------------------------------------ creating and following

    async def CreateResponse(
        self, request: response_service_pb2.CreateResponseRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        execution = await self._responses.create(current_caller(), convert_responses.response_options(request))
        results = convert_responses.search_results_included(request.include)
        if request.stream:
            async for body in self._sse(execution.channel.follow(self._responses.heartbeat), results):
                yield body
            return
        if execution.response.status is not ResponseStatus.QUEUED:
            # Not in the background: the answer is the ended response.
            await execution.finished.wait()
        yield _json(convert_responses.response_json(execution.response, results))

    async def CreateResponseEvents(
        self, request: response_service_pb2.CreateResponseRequest, context: Context
    ) -> AsyncIterator[response_pb2.ResponseStreamEvent]:
        execution = await self._responses.create(current_caller(), convert_responses.response_options(request))
        results = convert_responses.search_results_included(request.include)
        async for event in self._typed(execution.channel.follow(), results):
            yield event

    async def GetResponse(
        self, request: response_service_pb2.GetResponseRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        validation.check_include(list(request.include))
        results = convert_responses.search_results_included(request.include)
        if not request.stream:
            response = await self._responses.get(current_caller(), request.response_id)
            yield _json(convert_responses.response_json(response, results))
            return
        async for body in self._sse(self._follow(request, self._responses.heartbeat), results):
            yield body

    async def GetResponseEvents(
        self, request: response_service_pb2.GetResponseRequest, context: Context
    ) -> AsyncIterator[response_pb2.ResponseStreamEvent]:
        validation.check_include(list(request.include))
        results = convert_responses.search_results_included(request.include)
        async for event in self._typed(self._follow(request, None), results):
            yield event

    async def RetrieveResponse(
        self, request: response_service_pb2.GetResponseRequest, context: Context
    ) -> response_pb2.Response:
        validation.check_include(list(request.include))
        response = await self._responses.get(current_caller(), request.response_id)
        return convert_responses.response_message(response, convert_responses.search_results_included(request.include))

    def _follow(
        self, request: response_service_pb2.GetResponseRequest, heartbeat: float | None
    ) -> AsyncIterator[list[ResponseEvent]]:
        starting_after = request.starting_after if request.HasField("starting_after") else None
        return self._responses.follow(current_caller(), request.response_id, starting_after, heartbeat)

    async def _sse(
        self, batches: AsyncIterator[list[ResponseEvent]], search_results: bool
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        with self._streaming("sse"):
            async for batch in batches:
                frames = (sse.response_frame(event, search_results) for event in batch)
                data = b"".join(frames) if batch else sse.SSE_HEARTBEAT
                yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=data)

    async def _typed(
        self, batches: AsyncIterator[list[ResponseEvent]], search_results: bool
    ) -> AsyncIterator[response_pb2.ResponseStreamEvent]:
        # gRPC keeps idle streams alive itself: no heartbeats here.
        with self._streaming("grpc"):
            async for batch in batches:
                for event in batch:
                    yield convert_responses.event_message(event, search_results)

    def _streaming(self, transport: str) -> AbstractContextManager[None]:
        """Counts the stream as active while it is open."""
        if self._metrics is None:
            return contextlib.nullcontext()
        return self._metrics.active_streams.labels(transport).track_inprogress()

    # ------------------------------------------------------------------ reading and changing responses

    async def DeleteResponse(
        self, request: response_service_pb2.DeleteResponseRequest, context: Context
    ) -> common_pb2.DeletionStatus:
        await self._responses.delete(current_caller(), request.response_id)
        return common_pb2.DeletionStatus(id=request.response_id, object="response", deleted=True)

    async def CancelResponse(
        self, request: response_service_pb2.CancelResponseRequest, context: Context
    ) -> response_pb2.Response:
        return convert_responses.response_message(await self._responses.cancel(current_caller(), request.response_id))

    async def ListInputItems(
        self, request: response_service_pb2.ListInputItemsRequest, context: Context
    ) -> item_pb2.ItemList:
        validation.check_include(list(request.include))
        page = await self._responses.input_items(current_caller(), request.response_id, convert.page_request(request))
        results = convert_responses.search_results_included(request.include)
        return convert_responses.item_list_message(page.items, page.has_more, results)


def _json(data: dict[str, Any]) -> httpbody_pb2.HttpBody:
    return httpbody_pb2.HttpBody(
        content_type=JSON, data=json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    )
