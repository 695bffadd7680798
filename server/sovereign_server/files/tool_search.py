"""What the `file_search` tool is, whichever API runs it (Assistants runs, `files.run_tool`; the
Responses API, `files.response_tool`): the function the model is offered, the search itself (one
model call, one `FileSearchCall` with its results), and the citations a reply makes with the
markers `【n:m†file name】` the results reached the model under (search n, result m).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sovereign_server.engines import FunctionTool, GenerationRequest
from sovereign_server.files.search import SearchRequest
from sovereign_server.files.service import FileService
from sovereign_server.runs.tools import Citation
from sovereign_storage import FILE_SEARCH, FileCitation, FileSearchCall, FileSearchResult, search_marker

# OpenAI's default for its larger models.
DEFAULT_MAX_RESULTS = 20
# Files cited at the end of a reply that cited nothing itself.
MAX_APPENDED_CITATIONS = 3
_MARKER = re.compile(r"【(\d+):(\d+)†[^】]*】")

FILE_SEARCH_FUNCTION = FunctionTool(
    name=FILE_SEARCH,
    description=(
        "Search the files the user provided for passages relevant to a query. Cite what you use with "
        "the marker shown above each passage, such as 【0:1†notes.txt】."
    ),
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string", "description": "What to look for, in a few words."}},
        "required": ["query"],
    },
)


@dataclass(frozen=True)
class SearchOptions:
    """How a `file_search` tool searches: the tool's options, as each API spells them."""

    vector_store_ids: tuple[str, ...]
    max_num_results: int = DEFAULT_MAX_RESULTS
    score_threshold: float = 0.0
    # A filter as `filters.check_filter` returns it.
    filters: Mapping[str, Any] | None = None


def offer(request: GenerationRequest) -> GenerationRequest:
    """`request` with the `file_search` function offered; a `tool_choice` naming the tool names
    the function."""
    choice = request.tool_choice
    if isinstance(choice, Mapping) and choice.get("type") == FILE_SEARCH:
        choice = {"type": "function", "function": {"name": FILE_SEARCH}}
    return replace(request, tools=(*request.tools, FILE_SEARCH_FUNCTION), tool_choice=choice)


class FileSearcher:
    """Runs one search of a project's vector stores for a call."""

    def __init__(self, files: FileService) -> None:
        self.files = files

    async def search(self, project_id: str, options: SearchOptions, call: FileSearchCall) -> FileSearchCall:
        """`call` with its results (none for an empty query or no stores)."""
        hits = []
        if options.vector_store_ids and call.query.strip():
            request = SearchRequest(
                vector_store_ids=options.vector_store_ids,
                queries=(call.query,),
                max_num_results=options.max_num_results,
                score_threshold=options.score_threshold,
                filters=options.filters,
            )
            hits = await self.files.search(project_id, request)
        results = tuple(
            FileSearchResult(hit.file_id, hit.filename, hit.score, hit.text, hit.attributes) for hit in hits
        )
        return replace(call, results=results, score_threshold=options.score_threshold)


def cite(text: str, searches: Sequence[FileSearchCall]) -> Citation | None:
    """The `file_citation` annotations of the markers in `text`; a reply that cites nothing gets the
    markers of the files the last search found appended. None when there is nothing to cite."""
    by_number = {call.number: call for call in searches}
    if not by_number:
        return None
    annotations = []
    for match in _MARKER.finditer(text):
        call = by_number.get(int(match.group(1)))
        index = int(match.group(2))
        if call is not None and index < len(call.results):
            result = call.results[index]
            annotations.append(
                FileCitation(match.group(0), match.start(), match.end(), result.file_id, result.file_name)
            )
    if annotations:
        return Citation("", tuple(annotations))
    last = max(by_number.values(), key=lambda call: call.number)
    suffix = ""
    seen: set[str] = set()
    appended = []
    for index, result in enumerate(last.results):
        if result.file_id in seen or len(seen) == MAX_APPENDED_CITATIONS:
            continue
        seen.add(result.file_id)
        marker = search_marker(last, index)
        start = len(text) + len(suffix) + 1
        appended.append(FileCitation(marker, start, start + len(marker), result.file_id, result.file_name))
        suffix += " " + marker
    return Citation(suffix, tuple(appended)) if appended else None
