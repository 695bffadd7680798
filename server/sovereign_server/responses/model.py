"""The Responses API's vocabulary: the status table of responses with the event each change emits,
the events a response publishes, and the plain values callers hand in.

Everything here is a plain value: transports turn requests into these and render the events;
nothing in `responses/` sees protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, TypeAlias

from sovereign_server.caller import Caller
from sovereign_server.runs.model import NoObserver, RunObserver, StateTable, StreamError
from sovereign_storage import FileCitation, Item, ResponseRecord, ResponseStatus


class ResponseEventType(StrEnum):
    """OpenAI's names of a response's stream events (their `type`, and their SSE `event:` line)."""

    CREATED = "response.created"
    QUEUED = "response.queued"
    IN_PROGRESS = "response.in_progress"
    COMPLETED = "response.completed"
    INCOMPLETE = "response.incomplete"
    FAILED = "response.failed"
    OUTPUT_ITEM_ADDED = "response.output_item.added"
    OUTPUT_ITEM_DONE = "response.output_item.done"
    CONTENT_PART_ADDED = "response.content_part.added"
    CONTENT_PART_DONE = "response.content_part.done"
    OUTPUT_TEXT_DELTA = "response.output_text.delta"
    OUTPUT_TEXT_DONE = "response.output_text.done"
    FUNCTION_CALL_ARGUMENTS_DELTA = "response.function_call_arguments.delta"
    FUNCTION_CALL_ARGUMENTS_DONE = "response.function_call_arguments.done"
    FILE_SEARCH_CALL_IN_PROGRESS = "response.file_search_call.in_progress"
    FILE_SEARCH_CALL_SEARCHING = "response.file_search_call.searching"
    FILE_SEARCH_CALL_COMPLETED = "response.file_search_call.completed"
    # A failure after the stream began: HTTP clients can no longer get an error status.
    ERROR = "error"


# OpenAI's stream has no event for a cancelled response: its stream just ends.
RESPONSES = StateTable[ResponseStatus, ResponseEventType](
    {
        ResponseStatus.QUEUED: (ResponseStatus.IN_PROGRESS, ResponseStatus.FAILED, ResponseStatus.CANCELLED),
        ResponseStatus.IN_PROGRESS: (
            ResponseStatus.COMPLETED,
            ResponseStatus.INCOMPLETE,
            ResponseStatus.FAILED,
            ResponseStatus.CANCELLED,
        ),
    },
    {
        ResponseStatus.QUEUED: ResponseEventType.QUEUED,
        ResponseStatus.IN_PROGRESS: ResponseEventType.IN_PROGRESS,
        ResponseStatus.COMPLETED: ResponseEventType.COMPLETED,
        ResponseStatus.INCOMPLETE: ResponseEventType.INCOMPLETE,
        ResponseStatus.FAILED: ResponseEventType.FAILED,
    },
)
# Every status but these two is final.
UNFINISHED: frozenset[ResponseStatus] = RESPONSES.sources(ResponseStatus.FAILED)

# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class OutputItemEvent:
    """`response.output_item.added` / `.done`: an output item as it starts or as it ended."""

    output_index: int
    item: Item


@dataclass(frozen=True)
class ContentPartEvent:
    """`response.content_part.added` / `.done` (an `output_text` part), and `response.output_text.delta`
    / `.done`: `text` is the part's text so far, the delta, or the whole text; `annotations` the
    citations of the whole text."""

    item_id: str
    output_index: int
    content_index: int
    text: str
    annotations: tuple[FileCitation, ...] = ()


@dataclass(frozen=True)
class ItemEvent:
    """`response.file_search_call.in_progress` / `.searching` / `.completed`: a step of the item's search."""

    item_id: str
    output_index: int


@dataclass(frozen=True)
class ArgumentsEvent:
    """`response.function_call_arguments.delta` (a fragment) / `.done` (all of them, with the name)."""

    item_id: str
    output_index: int
    arguments: str
    name: str | None = None


ResponseEventData: TypeAlias = (
    ResponseRecord | OutputItemEvent | ContentPartEvent | ArgumentsEvent | ItemEvent | StreamError
)


@dataclass(frozen=True)
class ResponseEvent:
    type: ResponseEventType
    # The event's position in its response's stream, from 0: a resumed stream skips those it had.
    sequence_number: int
    data: ResponseEventData


# ---------------------------------------------------------------- what callers hand in


@dataclass(frozen=True)
class ItemReference:
    """An input item given by id: an item of the conversation or of the chain of earlier responses."""

    id: str


InputItem: TypeAlias = Item | ItemReference


@dataclass(frozen=True)
class ResponseOptions:
    """What a caller asks of a new response; a None setting comes from the assistant named by
    `prompt_id`, if any, else OpenAI's default."""

    model: str | None
    input: tuple[InputItem, ...] = ()
    instructions: str | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = "auto"
    parallel_tool_calls: bool | None = None
    previous_response_id: str | None = None
    conversation_id: str | None = None
    store: bool = True
    background: bool = False
    max_output_tokens: int | None = None
    truncation: str = "disabled"
    temperature: float | None = None
    top_p: float | None = None
    text_format: dict[str, Any] | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    prompt_id: str | None = None


# ---------------------------------------------------------------- what responses report


class ResponseObserver(RunObserver, Protocol):
    """Told what runs and responses do (metrics and rate limits listen); calls must be quick."""

    def response_ended(self, caller: Caller, response: ResponseRecord) -> None:
        """A response ended in its status, having used its `usage`."""


class NoResponseObserver(NoObserver):
    def response_ended(self, caller: Caller, response: ResponseRecord) -> None:
        pass
