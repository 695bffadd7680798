"""Typed values stored inside records: statuses, content parts, step details, required actions,
errors and usage; and their one JSON form, which is OpenAI's (what the database columns hold and
what the transports print).

Statuses are `StrEnum`s, so a status compares equal to OpenAI's string and is stored as it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeAlias


class RunStatus(StrEnum):
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"


class StepStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    EXPIRED = "expired"


class MessageStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    INCOMPLETE = "incomplete"
    COMPLETED = "completed"


class ResponseStatus(StrEnum):
    """A response's status, as OpenAI's Responses API names them."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    CANCELLED = "cancelled"


# A thread has at most one run in an active status; no message may be added to it meanwhile.
ACTIVE_RUN_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION, RunStatus.CANCELLING}
)
TERMINAL_RUN_STATUSES: frozenset[RunStatus] = frozenset(RunStatus) - ACTIVE_RUN_STATUSES

Role: TypeAlias = Literal["user", "assistant"]
# A conversation item's role: the Assistants API knows the first two only.
ItemRole: TypeAlias = Literal["user", "assistant", "system", "developer"]
ItemType: TypeAlias = Literal["message", "function_call", "function_call_output", "file_search_call"]
StepType: TypeAlias = Literal["message_creation", "tool_calls"]
ImageDetail: TypeAlias = Literal["auto", "low", "high"]

# ---------------------------------------------------------------- content parts


@dataclass(frozen=True)
class FileCitation:
    """An annotation of a reply's text: `text` (a marker such as `【0:1†notes.txt】`, at
    `start_index`..`end_index` of the text) cites the file `file_id` (named `filename`: the Responses
    API shows the name, the Assistants API does not)."""

    text: str
    start_index: int
    end_index: int
    file_id: str
    filename: str = ""


@dataclass(frozen=True)
class TextContent:
    value: str
    annotations: tuple[FileCitation, ...] = ()


@dataclass(frozen=True)
class ImageUrlContent:
    url: str
    detail: ImageDetail | None = None


@dataclass(frozen=True)
class ImageFileContent:
    file_id: str
    detail: ImageDetail | None = None


ContentPart: TypeAlias = TextContent | ImageUrlContent | ImageFileContent

# ---------------------------------------------------------------- tool calls, steps, required actions


@dataclass(frozen=True)
class FunctionCall:
    """A function call the model made; `output` is None until the caller submits it."""

    id: str
    name: str
    arguments: str
    output: str | None = None


@dataclass(frozen=True)
class MessageCreation:
    """The details of a `message_creation` step."""

    message_id: str


@dataclass(frozen=True)
class ToolCalls:
    """The details of a `tool_calls` step."""

    tool_calls: tuple[ToolCall, ...] = ()


StepDetails: TypeAlias = MessageCreation | ToolCalls

FILE_SEARCH = "file_search"


@dataclass(frozen=True)
class FileSearchResult:
    file_id: str
    file_name: str
    score: float
    # The chunk's text: shown to callers only when they ask (`include[]`).
    content: str
    # The file's attributes in its vector store (the Responses API shows them).
    attributes: Mapping[str, str | int | float | bool] | None = None


@dataclass(frozen=True)
class FileSearchCall:
    """A `file_search` call the server ran itself: what it searched for, and what it found.

    It reads like a `FunctionCall` (`name`, `arguments`, `output`), so the calls a run made are
    replayed to the model alike. `prefetched` calls were made by the server before generating (for
    models that cannot call tools): they have no output to replay, their results reach the model
    another way."""

    id: str
    query: str
    results: tuple[FileSearchResult, ...] = ()
    score_threshold: float = 0.0
    # The `【n:m†name】` markers' `n`: this call's number among the run's searches.
    number: int = 0
    prefetched: bool = False

    @property
    def name(self) -> str:
        return FILE_SEARCH

    @property
    def arguments(self) -> str:
        return json.dumps({"query": self.query}, ensure_ascii=False)

    @property
    def output(self) -> str | None:
        return None if self.prefetched else search_results_text(self)


def search_query(arguments: str) -> str | None:
    """The query of a `file_search` call's arguments (`{"query": ...}`, as `FileSearchCall.arguments`
    writes them); None when they hold none."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return None
    query = value.get("query") if isinstance(value, dict) else None
    return query if isinstance(query, str) and query.strip() else None


def search_marker(call: FileSearchCall, index: int) -> str:
    return f"【{call.number}:{index}†{call.results[index].file_name}】"


def search_results_text(call: FileSearchCall) -> str:
    """The results as the model reads them, each under the marker that cites it."""
    if not call.results:
        return "No results found."
    return "\n\n".join(f"{search_marker(call, index)}\n{result.content}" for index, result in enumerate(call.results))


ToolCall: TypeAlias = FunctionCall | FileSearchCall


@dataclass(frozen=True)
class SubmitToolOutputs:
    """A run's `required_action`: the calls whose outputs it waits for."""

    tool_calls: tuple[FunctionCall, ...]


# ---------------------------------------------------------------- conversation items


