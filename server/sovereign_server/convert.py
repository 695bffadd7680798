"""The one place that converts between protobuf messages and the plain values of the layers below.

Inbound: request messages become validated storage inputs and run-layer values. Outbound: records
and run events become resource messages whose JSON (through the gateway) is OpenAI's, field for field."""

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
    run_pb2,
    thread_pb2,
)
from sovereign_server import validation
from sovereign_server.errors import InvalidRequestError
from sovereign_server.runs import Event, NewThread, RunOptions, ToolOutput
from sovereign_server.runs.model import MessageDelta, StreamError, ToolCallDelta
from sovereign_storage import (
    AssistantRecord,
    MessageRecord,
    NewAssistant,
    NewMessage,
    PageRequest,
    RunRecord,
    RunStepRecord,
    ThreadRecord,
    TruncationStrategy,
    values,
)

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
        reasoning_effort=validation.check_reasoning_effort(_optional(request, "reasoning_effort")),
    )


def assistant_changes(request: assistant_service_pb2.ModifyAssistantRequest) -> dict[str, Any]:
    """The fields present in the request, validated, keyed by `AssistantRecord` field name."""
    changes: dict[str, Any] = {}
    present = {field.name for field, _ in request.ListFields()}
    if "model" in present:
        changes["model"] = validation.check_model(request.model)
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
        changes["reasoning_effort"] = validation.check_reasoning_effort(request.reasoning_effort)
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
    content = validation.check_message_content(from_value(message, "content"), f"{param}content")
    role = validation.check_role(message.role, f"{param}role")
    validation.check_images_allowed(role, content, f"{param}content")
    return NewMessage(
        role="user" if role == "user" else "assistant",
        content=tuple(values.content_from_json(part) for part in content),
        attachments=validation.check_attachments(_dicts(message.attachments), f"{param}attachments"),
        metadata=validation.check_metadata(dict(message.metadata), f"{param}metadata"),
    )


def new_messages(messages: Sequence[message_pb2.MessageInput], param: str = "messages") -> tuple[NewMessage, ...]:
    return tuple(new_message(message, f"{param}[{index}].") for index, message in enumerate(messages))


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
        incomplete_details=to_value(_json_or_none(values.incomplete_details_to_json, record.incomplete_details)),
        completed_at=to_value(record.completed_at),
        incomplete_at=to_value(record.incomplete_at),
        role=record.role,
        content=_parse_all((values.content_to_json(part) for part in record.content), message_pb2.MessageContent),
        assistant_id=to_value(record.assistant_id),
        run_id=to_value(record.run_id),
        attachments=_parse_all(record.attachments, common_pb2.Attachment),
        metadata=record.metadata,
    )


def page_request(request: Any) -> PageRequest:
    """The validated `limit`, `order`, `after`, `before` of any List request."""
    limit = request.limit if request.HasField("limit") else None
    return validation.page_request(limit, request.order, request.after, request.before)


def list_envelope(ids: Sequence[str], has_more: bool) -> dict[str, Any]:
    """The fields every list response shares besides `data`."""
    return {
        "object": "list",
        "first_id": to_value(ids[0] if ids else None),
        "last_id": to_value(ids[-1] if ids else None),
        "has_more": has_more,
    }


# ---------------------------------------------------------------- runs and steps


