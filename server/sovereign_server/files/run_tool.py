"""The `file_search` tool of Assistants runs, run by the server itself (`runs.tools.ServerTools`).

The run searches the vector stores of its thread and of its assistant (`tool_resources.file_search`)
with the tool's `max_num_results` and `ranking_options`. Two ways to reach the model:

- `tools` (default): the model is offered a `file_search(query)` function; when it calls it, the
  server searches, records a completed `file_search` tool-call step, and generates again with the
  results as the call's output;
- `prefetch`, for backends that cannot call tools: before generating, the server searches with the
  latest user message, records the step, and gives the model the results as a system message.

Each result reaches the model under a marker `【n:m†file name】` (search n of the run, result m);
markers in the reply become `file_citation` annotations, and a reply that cites nothing gets the
markers of the files its last search found appended.
"""

from __future__ import annotations

import contextlib
from asyncio import to_thread
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from sovereign_server.engines import GenerationRequest
from sovereign_server.files.service import FileService
from sovereign_server.files.tool_search import DEFAULT_MAX_RESULTS, FileSearcher, SearchOptions, cite, offer
from sovereign_server.runs.context import search_context
from sovereign_server.runs.execution import ALL_STEPS
from sovereign_server.runs.model import STEPS, Event, EventName, ToolCallDelta
from sovereign_server.runs.tools import Citation, ToolHost
from sovereign_storage import (
    FILE_SEARCH,
    ContentPart,
    FileSearchCall,
    FunctionCall,
    MessageRecord,
    NewStep,
    NotFoundError,
    RunRecord,
    RunStepRecord,
    StepStatus,
    TextContent,
    ToolCalls,
    Usage,
    new_id,
    search_query,
)

MODES = ("tools", "prefetch")


def _options(tools: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The run's `file_search` tool options, or None when it has no such tool."""
    for tool in tools:
        if tool.get("type") == FILE_SEARCH:
            return dict(tool.get(FILE_SEARCH) or {})
    return None


def _searches(steps: Sequence[RunStepRecord]) -> list[FileSearchCall]:
    return [
        call
        for step in steps
        if isinstance(step.step_details, ToolCalls)
        for call in step.step_details.tool_calls
        if isinstance(call, FileSearchCall)
    ]


def _last_user_text(messages: Sequence[MessageRecord]) -> str:
    return next((_text(m.content) for m in reversed(messages) if m.role == "user"), "")


def _text(content: Sequence[ContentPart]) -> str:
    return "\n".join(part.value for part in content if isinstance(part, TextContent))


class FileSearchTool:
    """`ServerTools` for `file_search` (see the module docstring)."""

    def __init__(self, files: FileService, mode: str = "tools") -> None:
        if mode not in MODES:
            raise ValueError(f"file search mode must be one of {MODES}, got {mode!r}")
        self._searcher = FileSearcher(files)
        self.mode = mode

    def handles(self, name: str) -> bool:
        return name == FILE_SEARCH

    def used_by(self, run: RunRecord) -> bool:
        return _options(run.tools) is not None

    async def prepare(
        self,
        host: ToolHost,
        request: GenerationRequest,
        messages: Sequence[MessageRecord],
        steps: Sequence[RunStepRecord],
    ) -> GenerationRequest:
        options = _options(host.run.tools)
        if options is None:
            return request
        if self.mode == "tools":
            return offer(request)
        searches = _searches(steps)
        prefetched = [call for call in searches if call.prefetched]
        if prefetched:
            call = prefetched[-1]
        else:
            query = _last_user_text(messages)
            call = (await self._record(host, [(new_id("call"), query)], options, len(searches), True, None))[0]
        context = search_context(call)
        conversation = list(request.messages)
        last_user = max((i for i, m in enumerate(conversation) if m.role == "user"), default=len(conversation))
        conversation.insert(last_user, context)
        return replace(request, messages=tuple(conversation))

    async def execute(self, host: ToolHost, calls: Sequence[FunctionCall], usage: Usage | None) -> None:
        options = _options(host.run.tools) or {}
        steps = await to_thread(host.repository.list_steps, host.run.thread_id, host.run.id, ALL_STEPS)
        fallback = ""
        queries = []
        for call in calls:
            query = search_query(call.arguments)
            if query is None:
                if not fallback:
                    newest = await to_thread(host.repository.newest_items, host.run.thread_id, 20)
                    fallback = _last_user_text(newest[::-1])
                query = fallback
            queries.append((call.id, query))
        await self._record(host, queries, options, len(_searches(steps.items)), False, usage)

    async def _record(
        self,
        host: ToolHost,
        queries: Sequence[tuple[str, str]],
        options: Mapping[str, Any],
        first_number: int,
        prefetched: bool,
        usage: Usage | None,
    ) -> list[FileSearchCall]:
        """Searches, as a `tool_calls` step that is created in progress and completed with the results."""
        threshold = float((options.get("ranking_options") or {}).get("score_threshold", 0.0))
        search = SearchOptions(
            tuple(await self._vector_stores(host)),
            int(options.get("max_num_results", DEFAULT_MAX_RESULTS)),
            threshold,
        )
        pending = tuple(
            FileSearchCall(call_id, query, (), threshold, first_number + index, prefetched)
            for index, (call_id, query) in enumerate(queries)
        )
        run = host.run
        step = await to_thread(
            host.repository.create_step,
            NewStep(run.id, run.thread_id, run.assistant_id, "tool_calls", ToolCalls(pending)),
        )
        host.publish(Event(EventName.STEP_CREATED, step), Event(EventName.STEP_IN_PROGRESS, step))
        host.publish(
            *(
                Event(EventName.STEP_DELTA, ToolCallDelta(step.id, index, call.id, None, "", kind=FILE_SEARCH))
                for index, call in enumerate(pending)
            )
        )
        done = [await self._searcher.search(host.repository.project_id, search, call) for call in pending]
        to = StepStatus.COMPLETED
        changes = {"step_details": ToolCalls(tuple(done)), "usage": usage}
        completed = await to_thread(host.repository.transition_step, step.id, to, STEPS.sources(to), changes)
        if completed.applied:
            host.publish(Event(STEPS.event(to), completed.record))
        return done

    async def _vector_stores(self, host: ToolHost) -> list[str]:
        """The vector stores of the run's thread, then of its assistant (if it still exists)."""

        def read() -> list[str]:
            repository = host.repository
            found: list[str] = []
            resources = [repository.get_thread(host.run.thread_id).tool_resources]
            with contextlib.suppress(NotFoundError):  # a deleted assistant's stores are gone from the run
                resources.append(repository.get_assistant(host.run.assistant_id).tool_resources)
            for resource in resources:
                for store_id in (resource.get(FILE_SEARCH) or {}).get("vector_store_ids", []):
                    if store_id not in found:
                        found.append(store_id)
            return found

        return await to_thread(read)

    async def cite(self, host: ToolHost, text: str) -> Citation | None:
        steps = await to_thread(host.repository.list_steps, host.run.thread_id, host.run.id, ALL_STEPS)
        return cite(text, _searches(steps.items))