@dataclass(frozen=True)
class FunctionCallDetails:
    """What a `function_call` item holds: a call the model made."""

    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class FunctionOutputDetails:
    """What a `function_call_output` item holds: the caller's result of a call."""

    call_id: str
    output: str


# A `file_search_call` item holds the search itself: the Responses API's file search runs as runs' does.
ItemDetails: TypeAlias = FunctionCallDetails | FunctionOutputDetails | FileSearchCall


@dataclass(frozen=True)
class Item:
    """One item of a conversation, or of a response's input or output: a message (no `details`),
    a function call, a function call's output, or a file search the server ran. A thread's messages
    are items without details."""

    id: str
    role: ItemRole
    status: MessageStatus = MessageStatus.COMPLETED
    content: tuple[ContentPart, ...] = ()
    details: ItemDetails | None = None

    @property
    def type(self) -> ItemType:
        if isinstance(self.details, FunctionCallDetails):
            return "function_call"
        if isinstance(self.details, FunctionOutputDetails):
            return "function_call_output"
        if isinstance(self.details, FileSearchCall):
            return "file_search_call"
        return "message"


# ---------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens)


@dataclass(frozen=True)
class LastError:
    """Why a run or step failed: OpenAI's `last_error` (`server_error`, `rate_limit_exceeded`, `invalid_prompt`)."""

    code: str
    message: str


@dataclass(frozen=True)
class IncompleteDetails:
    """Why a run or message ended early: `max_completion_tokens`, `max_prompt_tokens`, `max_tokens`,
    `run_cancelled`, `run_failed`, `run_expired`."""

    reason: str


@dataclass(frozen=True)
class TruncationStrategy:
    """How much of the thread a run reads: `auto`, or the `last_messages` newest ones."""

    type: Literal["auto", "last_messages"] = "auto"
    last_messages: int | None = None


# ---------------------------------------------------------------- to and from OpenAI's JSON


def citation_to_json(citation: FileCitation, *, stored: bool = False) -> dict[str, Any]:
    """A citation as the Assistants API shows it; `stored` adds the file's name."""
    cited: dict[str, Any] = {"file_id": citation.file_id}
    if stored and citation.filename:
        cited["filename"] = citation.filename
    return {
        "type": "file_citation",
        "text": citation.text,
        "start_index": citation.start_index,
        "end_index": citation.end_index,
        "file_citation": cited,
    }


def _citation_from_json(data: Mapping[str, Any]) -> FileCitation:
    cited = data["file_citation"]
    return FileCitation(
        data["text"], data["start_index"], data["end_index"], cited["file_id"], cited.get("filename", "")
    )


def content_to_json(part: ContentPart, *, stored: bool = False) -> dict[str, Any]:
    """A content part as the Assistants API shows it; `stored` keeps what only storage needs."""
    if isinstance(part, TextContent):
        annotations = [citation_to_json(citation, stored=stored) for citation in part.annotations]
        return {"type": "text", "text": {"value": part.value, "annotations": annotations}}
    if isinstance(part, ImageUrlContent):
        return {"type": "image_url", "image_url": _without_none(url=part.url, detail=part.detail)}
    return {"type": "image_file", "image_file": _without_none(file_id=part.file_id, detail=part.detail)}


def content_from_json(data: Mapping[str, Any]) -> ContentPart:
    if data["type"] == "text":
        annotations = data["text"].get("annotations") or ()
        return TextContent(
            data["text"]["value"],
            tuple(_citation_from_json(item) for item in annotations if item.get("type") == "file_citation"),
        )
    if data["type"] == "image_url":
        return ImageUrlContent(data["image_url"]["url"], data["image_url"].get("detail"))
    if data["type"] == "image_file":
        return ImageFileContent(data["image_file"]["file_id"], data["image_file"].get("detail"))
    raise ValueError(f"unknown content part type {data['type']!r}")


def function_call_to_json(call: FunctionCall, *, with_output: bool) -> dict[str, Any]:
    """A call as a step lists it (`with_output`, null until submitted) or as `required_action` asks for it."""
    function: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
    if with_output:
        function["output"] = call.output
    return {"id": call.id, "type": "function", "function": function}


def _function_call_from_json(data: Mapping[str, Any]) -> FunctionCall:
    function = data["function"]
    return FunctionCall(data["id"], function["name"], function["arguments"], function.get("output"))


def file_search_call_to_json(call: FileSearchCall, *, stored: bool = True, content: bool = True) -> dict[str, Any]:
    """OpenAI's `file_search` tool call; `stored` adds what only the server reads back (the query),
    `content` the results' text (callers get it only when they ask)."""
    results = []
    for result in call.results:
        item: dict[str, Any] = {"file_id": result.file_id, "file_name": result.file_name, "score": result.score}
        if content:
            item["content"] = [{"type": "text", "text": result.content}]
        if stored and result.attributes is not None:
            item["attributes"] = dict(result.attributes)
        results.append(item)
    search: dict[str, Any] = {
        "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": call.score_threshold},
        "results": results,
    }
    if stored:
        search.update(query=call.query, number=call.number, prefetched=call.prefetched)
    return {"id": call.id, "type": FILE_SEARCH, FILE_SEARCH: search}


