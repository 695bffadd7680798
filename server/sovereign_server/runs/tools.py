"""Tools the server runs itself during a run (`file_search`), as the run layer sees them: a narrow
protocol that `RunExecution` calls at three points, implemented outside `runs/` (the files package).

    prepare   before each model turn: offer the tools (or search ahead, for models that cannot call
              tools), given the run's context
    execute   when the model called one of them: run the calls, record them as a completed
              `tool_calls` step, publish its events
    cite      when the reply is complete: the `file_citation` annotations of its text, and any
              citation to append
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sovereign_server.engines import GenerationRequest
from sovereign_server.runs.model import Event
from sovereign_storage import FileCitation, FunctionCall, MessageRecord, Repository, RunRecord, RunStepRecord, Usage


class ToolHost(Protocol):
    """What a server tool may use of the execution that calls it."""

    @property
    def run(self) -> RunRecord: ...

    @property
    def repository(self) -> Repository: ...

    def publish(self, *events: Event) -> None: ...


@dataclass(frozen=True)
class Citation:
    """A reply's citations: `suffix` is text to append (empty when the reply cited by itself)."""

    suffix: str
    annotations: tuple[FileCitation, ...]


class ServerTools(Protocol):
    def handles(self, name: str) -> bool:
        """Whether a tool call of this name is the server's to run."""
        ...

    def used_by(self, run: RunRecord) -> bool:
        """Whether the run has any of these tools (they may then write steps before the reply)."""
        ...

    async def prepare(
        self,
        host: ToolHost,
        request: GenerationRequest,
        messages: Sequence[MessageRecord],
        steps: Sequence[RunStepRecord],
    ) -> GenerationRequest:
        """The request of the next model turn, with the server's tools offered."""
        ...

    async def execute(self, host: ToolHost, calls: Sequence[FunctionCall], usage: Usage | None) -> None:
        """Runs the calls and records them (with `usage`) as a completed step of the run."""
        ...

    async def cite(self, host: ToolHost, text: str) -> Citation | None:
        """The annotations of a finished reply; None when it has nothing to cite."""
        ...
