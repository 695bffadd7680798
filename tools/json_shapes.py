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
    # ------------------------------------------------ the Responses and Conversations APIs
    # An item as a request gives it: a message (whose `type` may be left out), a function call, a
    # function call's output, or a reference to an item of the conversation or an earlier response.
    "InputItem": {
        "oneOf": [
            closed_object(
                {
                    "type": {"const": "message"},
                    "id": {"type": "string"},
                    "role": enum("user", "assistant", "system", "developer"),
                    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": ref("InputContentPart")}]},
                    "status": enum("in_progress", "completed", "incomplete"),
                },
                "role",
                "content",
            ),
            closed_object(
                {
                    "type": {"const": "function_call"},
                    "id": {"type": "string"},
                    "call_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "name": NAME,
                    "arguments": {"type": "string"},
                    "status": enum("in_progress", "completed", "incomplete"),
                },
                "type",
                "call_id",
                "name",
                "arguments",
            ),
            closed_object(
                {
                    "type": {"const": "function_call_output"},
                    "id": {"type": "string"},
                    "call_id": {"type": "string", "minLength": 1, "maxLength": 64},
                    "output": {"type": "string"},
                    "status": enum("in_progress", "completed", "incomplete"),
                },
                "type",
                "call_id",
                "output",
            ),
            closed_object({"type": {"const": "item_reference"}, "id": {"type": "string"}}, "type", "id"),
        ]
    },
    "InputContentPart": {
        "oneOf": [
            closed_object({"type": enum("input_text"), "text": {"type": "string"}}, "type", "text"),
            closed_object(
                {
                    "type": {"const": "output_text"},
                    "text": {"type": "string"},
                    "annotations": {"type": "array", "items": ANY_OBJECT},
                    "logprobs": {"type": "array", "items": ANY_OBJECT},
                },
                "type",
                "text",
            ),
            closed_object(
                {
                    "type": {"const": "input_image"},
                    "image_url": {"type": ["string", "null"], "pattern": "^(https?://[a-z0-9.-]+(/.*)?|data:.*)$"},
                    "file_id": NULLABLE_STRING,
                    "detail": enum("auto", "low", "high"),
                },
                "type",
            ),
        ]
    },
    # The typed `Item` message, as OpenAI's union of four item objects.
    "Item": {
        "oneOf": [
            closed_object(
                {
                    "id": {"type": "string"},
                    "type": {"const": "message"},
                    "status": enum("in_progress", "completed", "incomplete"),
                    "role": enum("user", "assistant", "system", "developer"),
                    "content": {"type": "array", "items": ref("ItemContentPart")},
                },
                "id",
                "type",
                "status",
                "role",
                "content",
            ),
            closed_object(
                {
                    "id": {"type": "string"},
                    "type": {"const": "function_call"},
                    "status": enum("in_progress", "completed", "incomplete"),
                    "call_id": {"type": "string"},
                    "name": {"type": "string"},
                    "arguments": {"type": "string"},
                },
                "id",
                "type",
                "status",
                "call_id",
                "name",
                "arguments",
            ),
            closed_object(
                {
                    "id": {"type": "string"},
                    "type": {"const": "function_call_output"},
                    "status": enum("in_progress", "completed", "incomplete"),
                    "call_id": {"type": "string"},
                    "output": {"type": "string"},
                },
                "id",
                "type",
                "status",
                "call_id",
                "output",
            ),
            closed_object(
                {
                    "id": {"type": "string", "pattern": "^fs_"},
                    "type": {"const": "file_search_call"},
                    "status": enum("in_progress", "searching", "completed", "incomplete", "failed"),
                    "queries": {"type": "array", "items": {"type": "string"}},
                    "results": nullable({"type": "array", "items": ref("FileSearchCallResult")}),
                },
                "id",
                "type",
                "status",
                "queries",
                "results",
            ),
        ]
    },
    "FileSearchCallResult": closed_object(
        {
            "file_id": {"type": "string"},
            "filename": {"type": "string"},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "text": {"type": "string"},
            "attributes": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
        },
        "file_id",
        "filename",
        "score",
        "text",
    ),
    "FileCitation": closed_object(
        {
            "type": {"const": "file_citation"},
            "file_id": {"type": "string"},
            "filename": {"type": "string"},
            "index": {"type": "integer", "minimum": 0},
        },
        "type",
        "file_id",
        "filename",
        "index",
    ),
    # An item's content part as the server prints it.
    "ItemContentPart": {
        "oneOf": [
            closed_object({"type": {"const": "input_text"}, "text": {"type": "string"}}, "type", "text"),
            closed_object(
                {
                    "type": {"const": "output_text"},
                    "text": {"type": "string"},
                    "annotations": {"type": "array", "items": ref("FileCitation")},
                    "logprobs": {"type": "array", "items": ANY_OBJECT},
                },
                "type",
                "text",
                "annotations",
                "logprobs",
            ),
            closed_object(
                {
                    "type": {"const": "input_image"},
                    "image_url": NULLABLE_STRING,
                    "file_id": NULLABLE_STRING,
                    "detail": enum("auto", "low", "high"),
                },
                "type",
                "image_url",
                "file_id",
                "detail",
            ),
        ]
    },
    "ResponseFunctionTool": closed_object(
        {
            "type": {"const": "function"},
            "name": NAME,
            "description": NULLABLE_STRING,
            "parameters": {"type": ["object", "null"], "additionalProperties": True},
            "strict": {"type": ["boolean", "null"]},
        },
        "type",
        "name",
    ),
    # The file search tool as a request gives it.
    "ResponseFileSearchTool": closed_object(
        {
            "type": {"const": "file_search"},
            "vector_store_ids": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
            "max_num_results": {"type": "integer", "minimum": 1, "maximum": 50},
            "ranking_options": ref("FileSearchRankingOptions"),
            "filters": nullable(ANY_OBJECT),
        },
        "type",
        "vector_store_ids",
    ),
    "FileSearchRankingOptions": closed_object(
        {
            "ranker": enum("none", "auto", "default-2024-11-15", "default_2024_08_21"),
            "score_threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "hybrid_search": closed_object({"embedding_weight": {"type": "number"}, "text_weight": {"type": "number"}}),
        }
    ),
    # The typed `ResponseTool` message as the server prints it: a function or the file search.
    "ResponseTool": {
        "oneOf": [
            closed_object(
                {
                    "type": {"const": "function"},
                    "name": NAME,
                    "description": NULLABLE_STRING,
                    "parameters": {"type": ["object", "null"], "additionalProperties": True},
                    "strict": {"type": ["boolean", "null"]},
                },
                "type",
                "name",
                "parameters",
                "strict",
            ),
            closed_object(
                {
                    "type": {"const": "file_search"},
                    "vector_store_ids": {"type": "array", "items": {"type": "string"}},
                    "max_num_results": {"type": "integer", "minimum": 1, "maximum": 50},
                    "ranking_options": ref("FileSearchRankingOptions"),
                    "filters": nullable(ANY_OBJECT),
                },
                "type",
                "vector_store_ids",
                "max_num_results",
                "ranking_options",
                "filters",
            ),
        ]
    },
    "ResponseToolChoice": {
        "oneOf": [
            enum("none", "auto", "required"),
            closed_object({"type": {"const": "function"}, "name": {"type": "string"}}, "type", "name"),
            closed_object({"type": {"const": "file_search"}}, "type"),
        ]
    },
    "ResponseTextFormat": {
        "oneOf": [
            closed_object({"type": {"const": "text"}}, "type"),
            closed_object({"type": {"const": "json_object"}}, "type"),
            closed_object(
                {
                    "type": {"const": "json_schema"},
                    "name": NAME,
                    "description": {"type": "string"},
                    "schema": ANY_OBJECT,
                    "strict": {"type": ["boolean", "null"]},
                },
                "type",
                "name",
                "schema",
            ),
        ]
    },
    "ResponseUsage": {
        "type": "object",
        "required": ["input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"],
        "properties": {
            "input_tokens": {"type": "integer", "minimum": 0},
            "input_tokens_details": {
                "type": "object",
                "required": ["cached_tokens"],
                "properties": {"cached_tokens": {"type": "integer"}, "cache_write_tokens": {"type": "integer"}},
            },
            "output_tokens": {"type": "integer", "minimum": 0},
            "output_tokens_details": {
                "type": "object",
                "required": ["reasoning_tokens"],
                "properties": {"reasoning_tokens": {"type": "integer"}},
            },
            "total_tokens": {"type": "integer", "minimum": 0},
        },
    },
    "ResponseError": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
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
_INCLUDE: Schema = {
    "type": "array",
    "items": enum(
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
    ),
}
_INPUT_ITEMS: Schema = {"type": "array", "maxItems": 20, "items": ref("InputItem")}
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
                "conversation.deleted",
                "response",
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
    # ------------------------------------------------ the Responses and Conversations APIs
    **_fields("ItemList", _LIST_ENVELOPE),
    **_fields("Conversation", {"object": {"const": "conversation"}, "metadata": ref("Metadata")}),
    **_fields(
        "Response",
        {
            "object": {"const": "response"},
            "status": enum("queued", "in_progress", "completed", "incomplete", "failed", "cancelled"),
            "completed_at": NULLABLE_TIME,
            "conversation": nullable({"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}),
            "error": nullable(ref("ResponseError")),
            "incomplete_details": nullable(ref("IncompleteDetails")),
            "instructions": NULLABLE_STRING,
            "max_output_tokens": {"type": ["integer", "null"]},
            "max_tool_calls": {"type": ["integer", "null"]},
            "previous_response_id": NULLABLE_STRING,
            "prompt": nullable(
                {
                    "type": "object",
                    "required": ["id"],
                    "properties": {"id": {"type": "string"}, "variables": {}, "version": NULLABLE_STRING},
                }
            ),
            "reasoning": {
                "type": "object",
                "properties": {"effort": NULLABLE_STRING, "summary": NULLABLE_STRING},
            },
            "service_tier": enum("auto", "default", "flex", "scale", "priority"),
            "text": {"type": "object", "required": ["format"], "properties": {"format": ref("ResponseTextFormat")}},
            "tool_choice": ref("ResponseToolChoice"),
            "truncation": enum("auto", "disabled"),
            "usage": nullable(ref("ResponseUsage")),
            "user": NULLABLE_STRING,
            "metadata": ref("Metadata"),
        },
    ),
    **_fields(
        "ResponseStreamEvent",
        {
            "part": ref("ItemContentPart"),
            "logprobs": {"type": "array", "items": ANY_OBJECT},
            "code": NULLABLE_STRING,
            "param": NULLABLE_STRING,
        },
    ),
    **_fields(
        "CreateResponseRequest",
        {
            **_SAMPLING,
            "model": {"minLength": 1},
            "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": ref("InputItem")}]},
            "instructions": {"maxLength": 256000},
            "tools": {
                "type": "array",
                "maxItems": 128,
                "items": {"oneOf": [ref("ResponseFunctionTool"), ref("ResponseFileSearchTool")]},
            },
            "tool_choice": nullable(ref("ResponseToolChoice")),
            "conversation": nullable(
                {
                    "oneOf": [
                        {"type": "string"},
                        closed_object({"id": {"type": "string"}}, "id"),
                    ]
                }
            ),
            "max_output_tokens": {"minimum": 16},
            "truncation": enum("auto", "disabled"),
            "text": closed_object(
                {"format": ref("ResponseTextFormat"), "verbosity": nullable(enum("low", "medium", "high"))}
            ),
            "metadata": ref("Metadata"),
            "include": _INCLUDE,
            "prompt": nullable(
                closed_object(
                    {
                        "id": {"type": "string", "pattern": "^asst_"},
                        "variables": {"type": ["object", "null"]},
                        "version": NULLABLE_STRING,
                    },
                    "id",
                )
            ),
        },
    ),
    **_fields("GetResponseRequest", {"include": _INCLUDE}),
    **_fields("ListInputItemsRequest", {**_LIST_PAGE, "include": _INCLUDE}),
    **_fields("CreateConversationRequest", {"items": _INPUT_ITEMS, "metadata": ref("Metadata")}),
    **_fields("UpdateConversationRequest", {"metadata": ref("Metadata")}),
    **_fields("CreateConversationItemsRequest", {"items": _INPUT_ITEMS, "include": _INCLUDE}),
    **_fields("ListConversationItemsRequest", {**_LIST_PAGE, "include": _INCLUDE}),
    **_fields("GetConversationItemRequest", {"include": _INCLUDE}),
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
        "ItemList",
        "Conversation",
        "Response",
        *_files.WHOLE,
    }
)

