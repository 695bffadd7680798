"""Conversion for the Responses and Conversations APIs, between protobuf messages and the plain
values below, as `convert` does for the Assistants API.

Outbound, each object has one renderer, to OpenAI's JSON (what the streams and the `HttpBody`
routes print); its protobuf message (for gRPC callers, and the routes the gateway prints) is parsed
from that JSON, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message as ProtoMessage

from sovereign_assistant.v1 import (
    conversation_pb2,
    item_pb2,
    response_pb2,
    response_service_pb2,
)
from sovereign_server import validation
from sovereign_server.convert import from_value
from sovereign_server.errors import InvalidRequestError
from sovereign_server.files.requests import check_file_search_tool
from sovereign_server.responses.context import new_item_id, record_item
from sovereign_server.responses.model import (
    ArgumentsEvent,
    ContentPartEvent,
    InputItem,
    ItemEvent,
    ItemReference,
    OutputItemEvent,
    ResponseEvent,
    ResponseEventType,
    ResponseOptions,
)
from sovereign_server.runs.model import StreamError
from sovereign_storage import (
    FILE_SEARCH,
    ContentPart,
    FileCitation,
    FileSearchCall,
    FunctionCallDetails,
    FunctionOutputDetails,
    ImageUrlContent,
    Item,
    MessageRecord,
    MessageStatus,
    ResponseRecord,
    TextContent,
    ThreadRecord,
    Usage,
    values,
)

_M = TypeVar("_M", bound=ProtoMessage)

# The tools the server runs itself, and how each is checked.
HOSTED_TOOLS: dict[str, validation.HostedToolCheck] = {FILE_SEARCH: check_file_search_tool}
DEFAULT_TEMPERATURE = 1.0
DEFAULT_TOP_P = 1.0

# ---------------------------------------------------------------- inbound


def response_options(request: response_service_pb2.CreateResponseRequest) -> ResponseOptions:
    """What a CreateResponse request asks, validated."""
    present = {field.name for field, _ in request.ListFields()}
    conversation_id = validation.check_conversation(from_value(request, "conversation"))
    validation.check_exclusive(
        "previous_response_id", "conversation", bool(request.previous_response_id), conversation_id is not None
    )
    store = request.store if "store" in present else True
    background = request.background if "background" in present else False
    if background and not store:
        raise InvalidRequestError(
            "A background response must be stored: 'background' needs 'store' set to true.",
            param="background",
            code="invalid_value",
        )
    validation.check_include(list(request.include))
    tools = validation.check_response_tools(from_value(request, "tools"), hosted=HOSTED_TOOLS)
    tool_choice = validation.check_response_tool_choice(from_value(request, "tool_choice"))
    if tool_choice == {"type": FILE_SEARCH} and not any(tool["type"] == FILE_SEARCH for tool in tools or []):
        raise InvalidRequestError(
            "Invalid 'tool_choice': 'file_search' is not among the response's 'tools'.",
            param="tool_choice",
            code="invalid_value",
        )
    return ResponseOptions(
        model=request.model or None,
        input=input_items(from_value(request, "input")),
        instructions=validation.check_max_length(
            "instructions", request.instructions if "instructions" in present else None, validation.MAX_INSTRUCTIONS
        ),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=request.parallel_tool_calls if "parallel_tool_calls" in present else None,
        previous_response_id=request.previous_response_id or None,
        conversation_id=conversation_id,
        store=store,
        background=background,
        max_output_tokens=validation.check_max_output_tokens(
            request.max_output_tokens if "max_output_tokens" in present else None
        ),
        truncation=validation.check_one_of(
            "truncation", request.truncation if "truncation" in present else "disabled", validation.TRUNCATIONS
        ),
        temperature=validation.check_temperature(request.temperature if "temperature" in present else None),
        top_p=validation.check_top_p(request.top_p if "top_p" in present else None),
        text_format=validation.check_text_config(from_value(request, "text")),
        metadata=validation.check_metadata(from_value(request, "metadata")),
        prompt_id=validation.check_prompt(from_value(request, "prompt")),
    )


def input_items(value: Any, param: str = "input", *, references: bool = True) -> tuple[InputItem, ...]:
    """A response's `input`, or a conversation's new `items` (no references, at most 20), as items
    with ids of their own."""
    maximum = None if references else validation.MAX_CONVERSATION_ITEMS
    checked = validation.check_input_items(value, param, references=references, max_items=maximum)
    return tuple(_input_item(item) for item in checked)


def new_items(value: Any, param: str = "items") -> tuple[Item, ...]:
    return tuple(item for item in input_items(value, param, references=False) if isinstance(item, Item))


def _input_item(item: dict[str, Any]) -> InputItem:
    kind = item["type"]
    if kind == "item_reference":
        return ItemReference(item["id"])
    status = MessageStatus(item.get("status", "completed"))
    if kind == "function_call":
        details = FunctionCallDetails(item["call_id"], item["name"], item["arguments"])
        return Item(new_item_id(kind), "assistant", status, details=details)
    if kind == "function_call_output":
        return Item(new_item_id(kind), "user", status, details=FunctionOutputDetails(item["call_id"], item["output"]))
    content = tuple(_content_part(part) for part in item["content"])
    return Item(new_item_id("message"), item["role"], status, content)


def _content_part(part: dict[str, Any]) -> ContentPart:
    if part["type"] in ("input_text", "output_text"):
        return TextContent(part["text"])
    image: ContentPart = part["image"]
    return image


# ---------------------------------------------------------------- outbound: OpenAI's JSON


def citation_json(citation: FileCitation) -> dict[str, Any]:
    """A citation as the Responses API shows it: `index` is where the cited passage ends (where
    the marker starts) in the text."""
    return {
        "type": "file_citation",
        "file_id": citation.file_id,
        "filename": citation.filename,
        "index": citation.start_index,
    }


def output_text_json(text: str, annotations: Sequence[FileCitation] = ()) -> dict[str, Any]:
    return {
        "type": "output_text",
        "text": text,
        "annotations": [citation_json(citation) for citation in annotations],
        "logprobs": [],
    }


def content_part_json(part: ContentPart, role: str) -> dict[str, Any]:
    """A content part as the Responses API shows it: text is `output_text` in an assistant's
    message, `input_text` in the others'."""
    if isinstance(part, TextContent):
        if role == "assistant":
            return output_text_json(part.value, part.annotations)
        return {"type": "input_text", "text": part.value}
    if isinstance(part, ImageUrlContent):
        return {"type": "input_image", "image_url": part.url, "file_id": None, "detail": part.detail or "auto"}
    return {"type": "input_image", "image_url": None, "file_id": part.file_id, "detail": part.detail or "auto"}