def run_options(request: Any) -> RunOptions:
    """What a CreateRun or CreateThreadAndRun request asks of its run, validated."""
    if not request.assistant_id:
        raise InvalidRequestError(
            "Missing required parameter: 'assistant_id'.", param="assistant_id", code="missing_required_parameter"
        )
    # Only CreateRunRequest has these; unset, they are "" and empty.
    additional_instructions = getattr(request, "additional_instructions", "") or None
    additional_messages = getattr(request, "additional_messages", ())
    return RunOptions(
        assistant_id=request.assistant_id,
        model=_optional(request, "model") or None,
        instructions=validation.check_max_length(
            "instructions", _optional(request, "instructions"), validation.MAX_INSTRUCTIONS
        ),
        additional_instructions=additional_instructions,
        additional_messages=new_messages(additional_messages, "additional_messages"),
        tools=validation.check_run_tools(from_value(request, "tools")) if request.HasField("tools") else None,
        metadata=validation.check_metadata(dict(request.metadata)),
        temperature=validation.check_temperature(_optional(request, "temperature")),
        top_p=validation.check_top_p(_optional(request, "top_p")),
        max_prompt_tokens=validation.check_token_limit("max_prompt_tokens", _optional(request, "max_prompt_tokens")),
        max_completion_tokens=validation.check_token_limit(
            "max_completion_tokens", _optional(request, "max_completion_tokens")
        ),
        truncation_strategy=values.truncation_strategy_from_json(
            validation.check_truncation_strategy(from_value(request, "truncation_strategy"))
        ),
        tool_choice=validation.check_tool_choice(from_value(request, "tool_choice")),
        parallel_tool_calls=_optional(request, "parallel_tool_calls"),
        response_format=validation.check_response_format(from_value(request, "response_format")),
    )


def new_thread(request: Any, param: str = "thread") -> NewThread:
    """The thread of a CreateThreadAndRun request (`param` prefixes error params)."""
    return NewThread(
        messages=new_messages(request.messages, f"{param}.messages"),
        tool_resources=validation.check_tool_resources(
            from_value(request, "tool_resources"), f"{param}.tool_resources"
        ),
        metadata=validation.check_metadata(dict(request.metadata), f"{param}.metadata"),
    )


def tool_outputs(request: Any) -> list[ToolOutput]:
    return [ToolOutput(output.tool_call_id, output.output) for output in request.tool_outputs]


def run_message(record: RunRecord) -> run_pb2.Run:
    message = run_pb2.Run(
        id=record.id,
        object="thread.run",
        created_at=record.created_at,
        thread_id=record.thread_id,
        assistant_id=record.assistant_id,
        status=record.status,
        required_action=to_value(_json_or_none(values.required_action_to_json, record.required_action)),
        last_error=to_value(_json_or_none(values.last_error_to_json, record.last_error)),
        expires_at=to_value(record.expires_at),
        started_at=to_value(record.started_at),
        cancelled_at=to_value(record.cancelled_at),
        failed_at=to_value(record.failed_at),
        completed_at=to_value(record.completed_at),
        incomplete_details=to_value(_json_or_none(values.incomplete_details_to_json, record.incomplete_details)),
        model=record.model,
        instructions=record.instructions or "",
        tools=_parse_all(record.tools, common_pb2.Tool),
        metadata=record.metadata,
        usage=to_value(_json_or_none(values.usage_to_json, record.usage)),
        temperature=record.temperature if record.temperature is not None else DEFAULT_TEMPERATURE,
        top_p=record.top_p if record.top_p is not None else DEFAULT_TOP_P,
        max_prompt_tokens=to_value(record.max_prompt_tokens),
        max_completion_tokens=to_value(record.max_completion_tokens),
        truncation_strategy=to_value(
            values.truncation_strategy_to_json(record.truncation_strategy or TruncationStrategy())
        ),
        tool_choice=to_value(record.tool_choice if record.tool_choice is not None else "auto"),
        parallel_tool_calls=record.parallel_tool_calls is not False,
        response_format=to_value(record.response_format if record.response_format is not None else "auto"),
    )
    return message


# The `include[]` value that adds file search results' text to run steps.
SEARCH_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def step_message(record: RunStepRecord, search_content: bool = False) -> run_pb2.RunStep:
    return run_pb2.RunStep(
        id=record.id,
        object="thread.run.step",
        created_at=record.created_at,
        assistant_id=record.assistant_id,
        thread_id=record.thread_id,
        run_id=record.run_id,
        type=record.type,
        status=record.status,
        step_details=to_struct(
            values.step_details_to_json(record.step_details, stored=False, search_content=search_content)
        ),
        last_error=to_value(_json_or_none(values.last_error_to_json, record.last_error)),
        expired_at=to_value(record.expired_at),
        cancelled_at=to_value(record.cancelled_at),
        failed_at=to_value(record.failed_at),
        completed_at=to_value(record.completed_at),
        metadata=record.metadata,
        usage=to_value(_json_or_none(values.usage_to_json, record.usage)),
    )


