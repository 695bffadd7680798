"""A run's events as JSON text, for the event log that followers on other replicas read.

Event data are frozen dataclasses (records, deltas, errors) of plain values, enums and tuples: each
is written with its type's name, and read back only as one of the types listed here, so that the
log never names code to run.
"""

from __future__ import annotations

import dataclasses
import json
from enum import Enum
from typing import Any

from sovereign_server.runs.model import Event, EventName, MessageDelta, StreamError, ToolCallDelta
from sovereign_storage import (
    FunctionCall,
    ImageFileContent,
    ImageUrlContent,
    IncompleteDetails,
    LastError,
    MessageCreation,
    MessageRecord,
    MessageStatus,
    RunRecord,
    RunStatus,
    RunStepRecord,
    StepStatus,
    SubmitToolOutputs,
    TextContent,
    ThreadRecord,
    ToolCalls,
    TruncationStrategy,
    Usage,
)

_DATACLASSES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        RunRecord,
        MessageRecord,
        RunStepRecord,
        ThreadRecord,
        MessageDelta,
        ToolCallDelta,
        StreamError,
        TextContent,
        ImageUrlContent,
        ImageFileContent,
        FunctionCall,
        MessageCreation,
        ToolCalls,
        SubmitToolOutputs,
        Usage,
        LastError,
        IncompleteDetails,
        TruncationStrategy,
    )
}
_ENUMS: dict[str, type[Enum]] = {cls.__name__: cls for cls in (RunStatus, StepStatus, MessageStatus)}

_TYPE = "$type"
_ENUM = "$enum"
_TUPLE = "$tuple"


def encode(event: Event) -> tuple[str, str | None]:
    """The event as (name, JSON data)."""
    if event.data is None:
        return str(event.name), None
    return str(event.name), json.dumps(_to_json(event.data), ensure_ascii=False, separators=(",", ":"))


def decode(name: str, data: str | None) -> Event:
    return Event(EventName(name), None if data is None else _from_json(json.loads(data)))


def _to_json(value: Any) -> Any:
    if isinstance(value, Enum):
        return {_ENUM: type(value).__name__, "value": value.value}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {field.name: _to_json(getattr(value, field.name)) for field in dataclasses.fields(value)}
        return {_TYPE: type(value).__name__, **fields}
    if isinstance(value, tuple):
        return {_TUPLE: [_to_json(item) for item in value]}
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        # Free-form JSON (tools, metadata): a key like "$type" is escaped by the wrapper.
        return {"$dict": {key: _to_json(item) for key, item in value.items()}}
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if "$dict" in value:
        return {key: _from_json(item) for key, item in value["$dict"].items()}
    if _TUPLE in value:
        return tuple(_from_json(item) for item in value[_TUPLE])
    if _ENUM in value:
        return _ENUMS[value[_ENUM]](value["value"])
    cls = _DATACLASSES[value[_TYPE]]
    return cls(**{key: _from_json(item) for key, item in value.items() if key != _TYPE})
