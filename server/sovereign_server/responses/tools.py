"""Tools the server runs itself during a response (`file_search`), as the response layer sees them:
a narrow protocol that `ResponseExecution` calls, implemented outside `responses/` (the files
package) and handed to `ResponseManager` as runs get theirs (`runs.tools.ServerTools`).

    check     when the response is created: the tools name what the caller's project has
    offer     before each model turn: the request with the tools offered
    search    when the model called one (or before the first turn, for models that cannot call
              tools: `prefetch`): one search, as the `FileSearchCall` item it becomes
    cite      when the reply is complete: its `file_citation` annotations, and any to append
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from sovereign_server.engines import GenerationRequest
from sovereign_server.runs.tools import Citation
from sovereign_storage import FileSearchCall, ResponseRecord


class ResponseTools(Protocol):
    # Search with the latest user message before generating, instead of offering the tool.
    prefetch: bool

    def hosts(self, tool_type: str) -> bool:
        """Whether a response tool of this `type` is the server's to run."""
        ...

    async def check(self, project_id: str, tools: Sequence[Mapping[str, Any]]) -> None:
        """Raises NotFoundError when a tool names what the project does not have (a vector store)."""
        ...

    def used_by(self, response: ResponseRecord) -> bool:
        """Whether the response has any of these tools."""
        ...

    def handles(self, name: str) -> bool:
        """Whether a call of this function name is the server's to run."""
        ...

    def offer(self, response: ResponseRecord, request: GenerationRequest) -> GenerationRequest:
        """The request of a model turn with the server's tools offered (unchanged in `prefetch`)."""
        ...

    async def search(self, project_id: str, response: ResponseRecord, call: FileSearchCall) -> FileSearchCall:
        """`call` run: with its results."""
        ...

    def cite(self, text: str, searches: Sequence[FileSearchCall]) -> Citation | None:
        """The annotations of a finished reply, given the searches it may cite."""
        ...
