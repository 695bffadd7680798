"""Request messages built from the keyword arguments the `openai` SDK uses, shared by the sync and
asyncio clients."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from google.protobuf import json_format, struct_pb2

from sovereign_assistant.v1 import (
    assistant_service_pb2,
    common_pb2,
    conversation_service_pb2,
    message_pb2,
    response_service_pb2,
    run_service_pb2,
    thread_service_pb2,
)

# Arguments left out are not sent, so the server keeps or defaults them.
NOT_GIVEN: Any = object()


def _value(value: Any) -> struct_pb2.Value:
    return json_format.ParseDict(value, struct_pb2.Value())


def _struct(value: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(dict(value), struct_pb2.Struct())


def _list(value: Iterable[Any]) -> struct_pb2.ListValue:
    result = struct_pb2.ListValue()
    result.extend(list(value))
    return result


def _tools(tools: Iterable[Mapping[str, Any]]) -> list[common_pb2.Tool]:
    return [json_format.ParseDict(dict(tool), common_pb2.Tool()) for tool in tools]


def _given(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not NOT_GIVEN and value is not None}


def create_assistant(
    *,
    model: str,
    name: str | None = None,
    description: str | None = None,
    instructions: str | None = None,
    tools: Iterable[Mapping[str, Any]] = (),
    tool_resources: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    response_format: Any = None,
) -> assistant_service_pb2.CreateAssistantRequest:
    return assistant_service_pb2.CreateAssistantRequest(
        model=model,
        tools=_tools(tools),
        **_given(
            name=name,
            description=description,
            instructions=instructions,
            temperature=temperature,
            top_p=top_p,
        ),
        **_given(
            tool_resources=_struct(tool_resources) if tool_resources is not None else None,
            metadata=_struct(metadata) if metadata is not None else None,
            response_format=_value(response_format) if response_format is not None else None,
        ),
    )


def update_assistant(assistant_id: str, **changes: Any) -> assistant_service_pb2.ModifyAssistantRequest:
    """`changes` takes the SDK's names: model, name, description, instructions, tools, tool_resources,
    metadata, temperature, top_p, response_format."""
    converters: dict[str, Callable[[Any], Any]] = {
        "tools": _list,
        "tool_resources": _struct,
        "metadata": _struct,
        "response_format": _value,
    }
    fields: dict[str, Any] = {
        name: converters.get(name, lambda value: value)(value) for name, value in _given(**changes).items()
    }
    return assistant_service_pb2.ModifyAssistantRequest(assistant_id=assistant_id, **fields)


def message_input(
    *,
    role: str,
    content: str | Iterable[Mapping[str, Any]],
    attachments: Iterable[Mapping[str, Any]] = (),
    metadata: Mapping[str, str] | None = None,
) -> message_pb2.MessageInput:
    return message_pb2.MessageInput(
        role=role,
        content=_value(content if isinstance(content, str) else [dict(part) for part in content]),
        attachments=[json_format.ParseDict(dict(item), common_pb2.Attachment()) for item in attachments],
        **_given(metadata=_struct(metadata) if metadata is not None else None),
    )


def create_thread(
    *,
    messages: Iterable[Mapping[str, Any]] = (),
    tool_resources: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> thread_service_pb2.CreateThreadRequest:
    return thread_service_pb2.CreateThreadRequest(
        messages=[message_input(**message) for message in messages],
        **_given(
            tool_resources=_struct(tool_resources) if tool_resources is not None else None,
            metadata=_struct(metadata) if metadata is not None else None,
        ),
    )


def update_thread(
    thread_id: str,
    *,
    tool_resources: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> thread_service_pb2.ModifyThreadRequest:
    return thread_service_pb2.ModifyThreadRequest(
        thread_id=thread_id,
        **_given(
            tool_resources=_struct(tool_resources) if tool_resources is not None else None,
            metadata=_struct(metadata) if metadata is not None else None,
        ),
    )


def list_page(
    *, limit: int | None = None, order: str | None = None, after: str | None = None, before: str | None = None
) -> dict[str, Any]:
    return _given(limit=limit, order=order, after=after, before=before)


def _run_options(
    *,
    model: str | None = None,
    instructions: str | None = None,
    tools: Iterable[Mapping[str, Any]] | None = None,
    metadata: Mapping[str, str] | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_prompt_tokens: int | None = None,
    max_completion_tokens: int | None = None,
    truncation_strategy: Mapping[str, Any] | None = None,
    tool_choice: Any = None,
    parallel_tool_calls: bool | None = None,
    response_format: Any = None,
) -> dict[str, Any]:
    """The fields CreateRunRequest and CreateThreadAndRunRequest share. An explicit empty `tools`
    list is still sent, since it means "no tools" rather than "the assistant's tools"."""
    return _given(
        model=model,
        instructions=instructions,
        temperature=temperature,
        top_p=top_p,
        max_prompt_tokens=max_prompt_tokens,
        max_completion_tokens=max_completion_tokens,
        parallel_tool_calls=parallel_tool_calls,
        tools=_list(dict(tool) for tool in tools) if tools is not None else None,
        truncation_strategy=_struct(truncation_strategy) if truncation_strategy is not None else None,
        tool_choice=_value(tool_choice) if tool_choice is not None else None,
        metadata=_struct(metadata) if metadata is not None else None,
        response_format=_value(response_format) if response_format is not None else None,
    )


def create_run(
    thread_id: str,
    *,
    assistant_id: str,
    additional_instructions: str | None = None,
    additional_messages: Iterable[Mapping[str, Any]] | None = None,
    include: Iterable[str] = (),
    reasoning_effort: str | None = None,
    **options: Any,
) -> run_service_pb2.CreateRunRequest:
    """`options` takes the rest of the SDK's `runs.create` arguments: model, instructions, tools,
    metadata, temperature, top_p, max_prompt_tokens, max_completion_tokens, truncation_strategy,
    tool_choice, parallel_tool_calls, response_format."""
    return run_service_pb2.CreateRunRequest(
        thread_id=thread_id,
        assistant_id=assistant_id,
        additional_messages=[message_input(**message) for message in additional_messages or ()],
        include=list(include),
        **_given(additional_instructions=additional_instructions, reasoning_effort=reasoning_effort),
        **_run_options(**options),
    )


def create_thread_and_run(
    *,
    assistant_id: str,
    thread: Mapping[str, Any] | None = None,
    tool_resources: Mapping[str, Any] | None = None,
    **options: Any,
) -> run_service_pb2.CreateThreadAndRunRequest:
    """`thread` takes `threads.create`'s arguments (messages, tool_resources, metadata); `options`
    the run options `create_run` lists, less additional_instructions and additional_messages."""
    return run_service_pb2.CreateThreadAndRunRequest(
        assistant_id=assistant_id,
        thread=create_thread(**(thread or {})),
        **_given(tool_resources=_struct(tool_resources) if tool_resources is not None else None),
        **_run_options(**options),
    )


def submit_tool_outputs(
    run_id: str, *, thread_id: str, tool_outputs: Iterable[Mapping[str, str]]
) -> run_service_pb2.SubmitToolOutputsRequest:
    """`tool_outputs` as the SDK takes them: `[{"tool_call_id": ..., "output": ...}]`."""
    return run_service_pb2.SubmitToolOutputsRequest(
        thread_id=thread_id,
        run_id=run_id,
        tool_outputs=[
            run_service_pb2.ToolOutput(tool_call_id=item.get("tool_call_id", ""), output=item.get("output", ""))
            for item in tool_outputs
        ],
    )


def update_run(run_id: str, *, thread_id: str, metadata: Mapping[str, str]) -> run_service_pb2.ModifyRunRequest:
    return run_service_pb2.ModifyRunRequest(thread_id=thread_id, run_id=run_id, metadata=_struct(metadata))


def create_response(**fields: Any) -> response_service_pb2.CreateResponseRequest:
    """The SDK's `responses.create` arguments (model, input, instructions, tools, tool_choice,
    parallel_tool_calls, previous_response_id, conversation, store, background, max_output_tokens,
    temperature, top_p, text, metadata, include, prompt), as JSON would give them."""
    fields.pop("stream", None)  # the typed call always streams
    return json_format.ParseDict(_given(**fields), response_service_pb2.CreateResponseRequest())


def get_response(
    response_id: str, *, starting_after: int | None = None, include: Iterable[str] = ()
) -> response_service_pb2.GetResponseRequest:
    return response_service_pb2.GetResponseRequest(
        response_id=response_id, include=list(include), stream=True, **_given(starting_after=starting_after)
    )


def create_conversation(
    *, items: Iterable[Mapping[str, Any]] | None = None, metadata: Mapping[str, str] | None = None
) -> conversation_service_pb2.CreateConversationRequest:
    return conversation_service_pb2.CreateConversationRequest(
        **_given(
            items=_list(dict(item) for item in items) if items is not None else None,
            metadata=_struct(metadata) if metadata is not None else None,
        )
    )