def search_json(call: FileSearchCall, results: bool) -> dict[str, Any]:
    """A `file_search_call` item's own fields; its results only when asked for (`include`
    `file_search_call.results`), else null, as OpenAI's."""
    found = None
    if results:
        found = [
            {
                "file_id": result.file_id,
                "filename": result.file_name,
                "score": result.score,
                "text": result.content,
                "attributes": dict(result.attributes or {}),
            }
            for result in call.results
        ]
    return {"queries": [call.query], "results": found}


def item_json(item: Item, search_results: bool = False) -> dict[str, Any]:
    """An item as OpenAI shows it; `search_results`: with a file search's results."""
    data: dict[str, Any] = {"id": item.id, "type": item.type, "status": str(item.status)}
    details = item.details
    if isinstance(details, FileSearchCall):
        data.update(search_json(details, search_results))
    elif isinstance(details, FunctionCallDetails):
        data.update(call_id=details.call_id, name=details.name, arguments=details.arguments)
    elif isinstance(details, FunctionOutputDetails):
        data.update(call_id=details.call_id, output=details.output)
    else:
        data["role"] = item.role
        data["content"] = [content_part_json(part, item.role) for part in item.content]
    return data


def message_item_json(record: MessageRecord, search_results: bool = False) -> dict[str, Any]:
    """A thread's message as the conversation item it is."""
    return item_json(record_item(record), search_results)


def item_list_json(items: Sequence[Item], has_more: bool, search_results: bool = False) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [item_json(item, search_results) for item in items],
        "first_id": items[0].id if items else None,
        "last_id": items[-1].id if items else None,
        "has_more": has_more,
    }


def conversation_json(record: ThreadRecord) -> dict[str, Any]:
    """A thread as the conversation it is."""
    return {"id": record.id, "object": "conversation", "created_at": record.created_at, "metadata": record.metadata}


