"""What the OpenAPI document says beyond what the protos type: the JSON shapes of the fields that
are `google.protobuf.Struct`, `Value` or `ListValue` (free-form to protobuf, but shaped by OpenAI and
checked by the server's `validation` module), OpenAI's enums and limits on scalar fields, and the
bodies of the `google.api.HttpBody` routes. Read by `openapi_from_descriptors.py`.

Every Struct, Value and ListValue field of a message the document reaches must be listed in
`FIELDS`: the generator refuses to describe one as "any JSON". A component of `COMPONENTS` named
like a message replaces that message's generated schema, for the unions protobuf cannot express
(a tool's keys depend on its `type`)."""

from __future__ import annotations

from typing import Any

import json_shapes_files as _files

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def enum(*values: str) -> Schema:
    return {"type": "string", "enum": list(values)}


def closed_object(properties: dict[str, Schema], *required: str) -> Schema:
    """An object with exactly these keys possible: the server rejects others (`unknown_parameter`)."""
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_TIME: Schema = {"type": ["integer", "null"], "minimum": 0, "description": "Unix seconds, or null."}
ANY_OBJECT: Schema = {"type": "object", "additionalProperties": True}
NAME: Schema = {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}

# Shapes shared by several fields, published as `#/components/schemas/<name>`.
COMPONENTS: dict[str, Schema] = {
    "Metadata": {
        "type": "object",
        "description": "At most 16 string pairs; keys up to 64 characters, values up to 512.",
        "maxProperties": 16,
        "propertyNames": {"maxLength": 64},
        "additionalProperties": {"type": "string", "maxLength": 512},
    },
    "ToolResources": closed_object(
        {
            "code_interpreter": closed_object(
                {"file_ids": {"type": "array", "maxItems": 20, "items": {"type": "string"}}}
            ),
            "file_search": closed_object(
                {"vector_store_ids": {"type": "array", "maxItems": 1, "items": {"type": "string"}}}
            ),
        }
    ),
    # The typed `Tool` message, as OpenAI's union of three tool objects.
    "Tool": {
        "oneOf": [
            closed_object({"type": {"const": "code_interpreter"}}, "type"),
            closed_object({"type": {"const": "file_search"}, "file_search": ref("FileSearchOptions")}, "type"),
            closed_object({"type": {"const": "function"}, "function": ref("FunctionDefinition")}, "type", "function"),
        ]
    },
    "FunctionDefinition": closed_object(
        {"name": NAME, "description": {"type": "string"}, "parameters": ANY_OBJECT, "strict": {"type": "boolean"}},
        "name",
    ),
    # A file attached to a message: its tools are type-only objects.
    "Attachment": closed_object(
        {
            "file_id": {"type": "string", "minLength": 1},
            "tools": {
                "type": "array",
                "items": closed_object({"type": enum("code_interpreter", "file_search")}, "type"),
            },
        },
        "file_id",
    ),
    "FileSearchOptions": closed_object(
        {
            "max_num_results": {"type": "integer", "minimum": 1, "maximum": 50},
            "ranking_options": closed_object(
                {
                    "ranker": enum("auto", "default_2024_08_21"),
                    "score_threshold": {"type": "number", "minimum": 0, "maximum": 1},
                },
                "score_threshold",
            ),
        }
    ),
    "ResponseFormat": {
        "oneOf": [
            {"type": "string", "const": "auto"},
            closed_object({"type": {"const": "text"}}, "type"),
            closed_object({"type": {"const": "json_object"}}, "type"),
            closed_object(
                {
                    "type": {"const": "json_schema"},
                    "json_schema": closed_object(
                        {
                            "name": NAME,
                            "description": {"type": "string"},
                            "schema": ANY_OBJECT,
                            "strict": {"type": "boolean"},
                        },
                        "name",
                    ),
                },
                "type",
                "json_schema",
            ),
        ]
    },
    "ToolChoice": {
        "oneOf": [
            enum("none", "auto", "required"),
            closed_object({"type": enum("code_interpreter", "file_search")}, "type"),
            closed_object(
                {"type": {"const": "function"}, "function": closed_object({"name": {"type": "string"}}, "name")},
                "type",
                "function",
            ),
        ]
    },
    "TruncationStrategy": {
        "oneOf": [
            closed_object(
                {"type": {"const": "auto"}, "last_messages": {"type": ["integer", "null"], "minimum": 1}}, "type"
            ),
            closed_object(
                {"type": {"const": "last_messages"}, "last_messages": {"type": "integer", "minimum": 1}},
                "type",
                "last_messages",
            ),
        ]
    },
    "MessageInputContent": {
        "oneOf": [
            {"type": "string"},
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "oneOf": [
                        closed_object({"type": {"const": "text"}, "text": {"type": "string"}}, "type", "text"),
                        closed_object(
                            {
                                "type": {"const": "image_file"},
                                "image_file": closed_object(
                                    {"file_id": {"type": "string"}, "detail": enum("auto", "low", "high")}, "file_id"
                                ),
                            },
                            "type",
                            "image_file",
                        ),
                        closed_object(
                            {
                                "type": {"const": "image_url"},
                                "image_url": closed_object(
                                    {
                                        "url": {"type": "string", "pattern": "^(https?://[a-z0-9.-]+(/.*)?|data:.*)$"},
                                        "detail": enum("auto", "low", "high"),
                                    },
                                    "url",
                                ),
                            },
                            "type",
                            "image_url",
                        ),
                    ]
                },
            },
        ]
    },
    "RequiredAction": {
        "type": "object",
        "required": ["type", "submit_tool_outputs"],
        "properties": {
            "type": {"const": "submit_tool_outputs"},
            "submit_tool_outputs": {
                "type": "object",
                "required": ["tool_calls"],
                "properties": {
                    "tool_calls": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "type", "function"],
                            "properties": {
                                "id": {"type": "string"},
                                "type": {"const": "function"},
                                "function": {
                                    "type": "object",
                                    "required": ["name", "arguments"],
                                    "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
                                },
                            },
                        },
                    }
                },
            },
        },
    },
    "LastError": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Usage": {
        "type": "object",
        "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
        "properties": {
            name: {"type": "integer", "minimum": 0} for name in ("prompt_tokens", "completion_tokens", "total_tokens")
        },
    },
    "IncompleteDetails": {"type": "object", "required": ["reason"], "properties": {"reason": {"type": "string"}}},
    "StepDetails": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": enum("message_creation", "tool_calls")},
    },
    **_files.COMPONENTS,
}