def fill_message_delta(target: run_pb2.MessageDelta, delta: MessageDelta) -> None:
    """Writes `delta` into `target` in place: most of a stream, so no message is built to be copied."""
    target.id = delta.message_id
    target.object = "thread.message.delta"
    part = target.delta.content.add(index=delta.index, type="text")
    part.text.value = delta.text
    for item in _delta_annotations(delta):
        part.text.annotations.add().update(item)


def message_delta_json(delta: MessageDelta) -> dict[str, Any]:
    """`message_delta`'s JSON, built directly: most of a stream, at a tenth of the general printer's cost."""
    text = {"value": delta.text, "annotations": _delta_annotations(delta)}
    return {
        "id": delta.message_id,
        "object": "thread.message.delta",
        "delta": {"content": [{"index": delta.index, "type": "text", "text": text}]},
    }


def _delta_annotations(delta: MessageDelta) -> list[dict[str, Any]]:
    # In a delta each annotation says its position among the content part's annotations.
    return [{"index": index, **values.citation_to_json(citation)} for index, citation in enumerate(delta.annotations)]


def _step_delta_body(delta: ToolCallDelta) -> dict[str, Any]:
    if delta.kind != "function":
        call: dict[str, Any] = {"index": delta.index, "id": delta.call_id, "type": delta.kind, delta.kind: {}}
        return {"step_details": {"type": "tool_calls", "tool_calls": [call]}}
    function: dict[str, Any] = {"arguments": delta.arguments}
    if delta.name:
        function["name"] = delta.name
    fragment: dict[str, Any] = {"index": delta.index, "type": "function", "function": function}
    if delta.call_id is not None:
        # The first fragment of a call introduces it whole: its id, and no output yet.
        fragment["id"] = delta.call_id
        function["output"] = None
    return {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}}


def step_delta(delta: ToolCallDelta) -> run_pb2.RunStepDelta:
    return run_pb2.RunStepDelta(
        id=delta.step_id, object="thread.run.step.delta", delta=to_struct(_step_delta_body(delta))
    )


def step_delta_json(delta: ToolCallDelta) -> dict[str, Any]:
    return {"id": delta.step_id, "object": "thread.run.step.delta", "delta": _step_delta_body(delta)}


def error_object(error: StreamError) -> run_pb2.ErrorObject:
    return run_pb2.ErrorObject(message=error.message, type=error.type, param=to_value(None), code=to_value(error.code))


def error_json(error: StreamError) -> dict[str, Any]:
    return {"message": error.message, "type": error.type, "param": None, "code": error.code}


def event_message(event: Event, search_content: bool = False) -> run_pb2.RunEvent:
    """A run event as the typed gRPC event: its payload in the `data` member of its kind (steps
    with file search results' text when `search_content`)."""
    message = run_pb2.RunEvent(event=event.name)
    data = event.data
    if isinstance(data, RunRecord):
        message.run.CopyFrom(run_message(data))
    elif isinstance(data, MessageDelta):
        fill_message_delta(message.message_delta, data)
    elif isinstance(data, MessageRecord):
        message.message.CopyFrom(message_message(data))
    elif isinstance(data, RunStepRecord):
        message.step.CopyFrom(step_message(data, search_content))
    elif isinstance(data, ToolCallDelta):
        message.step_delta.CopyFrom(step_delta(data))
    elif isinstance(data, ThreadRecord):
        message.thread.CopyFrom(thread_message(data))
    elif isinstance(data, StreamError):
        message.error.CopyFrom(error_object(data))
    return message


# ---------------------------------------------------------------- records as OpenAI's JSON, directly
#
# What the routes that render JSON themselves (streams, the non-streamed run) print: the same JSON
# the gateway prints for the messages above (a test holds the two equal), built without protobuf's
# printer, which cost a run event half a millisecond.


