"""The `file_search` tool of the Responses API, run by the server itself
(`responses.tools.ResponseTools`): the search, the function offered and the citations are those of
Assistants runs (`files.tool_search`); here the vector stores and options come from the tool itself
(`{"type": "file_search", "vector_store_ids", "max_num_results", "ranking_options", "filters"}`).
"""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import Mapping, Sequence
from typing import Any

from sovereign_server.engines import GenerationRequest
from sovereign_server.files.run_tool import MODES
from sovereign_server.files.service import FileService
from sovereign_server.files.tool_search import DEFAULT_MAX_RESULTS, FileSearcher, SearchOptions, cite, offer
from sovereign_server.runs.tools import Citation
from sovereign_storage import FILE_SEARCH, FileSearchCall, ResponseRecord


def _tool(tools: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((tool for tool in tools if tool.get("type") == FILE_SEARCH), None)


def search_options(tool: Mapping[str, Any]) -> SearchOptions:
    ranking = tool.get("ranking_options") or {}
    return SearchOptions(
        tuple(tool.get("vector_store_ids") or ()),
        int(tool.get("max_num_results") or DEFAULT_MAX_RESULTS),
        float(ranking.get("score_threshold") or 0.0),
        tool.get("filters"),
    )


class ResponseFileSearch:
    """`ResponseTools` for `file_search` (see the module docstring)."""

    def __init__(self, files: FileService, mode: str = "tools") -> None:
        if mode not in MODES:
            raise ValueError(f"file search mode must be one of {MODES}, got {mode!r}")
        self._searcher = FileSearcher(files)
        self.prefetch = mode == "prefetch"

    def hosts(self, tool_type: str) -> bool:
        return tool_type == FILE_SEARCH

    async def check(self, project_id: str, tools: Sequence[Mapping[str, Any]]) -> None:
        store = self._searcher.files.store(project_id)
        for tool in tools:
            if tool.get("type") == FILE_SEARCH:
                for store_id in tool["vector_store_ids"]:
                    # Raises the storage's NotFoundError (a 404) for another project's store too.
                    await to_thread(store.get_vector_store, store_id)

    def used_by(self, response: ResponseRecord) -> bool:
        return _tool(response.tools) is not None

    def handles(self, name: str) -> bool:
        return name == FILE_SEARCH

    def offer(self, response: ResponseRecord, request: GenerationRequest) -> GenerationRequest:
        if self.prefetch or not self.used_by(response):
            return request
        return offer(request)

    async def search(self, project_id: str, response: ResponseRecord, call: FileSearchCall) -> FileSearchCall:
        tool = _tool(response.tools)
        if tool is None:
            return call
        return await self._searcher.search(project_id, search_options(tool), call)

    def cite(self, text: str, searches: Sequence[FileSearchCall]) -> Citation | None:
        return cite(text, searches)