# The run-creating routes answer `google.api.HttpBody`: one JSON object when `stream` is false,
# else OpenAI's Server-Sent Events. By method name: the message the JSON body is.
HTTP_BODY_RESPONSES: dict[str, str] = {
    "CreateRun": "Run",
    "CreateThreadAndRun": "Run",
    "SubmitToolOutputs": "Run",
    "CreateResponse": "Response",
    "GetResponse": "Response",
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


def _response_event(types: list[str], required: list[str], properties: dict[str, Schema]) -> Schema:
    payload = {
        "type": "object",
        "required": ["type", "sequence_number", *required],
        "properties": {"type": {"enum": types}, "sequence_number": {"type": "integer", "minimum": 0}, **properties},
    }
    return _event(types, payload)


_AT_ITEM: dict[str, Schema] = {"item_id": {"type": "string"}, "output_index": {"type": "integer", "minimum": 0}}
_AT_PART: dict[str, Schema] = {**_AT_ITEM, "content_index": {"type": "integer", "minimum": 0}}
_LOGPROBS: Schema = {"type": "array", "items": ANY_OBJECT}

# One Server-Sent Event of a response stream: `event: <type>` and `data: <json>`, the JSON's `type`
# the event's name; no `done` event ends it, the body does.
RESPONSE_SSE_EVENT: Schema = {
    "type": "object",
    "required": ["event", "data"],
    "oneOf": [
        _response_event(
            [f"response.{name}" for name in ("created", "queued", "in_progress", "completed", "incomplete", "failed")],
            ["response"],
            {"response": ref("Response")},
        ),
        _response_event(
            ["response.output_item.added", "response.output_item.done"],
            ["output_index", "item"],
            {"output_index": {"type": "integer", "minimum": 0}, "item": ref("Item")},
        ),
        _response_event(
            ["response.content_part.added", "response.content_part.done"],
            [*_AT_PART, "part"],
            {**_AT_PART, "part": ref("ItemContentPart")},
        ),
        _response_event(
            ["response.output_text.delta"],
            [*_AT_PART, "delta", "logprobs"],
            {**_AT_PART, "delta": {"type": "string"}, "logprobs": _LOGPROBS},
        ),
        _response_event(
            ["response.output_text.done"],
            [*_AT_PART, "text", "logprobs"],
            {**_AT_PART, "text": {"type": "string"}, "logprobs": _LOGPROBS},
        ),
        _response_event(
            ["response.function_call_arguments.delta"],
            [*_AT_ITEM, "delta"],
            {**_AT_ITEM, "delta": {"type": "string"}},
        ),
        _response_event(
            ["response.function_call_arguments.done"],
            [*_AT_ITEM, "name", "arguments"],
            {**_AT_ITEM, "name": {"type": "string"}, "arguments": {"type": "string"}},
        ),
        _response_event(
            [f"response.file_search_call.{name}" for name in ("in_progress", "searching", "completed")],
            list(_AT_ITEM),
            _AT_ITEM,
        ),
        _response_event(
            ["error"],
            ["code", "message", "param"],
            {"code": NULLABLE_STRING, "message": {"type": "string"}, "param": NULLABLE_STRING},
        ),
    ],
}

# The event schema of each `HttpBody` route that streams; the others stream run events (`SSE_EVENT`).
HTTP_BODY_EVENTS: dict[str, Schema] = {"CreateResponse": RESPONSE_SSE_EVENT, "GetResponse": RESPONSE_SSE_EVENT}