def usage_json(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def response_json(record: ResponseRecord, search_results: bool = False) -> dict[str, Any]:
    """A response as OpenAI shows it; `search_results`: with its file searches' results."""
    return {
        "id": record.id,
        "object": "response",
        "created_at": record.created_at,
        "status": str(record.status),
        "background": record.background,
        "completed_at": record.completed_at,
        "conversation": None if record.conversation_id is None else {"id": record.conversation_id},
        "error": None if record.error is None else values.last_error_to_json(record.error),
        "incomplete_details": (
            None if record.incomplete_details is None else values.incomplete_details_to_json(record.incomplete_details)
        ),
        "instructions": record.instructions,
        "max_output_tokens": record.max_output_tokens,
        "max_tool_calls": None,
        "model": record.model,
        "output": [item_json(item, search_results) for item in record.output_items],
        "parallel_tool_calls": record.parallel_tool_calls,
        "previous_response_id": record.previous_response_id,
        "prompt": None if record.prompt_id is None else {"id": record.prompt_id, "variables": None, "version": None},
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": record.store,
        "temperature": record.temperature if record.temperature is not None else DEFAULT_TEMPERATURE,
        "text": {"format": record.text_format or {"type": "text"}},
        "tool_choice": record.tool_choice if record.tool_choice is not None else "auto",
        "tools": record.tools,
        "top_logprobs": 0,
        "top_p": record.top_p if record.top_p is not None else DEFAULT_TOP_P,
        "truncation": record.truncation,
        "usage": None if record.usage is None else usage_json(record.usage),
        "user": None,
        "metadata": record.metadata,
    }


def event_json(event: ResponseEvent, search_results: bool = False) -> dict[str, Any]:
    """A response event as OpenAI's JSON: its `type`, `sequence_number` and the fields of its kind."""
    data = event.data
    body: dict[str, Any] = {"type": str(event.type), "sequence_number": event.sequence_number}
    if isinstance(data, ResponseRecord):
        body["response"] = response_json(data, search_results)
    elif isinstance(data, OutputItemEvent):
        body.update(output_index=data.output_index, item=item_json(data.item, search_results))
    elif isinstance(data, ItemEvent):
        body.update(item_id=data.item_id, output_index=data.output_index)
    elif isinstance(data, ContentPartEvent):
        body.update(item_id=data.item_id, output_index=data.output_index, content_index=data.content_index)
        if event.type is ResponseEventType.OUTPUT_TEXT_DELTA:
            body.update(delta=data.text, logprobs=[])
        elif event.type is ResponseEventType.OUTPUT_TEXT_DONE:
            body.update(text=data.text, logprobs=[])
        else:
            body["part"] = output_text_json(data.text, data.annotations)
    elif isinstance(data, ArgumentsEvent):
        body.update(item_id=data.item_id, output_index=data.output_index)
        if event.type is ResponseEventType.FUNCTION_CALL_ARGUMENTS_DELTA:
            body["delta"] = data.arguments
        else:
            body.update(name=data.name or "", arguments=data.arguments)
    elif isinstance(data, StreamError):
        body.update(code=data.code, message=data.message, param=None)
    return body


# ---------------------------------------------------------------- outbound: protobuf


def _parse(data: dict[str, Any], message_type: type[_M]) -> _M:
    return json_format.ParseDict(data, message_type())


def response_message(record: ResponseRecord, search_results: bool = False) -> response_pb2.Response:
    return _parse(response_json(record, search_results), response_pb2.Response)


def item_message(item: Item, search_results: bool = False) -> item_pb2.Item:
    return _parse(item_json(item, search_results), item_pb2.Item)


def item_list_message(items: Sequence[Item], has_more: bool, search_results: bool = False) -> item_pb2.ItemList:
    return _parse(item_list_json(items, has_more, search_results), item_pb2.ItemList)


def conversation_message(record: ThreadRecord) -> conversation_pb2.Conversation:
    return _parse(conversation_json(record), conversation_pb2.Conversation)


def event_message(event: ResponseEvent, search_results: bool = False) -> response_pb2.ResponseStreamEvent:
    return _parse(event_json(event, search_results), response_pb2.ResponseStreamEvent)


def search_results_included(include: Sequence[str]) -> bool:
    """Whether a request's `include` asks for file searches' results."""
    return "file_search_call.results" in include