_TOOLS_OF_ASSISTANT: Schema = {"type": "array", "maxItems": 128, "items": ref("Tool")}
_TOOLS_OF_RUN: Schema = {"type": "array", "maxItems": 20, "items": ref("Tool")}
_LIST_PAGE: dict[str, Schema] = {
    "limit": {"minimum": 1, "maximum": 100},
    "order": enum("asc", "desc"),
}
_SAMPLING: dict[str, Schema] = {
    "temperature": {"minimum": 0, "maximum": 2},
    "top_p": {"minimum": 0, "maximum": 1},
}
_RUN_OPTIONS: dict[str, Schema] = {
    **_SAMPLING,
    "max_prompt_tokens": {"minimum": 256},
    "max_completion_tokens": {"minimum": 256},
    "metadata": ref("Metadata"),
    "truncation_strategy": ref("TruncationStrategy"),
    "tool_choice": nullable(ref("ToolChoice")),
    "response_format": nullable(ref("ResponseFormat")),
    "tools": _TOOLS_OF_RUN,
}
_ASSISTANT_INPUT: dict[str, Schema] = {
    **_SAMPLING,
    "model": {"minLength": 1},
    "name": {"maxLength": 256},
    "description": {"maxLength": 512},
    "instructions": {"maxLength": 256000},
    "tool_resources": ref("ToolResources"),
    "metadata": ref("Metadata"),
    "response_format": nullable(ref("ResponseFormat")),
    "reasoning_effort": enum("none", "minimal", "low", "medium", "high", "xhigh", "max"),
}
_LIST_ENVELOPE: dict[str, Schema] = {
    "object": {"const": "list"},
    "first_id": NULLABLE_STRING,
    "last_id": NULLABLE_STRING,
}