def thread_json(record: ThreadRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "thread",
        "created_at": record.created_at,
        "tool_resources": record.tool_resources,
        "metadata": record.metadata,
    }


def message_json(record: MessageRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "thread.message",
        "created_at": record.created_at,
        "thread_id": record.thread_id,
        "status": str(record.status),
        "incomplete_details": _json_or_none(values.incomplete_details_to_json, record.incomplete_details),
        "completed_at": record.completed_at,
        "incomplete_at": record.incomplete_at,
        "role": record.role,
        "content": [values.content_to_json(part) for part in record.content],
        "assistant_id": record.assistant_id,
        "run_id": record.run_id,
        "attachments": record.attachments,
        "metadata": record.metadata,
    }


def run_json(record: RunRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "thread.run",
        "created_at": record.created_at,
        "thread_id": record.thread_id,
        "assistant_id": record.assistant_id,
        "status": str(record.status),
        "required_action": _json_or_none(values.required_action_to_json, record.required_action),
        "last_error": _json_or_none(values.last_error_to_json, record.last_error),
        "expires_at": record.expires_at,
        "started_at": record.started_at,
        "cancelled_at": record.cancelled_at,
        "failed_at": record.failed_at,
        "completed_at": record.completed_at,
        "incomplete_details": _json_or_none(values.incomplete_details_to_json, record.incomplete_details),
        "model": record.model,
        "instructions": record.instructions or "",
        "tools": record.tools,
        "metadata": record.metadata,
        "usage": _json_or_none(values.usage_to_json, record.usage),
        "temperature": record.temperature if record.temperature is not None else DEFAULT_TEMPERATURE,
        "top_p": record.top_p if record.top_p is not None else DEFAULT_TOP_P,
        "max_prompt_tokens": record.max_prompt_tokens,
        "max_completion_tokens": record.max_completion_tokens,
        "truncation_strategy": values.truncation_strategy_to_json(record.truncation_strategy or TruncationStrategy()),
        "tool_choice": record.tool_choice if record.tool_choice is not None else "auto",
        "parallel_tool_calls": record.parallel_tool_calls is not False,
        "response_format": record.response_format if record.response_format is not None else "auto",
    }


def step_json(record: RunStepRecord, search_content: bool = False) -> dict[str, Any]:
    return {
        "id": record.id,
        "object": "thread.run.step",
        "created_at": record.created_at,
        "assistant_id": record.assistant_id,
        "thread_id": record.thread_id,
        "run_id": record.run_id,
        "type": record.type,
        "status": str(record.status),
        "step_details": values.step_details_to_json(record.step_details, stored=False, search_content=search_content),
        "last_error": _json_or_none(values.last_error_to_json, record.last_error),
        "expired_at": record.expired_at,
        "cancelled_at": record.cancelled_at,
        "failed_at": record.failed_at,
        "completed_at": record.completed_at,
        "metadata": record.metadata,
        "usage": _json_or_none(values.usage_to_json, record.usage),
    }


def event_json(event: Event, search_content: bool = False) -> Any:
    """A run event's object as OpenAI's JSON (the `data:` of its SSE frame)."""
    data = event.data
    if isinstance(data, MessageDelta):
        return message_delta_json(data)
    if isinstance(data, RunRecord):
        return run_json(data)
    if isinstance(data, MessageRecord):
        return message_json(data)
    if isinstance(data, RunStepRecord):
        return step_json(data, search_content)
    if isinstance(data, ThreadRecord):
        return thread_json(data)
    if isinstance(data, ToolCallDelta):
        return step_delta_json(data)
    if isinstance(data, StreamError):
        return error_json(data)
    return None


def _json_or_none(to_json: Any, value: Any) -> Any:
    return None if value is None else to_json(value)


def openai_json(message: ProtoMessage) -> Any:
    """The JSON the gateway would print for `message`: proto field names, every field without
    presence printed, and integral numbers as integers (protobuf's Python printer gives `Value`
    numbers as floats; Envoy's prints `1700000000`)."""
    return _integral(
        json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)
    )


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value
