"""What a run sends its engine: instructions, the thread's messages (truncated as the run asks),
and the tool calls the run made with their outputs, as plain engine dataclasses."""

from __future__ import annotations

from collections.abc import Sequence

from sovereign_server.engines import ChatMessage, FunctionTool, GenerationRequest, ToolCall
from sovereign_server.runs.items import chat_message
from sovereign_storage import (
    MessageRecord,
    MessageStatus,
    RunRecord,
    RunStepRecord,
    ToolCalls,
)


def tool_turns(steps: Sequence[RunStepRecord]) -> list[ChatMessage]:
    """Each tool_calls step with its outputs, as the assistant turn that called and the tool results."""
    turns: list[ChatMessage] = []
    for step in steps:
        details = step.step_details
        if not isinstance(details, ToolCalls) or not details.tool_calls:
            continue
        if any(call.output is None for call in details.tool_calls):
            continue
        calls = details.tool_calls
        turns.append(
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=tuple(ToolCall(id=call.id, name=call.name, arguments=call.arguments) for call in calls),
            )
        )
        turns.extend(ChatMessage(role="tool", content=call.output or "", tool_call_id=call.id) for call in calls)
    return turns


def generation_request(
    run: RunRecord, messages: Sequence[MessageRecord], steps: Sequence[RunStepRecord]
) -> GenerationRequest:
    """`messages` are the thread's, oldest first, already limited by the run's truncation strategy."""
    conversation: list[ChatMessage] = []
    if run.instructions:
        conversation.append(ChatMessage(role="system", content=run.instructions))
    for message in messages:
        if message.run_id == run.id and message.status is MessageStatus.IN_PROGRESS:
            continue
        conversation.append(chat_message(message))
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
    strategy = run.truncation_strategy
    if strategy is not None and strategy.type == "last_messages":
        return strategy.last_messages
    return None
