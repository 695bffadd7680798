"""The run layer's vocabulary: the status tables of runs, steps and messages with the event each
change emits, the events a run publishes, and the plain values callers hand in.

Everything here is a plain value: transports turn requests into these and render the events;
nothing in `runs/` sees protobuf.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeAlias, TypeVar

from sovereign_server.caller import Caller
from sovereign_server.runs.generation import TokenTiming
from sovereign_storage import (
    FileCitation,
    MessageRecord,
    MessageStatus,
    NewMessage,
    ResponseStatus,
    RunRecord,
    RunStatus,
    RunStepRecord,
    StepStatus,
    ThreadRecord,
    TruncationStrategy,
    Usage,
)


class EventName(StrEnum):
    """OpenAI's names of a run's stream events."""

    THREAD_CREATED = "thread.created"
    RUN_CREATED = "thread.run.created"
    RUN_QUEUED = "thread.run.queued"
    RUN_IN_PROGRESS = "thread.run.in_progress"
    RUN_REQUIRES_ACTION = "thread.run.requires_action"
    RUN_COMPLETED = "thread.run.completed"
    RUN_INCOMPLETE = "thread.run.incomplete"
    RUN_FAILED = "thread.run.failed"
    RUN_CANCELLING = "thread.run.cancelling"
    RUN_CANCELLED = "thread.run.cancelled"
    RUN_EXPIRED = "thread.run.expired"
    STEP_CREATED = "thread.run.step.created"
    STEP_IN_PROGRESS = "thread.run.step.in_progress"
    STEP_DELTA = "thread.run.step.delta"
    STEP_COMPLETED = "thread.run.step.completed"
    STEP_FAILED = "thread.run.step.failed"
    STEP_CANCELLED = "thread.run.step.cancelled"
    STEP_EXPIRED = "thread.run.step.expired"
    MESSAGE_CREATED = "thread.message.created"
    MESSAGE_IN_PROGRESS = "thread.message.in_progress"
    MESSAGE_DELTA = "thread.message.delta"
    MESSAGE_COMPLETED = "thread.message.completed"
    MESSAGE_INCOMPLETE = "thread.message.incomplete"
    # A failure after the stream began: HTTP clients can no longer get an error status.
    ERROR = "error"
    DONE = "done"


# ---------------------------------------------------------------- the transition tables

S = TypeVar("S", RunStatus, StepStatus, MessageStatus, ResponseStatus)
# The names of the events a status change emits (each API names its own).
E = TypeVar("E", bound=StrEnum)


class StateTable(Generic[S, E]):
    """Which status may follow which, and the event a change into each status emits."""

    def __init__(self, rows: Mapping[S, tuple[S, ...]], events: Mapping[S, E]) -> None:
        self._follows: dict[S, frozenset[S]] = {status: frozenset(after) for status, after in rows.items()}
        self._events: dict[S, E] = dict(events)

    def allows(self, source: S, to: S) -> bool:
        return to in self._follows.get(source, frozenset())

    def sources(self, to: S) -> frozenset[S]:
        """The statuses a change into `to` may start from."""
        return frozenset(source for source, after in self._follows.items() if to in after)

    def event(self, to: S) -> E:
        return self._events[to]


RUNS = StateTable[RunStatus, EventName](
    {
        RunStatus.QUEUED: (RunStatus.IN_PROGRESS, RunStatus.CANCELLING, RunStatus.FAILED, RunStatus.EXPIRED),
        RunStatus.IN_PROGRESS: (
            RunStatus.REQUIRES_ACTION,
            RunStatus.COMPLETED,
            RunStatus.INCOMPLETE,
            RunStatus.FAILED,
            RunStatus.CANCELLING,
        ),
        # Tool outputs queue the run again; a caller may cancel it; nobody answering expires it.
        RunStatus.REQUIRES_ACTION: (RunStatus.QUEUED, RunStatus.CANCELLING, RunStatus.EXPIRED),
        RunStatus.CANCELLING: (RunStatus.CANCELLED,),
    },
    {
        RunStatus.QUEUED: EventName.RUN_QUEUED,
        RunStatus.IN_PROGRESS: EventName.RUN_IN_PROGRESS,
        RunStatus.REQUIRES_ACTION: EventName.RUN_REQUIRES_ACTION,
        RunStatus.CANCELLING: EventName.RUN_CANCELLING,
        RunStatus.CANCELLED: EventName.RUN_CANCELLED,
        RunStatus.FAILED: EventName.RUN_FAILED,
        RunStatus.COMPLETED: EventName.RUN_COMPLETED,
        RunStatus.INCOMPLETE: EventName.RUN_INCOMPLETE,
        RunStatus.EXPIRED: EventName.RUN_EXPIRED,
    },
)

STEPS = StateTable[StepStatus, EventName](
    {
        StepStatus.IN_PROGRESS: (
            StepStatus.COMPLETED,
            StepStatus.FAILED,
            StepStatus.CANCELLED,
            StepStatus.EXPIRED,
        ),
    },
    {
        StepStatus.IN_PROGRESS: EventName.STEP_IN_PROGRESS,
        StepStatus.COMPLETED: EventName.STEP_COMPLETED,
        StepStatus.FAILED: EventName.STEP_FAILED,
        StepStatus.CANCELLED: EventName.STEP_CANCELLED,
        StepStatus.EXPIRED: EventName.STEP_EXPIRED,
    },
)

MESSAGES = StateTable[MessageStatus, EventName](
    {MessageStatus.IN_PROGRESS: (MessageStatus.COMPLETED, MessageStatus.INCOMPLETE)},
    {
        MessageStatus.IN_PROGRESS: EventName.MESSAGE_IN_PROGRESS,
        MessageStatus.COMPLETED: EventName.MESSAGE_COMPLETED,
        MessageStatus.INCOMPLETE: EventName.MESSAGE_INCOMPLETE,
    },
)

# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class MessageDelta:
    """Text appended to a reply's content part `index`, with the annotations it brings."""

    message_id: str
    text: str
    index: int = 0
    annotations: tuple[FileCitation, ...] = ()


