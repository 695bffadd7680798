"""What a run sends its engine: instructions, the thread's messages (truncated as the run asks),
and the tool calls the run made with their outputs, as plain engine dataclasses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sovereign_server.engines import ChatMessage, FunctionTool, GenerationRequest, ToolCall
from sovereign_storage import MessageRecord, RunRecord, RunStepRecord


def message_text(content: Sequence[dict[str, Any]]) -> str:
    """A message's content as text; images are named, as engines here take text only."""
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append(part["text"]["value"])
        elif part.get("type") == "image_url":
            parts.append(f"[image: {part['image_url']['url']}]")
        elif part.get("type") == "image_file":
            parts.append(f"[image file: {part['image_file']['file_id']}]")
    return "\n".join(parts)


def tool_turns(steps: Sequence[RunStepRecord]) -> list[ChatMessage]:
    """Each tool_calls step with its outputs, as the assistant turn that called and the tool results."""
    turns: list[ChatMessage] = []
    for step in steps:
        if step.type != "tool_calls":
            continue
        calls = [call for call in step.step_details.get("tool_calls", []) if call.get("type") == "function"]
        if not calls or any(call["function"].get("output") is None for call in calls):
            continue
        turns.append(
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=tuple(
                    ToolCall(id=call["id"], name=call["function"]["name"], arguments=call["function"]["arguments"])
                    for call in calls
                ),
            )
        )
        turns.extend(
            ChatMessage(role="tool", content=call["function"]["output"], tool_call_id=call["id"]) for call in calls
        )
    return turns


def generation_request(
    run: RunRecord, messages: Sequence[MessageRecord], steps: Sequence[RunStepRecord]
) -> GenerationRequest:
    """`messages` are the thread's, oldest first, already limited by the run's truncation strategy."""
    conversation: list[ChatMessage] = []
    if run.instructions:
        conversation.append(ChatMessage(role="system", content=run.instructions))
    for message in messages:
        if message.run_id == run.id and message.status == "in_progress":
            continue
        conversation.append(
            ChatMessage(role="user" if message.role == "user" else "assistant", content=message_text(message.content))
        )
    conversation.extend(tool_turns(steps))
    tools = tuple(
        FunctionTool(
            name=tool["function"]["name"],
            description=tool["function"].get("description"),
            parameters=tool["function"].get("parameters"),
            strict=tool["function"].get("strict"),
        )
        for tool in run.tools
        if tool.get("type") == "function"
    )
    return GenerationRequest(
        model=run.model,
        messages=tuple(conversation),
        tools=tools,
        tool_choice=run.tool_choice,
        parallel_tool_calls=run.parallel_tool_calls is not False,
        temperature=run.temperature,
        top_p=run.top_p,
        response_format=run.response_format,
        max_completion_tokens=run.max_completion_tokens,
    )


def last_messages(run: RunRecord) -> int | None:
    """How many of the thread's newest messages the run reads (None: all)."""
    strategy = run.truncation_strategy or {}
    if strategy.get("type") == "last_messages":
        return int(strategy["last_messages"])
    return None