def _file_search_call_from_json(data: Mapping[str, Any]) -> FileSearchCall:
    search = data[FILE_SEARCH]
    results = tuple(
        FileSearchResult(
            item["file_id"],
            item["file_name"],
            float(item["score"]),
            "".join(part.get("text", "") for part in item.get("content") or ()),
            item.get("attributes"),
        )
        for item in search.get("results") or ()
    )
    threshold = float((search.get("ranking_options") or {}).get("score_threshold", 0.0))
    return FileSearchCall(
        data["id"],
        search.get("query", ""),
        results,
        threshold,
        int(search.get("number", 0)),
        bool(search.get("prefetched")),
    )


def step_details_to_json(details: StepDetails, *, stored: bool = True, search_content: bool = True) -> dict[str, Any]:
    """A step's details as stored (`stored`: with what only the server reads back), or as callers see
    them (`search_content`: with the text of file search results)."""
    if isinstance(details, MessageCreation):
        return {"type": "message_creation", "message_creation": {"message_id": details.message_id}}
    calls = [
        file_search_call_to_json(call, stored=stored, content=search_content)
        if isinstance(call, FileSearchCall)
        else function_call_to_json(call, with_output=True)
        for call in details.tool_calls
    ]
    return {"type": "tool_calls", "tool_calls": calls}


def step_details_from_json(data: Mapping[str, Any]) -> StepDetails:
    if data["type"] == "message_creation":
        return MessageCreation(data["message_creation"]["message_id"])
    return ToolCalls(
        tuple(
            _file_search_call_from_json(call) if call.get("type") == FILE_SEARCH else _function_call_from_json(call)
            for call in data["tool_calls"]
        )
    )


def required_action_to_json(action: SubmitToolOutputs) -> dict[str, Any]:
    calls = [function_call_to_json(call, with_output=False) for call in action.tool_calls]
    return {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}}


def required_action_from_json(data: Mapping[str, Any]) -> SubmitToolOutputs:
    calls = data["submit_tool_outputs"]["tool_calls"]
    return SubmitToolOutputs(tuple(_function_call_from_json(call) for call in calls))


def usage_to_json(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def usage_from_json(data: Mapping[str, Any]) -> Usage:
    return Usage(int(data.get("prompt_tokens", 0)), int(data.get("completion_tokens", 0)))


def last_error_to_json(error: LastError) -> dict[str, str]:
    return {"code": error.code, "message": error.message}


def last_error_from_json(data: Mapping[str, Any]) -> LastError:
    return LastError(data["code"], data["message"])


def incomplete_details_to_json(details: IncompleteDetails) -> dict[str, str]:
    return {"reason": details.reason}


def incomplete_details_from_json(data: Mapping[str, Any]) -> IncompleteDetails:
    return IncompleteDetails(data["reason"])


def truncation_strategy_to_json(strategy: TruncationStrategy) -> dict[str, Any]:
    return {"type": strategy.type, "last_messages": strategy.last_messages}


def truncation_strategy_from_json(data: Mapping[str, Any]) -> TruncationStrategy:
    last = data.get("last_messages")
    if data.get("type") == "last_messages":
        return TruncationStrategy("last_messages", int(last) if last is not None else None)
    return TruncationStrategy()


def item_details_to_json(details: ItemDetails) -> dict[str, Any]:
    if isinstance(details, FunctionCallDetails):
        return {
            "type": "function_call",
            "call_id": details.call_id,
            "name": details.name,
            "arguments": details.arguments,
        }
    if isinstance(details, FileSearchCall):
        return {**file_search_call_to_json(details), "type": "file_search_call"}
    return {"type": "function_call_output", "call_id": details.call_id, "output": details.output}


def item_details_from_json(data: Mapping[str, Any]) -> ItemDetails:
    if data["type"] == "file_search_call":
        return _file_search_call_from_json(data)
    if data["type"] == "function_call":
        return FunctionCallDetails(data["call_id"], data["name"], data["arguments"])
    if data["type"] == "function_call_output":
        return FunctionOutputDetails(data["call_id"], data["output"])
    raise ValueError(f"unknown item type {data['type']!r}")


def item_to_json(item: Item) -> dict[str, Any]:
    """An item as stored: content parts in their Assistants form, whatever API wrote them."""
    return {
        "id": item.id,
        "role": item.role,
        "status": str(item.status),
        "content": [content_to_json(part, stored=True) for part in item.content],
        "details": None if item.details is None else item_details_to_json(item.details),
    }


def item_from_json(data: Mapping[str, Any]) -> Item:
    details = data.get("details")
    return Item(
        id=data["id"],
        role=data["role"],
        status=MessageStatus(data["status"]),
        content=tuple(content_from_json(part) for part in data.get("content", ())),
        details=None if details is None else item_details_from_json(details),
    )


def _without_none(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