def _fields(message: str, fields: dict[str, Schema]) -> dict[str, Schema]:
    return {f"{message}.{name}": schema for name, schema in fields.items()}


# By `Message.field` (the message's name within its package). A Struct, Value or ListValue field's
# entry replaces its schema; a scalar field's entry is merged into the type protobuf gives it.
FIELDS: dict[str, Schema] = {
    **_fields(
        "Assistant",
        {
            "object": {"const": "assistant"},
            "name": NULLABLE_STRING,
            "description": NULLABLE_STRING,
            "instructions": NULLABLE_STRING,
            "tool_resources": ref("ToolResources"),
            "metadata": ref("Metadata"),
            "response_format": ref("ResponseFormat"),
        },
    ),
    **_fields("CreateAssistantRequest", _ASSISTANT_INPUT),
    **_fields("ModifyAssistantRequest", {**_ASSISTANT_INPUT, "tools": _TOOLS_OF_ASSISTANT}),
    **_fields("ListAssistantsRequest", _LIST_PAGE),
    **_fields("ListAssistantsResponse", _LIST_ENVELOPE),
    **_fields(
        "DeletionStatus",
        {
            "object": enum(
                "assistant.deleted",
                "thread.deleted",
                "thread.message.deleted",
                "file",
                "vector_store.deleted",
                "vector_store.file.deleted",
            )
        },
    ),
    **_fields(
        "Thread", {"object": {"const": "thread"}, "tool_resources": ref("ToolResources"), "metadata": ref("Metadata")}
    ),
    **_fields("CreateThreadRequest", {"tool_resources": ref("ToolResources"), "metadata": ref("Metadata")}),
    **_fields("ModifyThreadRequest", {"tool_resources": ref("ToolResources"), "metadata": ref("Metadata")}),
    **_fields(
        "Message",
        {
            "object": {"const": "thread.message"},
            "status": enum("in_progress", "incomplete", "completed"),
            "role": enum("user", "assistant"),
            "incomplete_details": nullable(ref("IncompleteDetails")),
            "completed_at": NULLABLE_TIME,
            "incomplete_at": NULLABLE_TIME,
            "assistant_id": NULLABLE_STRING,
            "run_id": NULLABLE_STRING,
            "metadata": ref("Metadata"),
        },
    ),
    **_fields("MessageContent", {"type": enum("text", "image_file", "image_url", "refusal")}),
    **_fields("TextContent", {"annotations": {"type": "array", "items": ANY_OBJECT}}),
    **_fields(
        "MessageInput",
        {"role": enum("user", "assistant"), "content": ref("MessageInputContent"), "metadata": ref("Metadata")},
    ),
    **_fields("ListMessagesRequest", _LIST_PAGE),
    **_fields("ListMessagesResponse", _LIST_ENVELOPE),
    **_fields("ModifyMessageRequest", {"metadata": ref("Metadata")}),
    **_fields(
        "Run",
        {
            "object": {"const": "thread.run"},
            "status": enum(
                "queued",
                "in_progress",
                "requires_action",
                "cancelling",
                "cancelled",
                "failed",
                "completed",
                "incomplete",
                "expired",
            ),
            "required_action": nullable(ref("RequiredAction")),
            "last_error": nullable(ref("LastError")),
            "expires_at": NULLABLE_TIME,
            "started_at": NULLABLE_TIME,
            "cancelled_at": NULLABLE_TIME,
            "failed_at": NULLABLE_TIME,
            "completed_at": NULLABLE_TIME,
            "incomplete_details": nullable(ref("IncompleteDetails")),
            "metadata": ref("Metadata"),
            "usage": nullable(ref("Usage")),
            "max_prompt_tokens": {"type": ["integer", "null"]},
            "max_completion_tokens": {"type": ["integer", "null"]},
            "truncation_strategy": ref("TruncationStrategy"),
            "tool_choice": ref("ToolChoice"),
            "response_format": ref("ResponseFormat"),
        },
    ),
    **_fields(
        "RunStep",
        {
            "object": {"const": "thread.run.step"},
            "type": enum("message_creation", "tool_calls"),
            "status": enum("in_progress", "cancelled", "failed", "completed", "expired"),
            "step_details": ref("StepDetails"),
            "last_error": nullable(ref("LastError")),
            "expired_at": NULLABLE_TIME,
            "cancelled_at": NULLABLE_TIME,
            "failed_at": NULLABLE_TIME,
            "completed_at": NULLABLE_TIME,
            "metadata": ref("Metadata"),
            "usage": nullable(ref("Usage")),
        },
    ),
    **_fields("RunStepDelta", {"object": {"const": "thread.run.step.delta"}, "delta": ANY_OBJECT}),
    **_fields("MessageDelta", {"object": {"const": "thread.message.delta"}}),
    **_fields("ErrorObject", {"param": NULLABLE_STRING, "code": NULLABLE_STRING}),
    **_fields("CreateRunRequest", _RUN_OPTIONS),
    **_fields("CreateThreadAndRunRequest", {**_RUN_OPTIONS, "tool_resources": ref("ToolResources")}),
    **_fields("ListRunsRequest", _LIST_PAGE),
    **_fields("ListRunsResponse", _LIST_ENVELOPE),
    **_fields("ModifyRunRequest", {"metadata": ref("Metadata")}),
    **_fields("ListRunStepsRequest", _LIST_PAGE),
    **_fields("ListRunStepsResponse", _LIST_ENVELOPE),
    **_files.FIELDS,
}