@dataclass(frozen=True)
class ToolCallDelta:
    """A fragment of tool call `index` in a `tool_calls` step: the first carries its id and name."""

    step_id: str
    index: int
    call_id: str | None
    name: str | None
    arguments: str
    # `function`, or `file_search` for a search the server runs (introduced whole, with no arguments).
    kind: str = "function"


@dataclass(frozen=True)
class StreamError:
    """The body of an `error` event: OpenAI's error object, without the server's internals."""

    message: str
    type: str = "server_error"
    code: str | None = None


EventData: TypeAlias = (
    ThreadRecord | RunRecord | RunStepRecord | MessageRecord | MessageDelta | ToolCallDelta | StreamError | None
)


@dataclass(frozen=True)
class Event:
    name: EventName
    data: EventData = None


DONE = Event(EventName.DONE)

# ---------------------------------------------------------------- what callers hand in


@dataclass(frozen=True)
class RunOptions:
    """What a caller asks of a new run; a None (or absent) setting comes from the assistant."""

    assistant_id: str
    model: str | None = None
    instructions: str | None = None
    additional_instructions: str | None = None
    additional_messages: tuple[NewMessage, ...] = ()
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    temperature: float | None = None
    top_p: float | None = None
    max_prompt_tokens: int | None = None
    max_completion_tokens: int | None = None
    truncation_strategy: TruncationStrategy = field(default_factory=TruncationStrategy)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool | None = None
    response_format: Any = None


@dataclass(frozen=True)
class NewThread:
    """The thread a create-and-run makes."""

    messages: tuple[NewMessage, ...] = ()
    tool_resources: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolOutput:
    tool_call_id: str
    output: str


# ---------------------------------------------------------------- what the run layer reports


class RunObserver(Protocol):
    """Told what runs do as they do it (metrics and rate limits listen); calls must be quick."""

    def stretch_ended(self, caller: Caller, run: RunRecord, usage: Usage) -> None:
        """A stretch of execution left `run` in its status, having used `usage` (this stretch's)."""

    def token_timing(self, model: str, backend: str) -> TokenTiming | None:
        """Where one generation of `model` on `backend` reports its token times (None: nowhere);
        asked once per generation, so that each token costs only the report itself."""

    def engine_failed(self, code: str) -> None: ...


class NoObserver:
    def stretch_ended(self, caller: Caller, run: RunRecord, usage: Usage) -> None:
        pass

    def token_timing(self, model: str, backend: str) -> TokenTiming | None:
        return None

    def engine_failed(self, code: str) -> None:
        pass
