"""What a response sends its engine: its instructions, then the items it follows (the chain of
`previous_response_id`, or its conversation's) and its own input, as plain engine dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sovereign_server.engines import ChatMessage, FunctionTool, GenerationRequest
from sovereign_server.responses.model import InputItem
from sovereign_server.runs.context import item_message, search_turns
from sovereign_storage import (
    FILE_SEARCH,
    FILE_SEARCH_CALL_PREFIX,
    FUNCTION_CALL_PREFIX,
    FUNCTION_OUTPUT_PREFIX,
    MESSAGE_PREFIX,
    FileSearchCall,
    ImageFileContent,
    Item,
    ItemType,
    MessageRecord,
    NewMessage,
    ResponseRecord,
    new_id,
)

_PREFIXES: dict[ItemType, str] = {
    "message": MESSAGE_PREFIX,
    "function_call": FUNCTION_CALL_PREFIX,
    "function_call_output": FUNCTION_OUTPUT_PREFIX,
    "file_search_call": FILE_SEARCH_CALL_PREFIX,
}


def new_item_id(item_type: ItemType) -> str:
    return new_id(_PREFIXES[item_type])


def record_item(message: MessageRecord) -> Item:
    """A thread's message as the conversation item it is."""
    return Item(message.id, message.role, message.status, message.content, message.item_details)


def conversation_item(item: Item, assistant_id: str | None = None) -> NewMessage:
    """An item as the message of a conversation (a thread) it becomes; an assistant's message
    names the assistant that wrote it, if any."""
    return NewMessage(
        role=item.role,
        content=item.content,
        status=item.status,
        assistant_id=assistant_id if item.role == "assistant" else None,
        id=item.id,
        item_details=item.details,
    )


def chain_items(chain: Sequence[ResponseRecord]) -> list[Item]:
    """What a chain of responses (oldest first) said: each one's input, then its output."""
    items: list[Item] = []
    for response in chain:
        items.extend(response.input_items)
        items.extend(response.output_items)
    return items


def engine_messages(instructions: str | None, items: Sequence[Item]) -> tuple[ChatMessage, ...]:
    """The messages of a response's request: instructions as the system turn, then each item, a
    function call joining the assistant turn before it (a text and its calls are one turn). A file
    search is the call the model made and the results it read (`runs.context.search_turns`)."""
    messages: list[ChatMessage] = []
    if instructions:
        messages.append(ChatMessage(role="system", content=instructions))
    for item in items:
        if isinstance(item.details, FileSearchCall):
            turns = search_turns(item.details)
        else:
            turns = (item_message(item.role, item.content, item.details),)
        for message in turns:
            last = messages[-1] if messages else None
            if message.tool_calls and last is not None and last.role == "assistant":
                messages[-1] = ChatMessage("assistant", last.content, (*last.tool_calls, *message.tool_calls))
            else:
                messages.append(message)
    return tuple(messages)


def generation_request(response: ResponseRecord, messages: Sequence[ChatMessage]) -> GenerationRequest:
    return GenerationRequest(
        model=response.model,
        messages=tuple(messages),
        tools=tuple(
            FunctionTool(
                name=tool["name"],
                description=tool.get("description"),
                parameters=tool.get("parameters"),
                strict=tool.get("strict"),
            )
            for tool in response.tools
            # The server's own tools (file_search) are offered by it (`responses.tools`).
            if tool["type"] == "function"
        ),
        tool_choice=_chat_tool_choice(response.tool_choice),
        parallel_tool_calls=response.parallel_tool_calls,
        temperature=response.temperature,
        top_p=response.top_p,
        response_format=_chat_response_format(response.text_format),
        max_completion_tokens=response.max_output_tokens,
    )


def _chat_tool_choice(choice: Any) -> Any:
    """The Responses API's `{"type": "function", "name"}` as chat completions name a function;
    `{"type": "file_search"}` names the function the server offers for it."""
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": choice.get("name", FILE_SEARCH)}}
    return choice


def _chat_response_format(text_format: dict[str, Any] | None) -> Any:
    """`text.format` as chat completions' `response_format` (a JSON schema moves under `json_schema`)."""
    if text_format is None or text_format["type"] != "json_schema":
        return text_format
    return {"type": "json_schema", "json_schema": {key: v for key, v in text_format.items() if key != "type"}}


def image_file_references(items: Sequence[InputItem], param: str) -> list[tuple[str, str]]:
    """The `(param, file_id)` of every stored image file the items show (references show none)."""
    references = []
    for index, item in enumerate(items):
        for number, part in enumerate(item.content if isinstance(item, Item) else ()):
            if isinstance(part, ImageFileContent):
                references.append((f"{param}[{index}].content[{number}].file_id", part.file_id))
    return references