# Messages the server always prints whole: every field is required in the document, so that a
# response missing one fails the schema (the SDK reads a missing field as None).
WHOLE: frozenset[str] = frozenset(
    {
        "Assistant",
        "Thread",
        "Message",
        "Run",
        "RunStep",
        "DeletionStatus",
        "ListAssistantsResponse",
        "ListMessagesResponse",
        "ListRunsResponse",
        "ListRunStepsResponse",
        *_files.WHOLE,
    }
)

# The run-creating routes answer `google.api.HttpBody`: one JSON object when `stream` is false,
# else OpenAI's Server-Sent Events. By method name: the message the JSON body is.
HTTP_BODY_RESPONSES: dict[str, str] = {
    "CreateRun": "Run",
    "CreateThreadAndRun": "Run",
    "SubmitToolOutputs": "Run",
}

_RUN_EVENTS = ("created", "queued", "in_progress", "requires_action", "cancelling", "cancelled", "failed")
_RUN_EVENTS_END = ("completed", "incomplete", "expired")
_STEP_EVENTS = ("created", "in_progress", "completed", "failed", "cancelled", "expired")
_MESSAGE_EVENTS = ("created", "in_progress", "completed", "incomplete")


def _event(names: list[str], payload: Schema) -> Schema:
    return {
        "properties": {
            "event": {"enum": names},
            "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": payload},
        }
    }


# One Server-Sent Event of a run stream (`event:` and `data:` lines), as Schemathesis and OpenAPI
# 3.2's `itemSchema` read it: the event name decides what `data` holds.
SSE_EVENT: Schema = {
    "type": "object",
    "required": ["event", "data"],
    "oneOf": [
        _event(["thread.created"], ref("Thread")),
        _event([f"thread.run.{name}" for name in (*_RUN_EVENTS, *_RUN_EVENTS_END)], ref("Run")),
        _event([f"thread.run.step.{name}" for name in _STEP_EVENTS], ref("RunStep")),
        _event(["thread.run.step.delta"], ref("RunStepDelta")),
        _event([f"thread.message.{name}" for name in _MESSAGE_EVENTS], ref("Message")),
        _event(["thread.message.delta"], ref("MessageDelta")),
        _event(["error"], ref("ErrorObject")),
        {"properties": {"event": {"const": "done"}, "data": {"const": "[DONE]"}}},
    ],
}
