from __future__ import annotations

import contextlib
import json
from asyncio import to_thread
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import grpc
from google.api import httpbody_pb2

from sovereign_assistant.v1 import run_pb2, run_service_pb2, run_service_pb2_grpc
from sovereign_server import convert, sse, validation
from sovereign_server.caller import current_caller
from sovereign_server.files.service import FileService, inline_vector_stores
from sovereign_server.metrics import Metrics
from sovereign_server.runs import EventChannel, RunManager
from sovereign_server.runs.channel import merge_text_deltas
from sovereign_server.runs.coordination import EventSource
from sovereign_server.runs.images import check_image_files, image_file_references
from sovereign_server.runs.model import RunOptions
from sovereign_server.servicers.scope import CallerScoped
from sovereign_storage import Repository, RunRecord

Context = grpc.aio.ServicerContext[Any, Any]

JSON = "application/json"
EVENT_STREAM = "text/event-stream"


class RunServicer(CallerScoped, run_service_pb2_grpc.RunServiceServicer):
    """The run-creating routes answer JSON callers with `HttpBody` (one JSON run, or OpenAI's
    Server-Sent Events when `stream` is set) and gRPC callers with typed `RunEvent`s; both render
    the same events from `RunManager`."""

    def __init__(
        self, repository: Repository, runs: RunManager, metrics: Metrics | None = None, files: FileService | None = None
    ) -> None:
        super().__init__(repository)
        self._runs = runs
        self._metrics = metrics
        # Makes the vector stores of a new thread's `tool_resources.file_search.vector_stores` helpers.
        self._files = files

    # ------------------------------------------------------------------ creating and resuming runs

    async def CreateRun(
        self, request: run_service_pb2.CreateRunRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        options = await self._run_options(request)
        run, channel = await self._runs.create_run(current_caller(), request.thread_id, options)
        async for body in self._http(run, channel, request.stream, convert.SEARCH_CONTENT in request.include):
            yield body

    async def CreateThreadAndRun(
        self, request: run_service_pb2.CreateThreadAndRunRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        run, channel = await self._create_thread_and_run(request)
        async for body in self._http(run, channel, request.stream):
            yield body

    async def SubmitToolOutputs(
        self, request: run_service_pb2.SubmitToolOutputsRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        run, channel = await self._submit_tool_outputs(request)
        async for body in self._http(run, channel, request.stream):
            yield body

    async def CreateRunEvents(
        self, request: run_service_pb2.CreateRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        options = await self._run_options(request)
        _, channel = await self._runs.create_run(current_caller(), request.thread_id, options)
        async for event in self._typed(channel, convert.SEARCH_CONTENT in request.include):
            yield event

    async def CreateThreadAndRunEvents(
        self, request: run_service_pb2.CreateThreadAndRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        _, channel = await self._create_thread_and_run(request)
        async for event in self._typed(channel):
            yield event

    async def SubmitToolOutputsEvents(
        self, request: run_service_pb2.SubmitToolOutputsRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        _, channel = await self._submit_tool_outputs(request)
        async for event in self._typed(channel):
            yield event

    async def _create_thread_and_run(
        self, request: run_service_pb2.CreateThreadAndRunRequest
    ) -> tuple[RunRecord, EventChannel]:
        thread, options = convert.new_thread(request.thread), await self._run_options(request)
        await self._check_image_files(image_file_references(thread.messages, "thread.messages"))
        caller = current_caller()
        resources = await inline_vector_stores(
            self._files, caller.project_id, thread.tool_resources, "thread.tool_resources"
        )
        return await self._runs.create_thread_and_run(caller, replace(thread, tool_resources=resources), options)

    async def _run_options(self, request: Any) -> RunOptions:
        options = convert.run_options(request)
        await self._check_image_files(image_file_references(options.additional_messages, "additional_messages"))
        return options

    async def _check_image_files(self, references: list[tuple[str, str]]) -> None:
        await check_image_files(self._runs.image_files, self._repository.project_id, references)

    async def _submit_tool_outputs(
        self, request: run_service_pb2.SubmitToolOutputsRequest
    ) -> tuple[RunRecord, EventChannel]:
        outputs = convert.tool_outputs(request)
        return await self._runs.submit_tool_outputs(current_caller(), request.thread_id, request.run_id, outputs)

    async def StreamRun(
        self, request: run_service_pb2.StreamRunRequest, context: Context
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        source = await self._runs.follow_run(current_caller(), request.thread_id, request.run_id)
        async for body in self._sse(source):
            yield body

    async def StreamRunEvents(
        self, request: run_service_pb2.StreamRunRequest, context: Context
    ) -> AsyncIterator[run_pb2.RunEvent]:
        source = await self._runs.follow_run(current_caller(), request.thread_id, request.run_id)
        async for event in self._typed(source):
            yield event

    async def _http(
        self, run: RunRecord, channel: EventChannel, stream: bool, search_content: bool = False
    ) -> AsyncIterator[httpbody_pb2.HttpBody]:
        if not stream:
            data = json.dumps(convert.run_json(run), separators=(",", ":"), ensure_ascii=False).encode()
            yield httpbody_pb2.HttpBody(content_type=JSON, data=data)
            return
        async for body in self._sse(channel, search_content):
            yield body

    async def _sse(self, channel: EventSource, search_content: bool = False) -> AsyncIterator[httpbody_pb2.HttpBody]:
        # `search_content`: the run was created with `include[]` asking for file search results' text.
        with self._streaming("sse"):
            async for batch in channel.follow(self._runs.settings.heartbeat):
                frames = (sse.frame(event, search_content) for event in merge_text_deltas(batch))
                data = b"".join(frames) if batch else sse.SSE_HEARTBEAT
                yield httpbody_pb2.HttpBody(content_type=EVENT_STREAM, data=data)

    async def _typed(self, channel: EventSource, search_content: bool = False) -> AsyncIterator[run_pb2.RunEvent]:
        # gRPC keeps idle streams alive itself: no heartbeats here.
        with self._streaming("grpc"):
            async for batch in channel.follow():
                for event in merge_text_deltas(batch):
                    yield convert.event_message(event, search_content)

    def _streaming(self, transport: str) -> AbstractContextManager[None]:
        """Counts the stream as active while it is open."""
        if self._metrics is None:
            return contextlib.nullcontext()
        return self._metrics.active_streams.labels(transport).track_inprogress()

    # ------------------------------------------------------------------ reading and changing runs

    async def ListRuns(
        self, request: run_service_pb2.ListRunsRequest, context: Context
    ) -> run_service_pb2.ListRunsResponse:
        page = await to_thread(
            self._repository.list_runs,
            request.thread_id,
            convert.page_request(request),
        )
        return run_service_pb2.ListRunsResponse(
            data=[convert.run_message(run) for run in page.items],
            **convert.list_envelope([run.id for run in page.items], page.has_more),
        )

    async def GetRun(self, request: run_service_pb2.GetRunRequest, context: Context) -> run_pb2.Run:
        return convert.run_message(await to_thread(self._repository.get_run, request.thread_id, request.run_id))

    async def ModifyRun(self, request: run_service_pb2.ModifyRunRequest, context: Context) -> run_pb2.Run:
        run = await to_thread(self._repository.get_run, request.thread_id, request.run_id)
        if request.HasField("metadata"):
            metadata = validation.check_metadata(convert.from_value(request, "metadata"))
            run = await to_thread(self._repository.update_run, run.thread_id, run.id, {"metadata": metadata})
        return convert.run_message(run)

    async def CancelRun(self, request: run_service_pb2.CancelRunRequest, context: Context) -> run_pb2.Run:
        return convert.run_message(await self._runs.cancel_run(current_caller(), request.thread_id, request.run_id))

    async def ListRunSteps(
        self, request: run_service_pb2.ListRunStepsRequest, context: Context
    ) -> run_service_pb2.ListRunStepsResponse:
        page = await to_thread(
            self._repository.list_steps,
            request.thread_id,
            request.run_id,
            convert.page_request(request),
        )
        return run_service_pb2.ListRunStepsResponse(
            data=[convert.step_message(step, convert.SEARCH_CONTENT in request.include) for step in page.items],
            **convert.list_envelope([step.id for step in page.items], page.has_more),
        )

    async def GetRunStep(self, request: run_service_pb2.GetRunStepRequest, context: Context) -> run_pb2.RunStep:
        step = await to_thread(self._repository.get_step, request.thread_id, request.run_id, request.step_id)
        return convert.step_message(step, convert.SEARCH_CONTENT in request.include)
