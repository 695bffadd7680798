"""The one place that converts between protobuf messages and storage records.

Inbound: request messages become validated storage inputs. Outbound: records become resource
messages whose JSON (through the gateway) is OpenAI's, field for field."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message as ProtoMessage

from sovereign_assistant.v1 import (
    assistant_pb2,
    assistant_service_pb2,
    common_pb2,
    message_pb2,
    thread_pb2,
)
from sovereign_server import validation
from sovereign_server.errors import InvalidRequestError
from sovereign_storage import AssistantRecord, MessageRecord, NewAssistant, NewMessage, ThreadRecord

_M = TypeVar("_M", bound=ProtoMessage)

DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0

# ---------------------------------------------------------------- well-known types <-> Python


def to_value(value: Any) -> struct_pb2.Value:
    """A JSON value as `google.protobuf.Value`; None becomes an explicit JSON null."""
    result = struct_pb2.Value()
    if value is None:
        result.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        result.bool_value = value
    elif isinstance(value, int | float):
        result.number_value = value
    elif isinstance(value, str):
        result.string_value = value
    elif isinstance(value, dict):
        result.struct_value.update(value)
    else:
        result.list_value.extend(value)
    return result


def to_struct(value: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


def from_value(message: ProtoMessage, field: str) -> Any:
    """The JSON value of a `Value`, `Struct` or `ListValue` field, or None when it is unset or null."""
    if not message.HasField(field):
        return None
    return json_format.MessageToDict(getattr(message, field))


def _optional(message: ProtoMessage, field: str) -> Any:
    return getattr(message, field) if message.HasField(field) else None


def _parse_all(items: Iterable[dict[str, Any]], message_type: type[_M]) -> list[_M]:
    return [json_format.ParseDict(item, message_type(), ignore_unknown_fields=True) for item in items]


def _dicts(messages: Iterable[ProtoMessage]) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(item, preserving_proto_field_name=True) for item in messages]


# ---------------------------------------------------------------- assistants


def new_assistant(request: assistant_service_pb2.CreateAssistantRequest) -> NewAssistant:
    if not request.model:
        raise InvalidRequestError(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    return NewAssistant(
        model=request.model,
        name=validation.check_max_length("name", _optional(request, "name"), validation.MAX_NAME),
        description=validation.check_max_length(
            "description", _optional(request, "description"), validation.MAX_DESCRIPTION
        ),
        instructions=validation.check_max_length(
            "instructions", _optional(request, "instructions"), validation.MAX_INSTRUCTIONS
        ),
        tools=validation.check_tools(_dicts(request.tools)),
        tool_resources=validation.check_tool_resources(from_value(request, "tool_resources")),
        metadata=validation.check_metadata(dict(request.metadata)),
        temperature=validation.check_temperature(_optional(request, "temperature")),
        top_p=validation.check_top_p(_optional(request, "top_p")),
        response_format=validation.check_response_format(from_value(request, "response_format")),
        reasoning_effort=_optional(request, "reasoning_effort"),
    )


def assistant_changes(request: assistant_service_pb2.ModifyAssistantRequest) -> dict[str, Any]:
    """The fields present in the request, validated, keyed by `AssistantRecord` field name."""
    changes: dict[str, Any] = {}
    present = {field.name for field, _ in request.ListFields()}
    if "model" in present:
        changes["model"] = request.model
    limits = {
        "name": validation.MAX_NAME,
        "description": validation.MAX_DESCRIPTION,
        "instructions": validation.MAX_INSTRUCTIONS,
    }
    for field, maximum in limits.items():
        if field in present:
            changes[field] = validation.check_max_length(field, getattr(request, field), maximum)
    if "tools" in present:
        changes["tools"] = validation.check_tools(from_value(request, "tools"))
    if "tool_resources" in present:
        changes["tool_resources"] = validation.check_tool_resources(from_value(request, "tool_resources"))
    if "metadata" in present:
        changes["metadata"] = validation.check_metadata(from_value(request, "metadata"))
    if "temperature" in present:
        changes["temperature"] = validation.check_temperature(request.temperature)
    if "top_p" in present:
        changes["top_p"] = validation.check_top_p(request.top_p)
    if "response_format" in present:
        changes["response_format"] = validation.check_response_format(from_value(request, "response_format"))
    if "reasoning_effort" in present:
        changes["reasoning_effort"] = request.reasoning_effort
    return changes


def assistant_message(record: AssistantRecord) -> assistant_pb2.Assistant:
    message = assistant_pb2.Assistant(
        id=record.id,
        object="assistant",
        created_at=record.created_at,
        name=to_value(record.name),
        description=to_value(record.description),
        model=record.model,
        instructions=to_value(record.instructions),
        tools=_parse_all(record.tools, common_pb2.Tool),
        tool_resources=to_struct(record.tool_resources),
        metadata=record.metadata,
        response_format=to_value(record.response_format if record.response_format is not None else "auto"),
    )
    # OpenAI reports its defaults rather than leaving the sampling fields out.
    message.temperature = record.temperature if record.temperature is not None else DEFAULT_TEMPERATURE
    message.top_p = record.top_p if record.top_p is not None else DEFAULT_TOP_P
    return message


# ---------------------------------------------------------------- threads and messages


def new_message(message: message_pb2.MessageInput, param: str = "") -> NewMessage:
    """A message to store, from what a caller sent; `param` prefixes error params (`messages[0].`)."""
    return NewMessage(
        role=validation.check_role(message.role, f"{param}role"),
        content=validation.check_message_content(from_value(message, "content"), f"{param}content"),
        attachments=validation.check_attachments(_dicts(message.attachments), f"{param}attachments"),
        metadata=validation.check_metadata(dict(message.metadata), f"{param}metadata"),
    )


def new_messages(messages: Sequence[message_pb2.MessageInput], param: str = "messages") -> list[NewMessage]:
    return [new_message(message, f"{param}[{index}].") for index, message in enumerate(messages)]


def thread_message(record: ThreadRecord) -> thread_pb2.Thread:
    return thread_pb2.Thread(
        id=record.id,
        object="thread",
        created_at=record.created_at,
        tool_resources=to_struct(record.tool_resources),
        metadata=record.metadata,
    )


def message_message(record: MessageRecord) -> message_pb2.Message:
    return message_pb2.Message(
        id=record.id,
        object="thread.message",
        created_at=record.created_at,
        thread_id=record.thread_id,
        status=record.status,
        incomplete_details=to_value(record.incomplete_details),
        completed_at=to_value(record.completed_at),
        incomplete_at=to_value(record.incomplete_at),
        role=record.role,
        content=_parse_all(record.content, message_pb2.MessageContent),
        assistant_id=to_value(record.assistant_id),
        run_id=to_value(record.run_id),
        attachments=_parse_all(record.attachments, common_pb2.Attachment),
        metadata=record.metadata,
    )


def list_envelope(ids: Sequence[str], has_more: bool) -> dict[str, Any]:
    """The fields every list response shares besides `data`."""
    return {
        "object": "list",
        "first_id": to_value(ids[0] if ids else None),
        "last_id": to_value(ids[-1] if ids else None),
        "has_more": has_more,
    }
