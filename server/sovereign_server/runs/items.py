"""A conversation's items as engine messages. A thread is also a conversation: besides the messages
of the Assistants API it may hold what the Responses API added (function calls, their outputs,
system and developer messages), and a run reads them as the turns they are."""

from __future__ import annotations

from collections.abc import Sequence

from sovereign_server.engines import ChatMessage, ToolCall
from sovereign_storage import (
    ContentPart,
    FunctionCallDetails,
    FunctionOutputDetails,
    ImageUrlContent,
    ItemDetails,
    ItemRole,
    MessageRecord,
    TextContent,
)


def message_text(content: Sequence[ContentPart]) -> str:
    """A message's content as text; images are named, as engines here take text only."""
    parts = []
    for part in content:
        if isinstance(part, TextContent):
            parts.append(part.value)
        elif isinstance(part, ImageUrlContent):
            parts.append(f"[image: {part.url}]")
        else:
            parts.append(f"[image file: {part.file_id}]")
    return "\n".join(parts)


def item_message(role: ItemRole, content: Sequence[ContentPart], details: ItemDetails | None) -> ChatMessage:
    """One item as one engine message: a function call is an assistant turn that calls, its output
    a tool result, a system or developer message a system turn."""
    if isinstance(details, FunctionCallDetails):
        call = ToolCall(id=details.call_id, name=details.name, arguments=details.arguments)
        return ChatMessage(role="assistant", content="", tool_calls=(call,))
    if isinstance(details, FunctionOutputDetails):
        return ChatMessage(role="tool", content=details.output, tool_call_id=details.call_id)
    if role in ("system", "developer"):
        return ChatMessage(role="system", content=message_text(content))
    return ChatMessage(role="user" if role == "user" else "assistant", content=message_text(content))


def chat_message(message: MessageRecord) -> ChatMessage:
    return item_message(message.role, message.content, message.item_details)
