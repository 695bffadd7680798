"""Checks of caller input against the limits OpenAI documents; each failure names its `param`.

Works on plain Python values (what the protobuf request holds, already unpacked), so it is
independent of gRPC and reusable by every servicer."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sovereign_server.errors import InvalidRequestError
from sovereign_storage import PageRequest

MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000
MAX_TOOLS = 128
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20

TOOL_TYPES = ("code_interpreter", "file_search", "function")
ATTACHMENT_TOOL_TYPES = ("code_interpreter", "file_search")
MESSAGE_ROLES = ("user", "assistant")
IMAGE_DETAILS = ("auto", "low", "high")
_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def check_max_length(param: str, value: str | None, maximum: int) -> str | None:
    if value is not None and len(value) > maximum:
        raise InvalidRequestError(
            f"Invalid '{param}': string too long. Expected a string with maximum length {maximum}, "
            f"but got a string with length {len(value)} instead.",
            param=param,
            code="string_above_max_length",
        )
    return value


def check_one_of(param: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        choices = ", ".join(f"'{choice}'" for choice in allowed)
        raise InvalidRequestError(
            f"Invalid value: '{value}'. Supported values are: {choices}.", param=param, code="invalid_value"
        )
    return value


def check_metadata(value: Any, param: str = "metadata") -> dict[str, str]:
    """Metadata: at most 16 string pairs, keys up to 64 and values up to 512 characters."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    if len(value) > MAX_METADATA_PAIRS:
        raise InvalidRequestError(
            f"Invalid '{param}': too many properties. Expected an object with at most {MAX_METADATA_PAIRS} "
            f"properties, but got an object with {len(value)} properties instead.",
            param=param,
            code="object_above_max_properties",
        )
    for key, item in value.items():
        if len(key) > MAX_METADATA_KEY:
            raise InvalidRequestError(
                f"Invalid '{param}': metadata key too long. Expected a key with maximum length "
                f"{MAX_METADATA_KEY}, but got a key with length {len(key)} instead.",
                param=param,
                code="string_above_max_length",
            )
        if not isinstance(item, str):
            raise invalid_type(f"{param}.{key}", "a string", item)
        check_max_length(f"{param}.{key}", item, MAX_METADATA_VALUE)
    return dict(value)


def check_temperature(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 2.0:
        raise _out_of_range("temperature", value, 0, 2)
    return value


def check_top_p(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise _out_of_range("top_p", value, 0, 1)
    return value


def _out_of_range(param: str, value: float, low: float, high: float) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid '{param}': expected a value between {low} and {high}, but got {value} instead.",
        param=param,
        code="decimal_out_of_range",
    )


def check_tools(value: Any, param: str = "tools", allowed: Sequence[str] = TOOL_TYPES) -> list[dict[str, Any]]:
    """Tool objects as OpenAI accepts them, returned in a canonical form for storage."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type(param, "an array", value)
    if len(value) > MAX_TOOLS:
        raise InvalidRequestError(
            f"Invalid '{param}': array too long. Expected an array with maximum length {MAX_TOOLS}, "
            f"but got an array with length {len(value)} instead.",
            param=param,
            code="array_above_max_length",
        )
    return [_check_tool(tool, f"{param}[{index}]", allowed) for index, tool in enumerate(value)]


def _check_tool(tool: Any, param: str, allowed: Sequence[str]) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise invalid_type(param, "an object", tool)
    tool_type = tool.get("type")
    if not isinstance(tool_type, str):
        raise InvalidRequestError(
            f"Missing required parameter: '{param}.type'.",
            param=f"{param}.type",
            code="missing_required_parameter",
        )
    check_one_of(f"{param}.type", tool_type, allowed)
    if tool_type == "function":
        function = tool.get("function")
        if not isinstance(function, Mapping):
            raise InvalidRequestError(
                f"Missing required parameter: '{param}.function'.",
                param=f"{param}.function",
                code="missing_required_parameter",
            )
        name = function.get("name")
        if not isinstance(name, str) or not _FUNCTION_NAME.match(name):
            raise InvalidRequestError(
                f"Invalid '{param}.function.name': expected a string of 1 to 64 characters "
                "a-z, A-Z, 0-9, underscores or dashes.",
                param=f"{param}.function.name",
                code="invalid_value",
            )
        canonical: dict[str, Any] = {"name": name}
        for key in ("description", "parameters", "strict"):
            if function.get(key) is not None:
                canonical[key] = function[key]
        return {"type": "function", "function": canonical}
    if tool_type == "file_search" and isinstance(tool.get("file_search"), Mapping):
        return {"type": "file_search", "file_search": dict(tool["file_search"])}
    return {"type": tool_type}


def check_tool_resources(value: Any, param: str = "tool_resources") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    return dict(value)


def check_response_format(value: Any) -> Any:
    """`"auto"`, or `{"type": "text" | "json_object" | "json_schema", ...}`; None means unset."""
    if value is None:
        return None
    if value == "auto":
        return value
    if isinstance(value, Mapping) and value.get("type") in ("text", "json_object", "json_schema"):
        return dict(value)
    raise InvalidRequestError(
        "Invalid 'response_format': expected 'auto' or an object with 'type' one of 'text', "
        "'json_object', 'json_schema'.",
        param="response_format",
        code="invalid_value",
    )


def page_request(limit: int | None, order: str, after: str, before: str) -> PageRequest:
    """The `limit`, `order`, `after`, `before` query parameters every list takes."""
    if limit is None:
        limit = DEFAULT_PAGE_SIZE
    if limit < 1:
        raise InvalidRequestError(
            f"Invalid 'limit': integer below minimum value. Expected a value >= 1, but got {limit} instead.",
            param="limit",
            code="integer_below_min_value",
        )
    if limit > MAX_PAGE_SIZE:
        raise InvalidRequestError(
            f"Invalid 'limit': integer above maximum value. Expected a value <= {MAX_PAGE_SIZE}, "
            f"but got {limit} instead.",
            param="limit",
            code="integer_above_max_value",
        )
    order = order or "desc"
    check_one_of("order", order, ("asc", "desc"))
    return PageRequest(limit=limit, order=order, after=after or None, before=before or None)


def check_message_content(value: Any, param: str = "content") -> list[dict[str, Any]]:
    """A string, or an array of `text`, `image_file` and `image_url` parts, as stored content parts."""
    if isinstance(value, str):
        return [{"type": "text", "text": {"value": value, "annotations": []}}]
    if value is None:
        raise InvalidRequestError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    if not isinstance(value, list):
        raise invalid_type(param, "a string or an array of content parts", value)
    if not value:
        raise InvalidRequestError(
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param=param,
            code="empty_array",
        )
    return [_check_content_part(part, f"{param}[{index}]") for index, part in enumerate(value)]


def _check_content_part(part: Any, param: str) -> dict[str, Any]:
    if not isinstance(part, Mapping):
        raise invalid_type(param, "an object", part)
    part_type = part.get("type")
    check_one_of(f"{param}.type", part_type if isinstance(part_type, str) else "", ("text", "image_file", "image_url"))
    if part_type == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid_type(f"{param}.text", "a string", text)
        return {"type": "text", "text": {"value": text, "annotations": []}}
    key, id_key = ("image_file", "file_id") if part_type == "image_file" else ("image_url", "url")
    image = part.get(key)
    if not isinstance(image, Mapping) or not isinstance(image.get(id_key), str):
        raise InvalidRequestError(
            f"Missing required parameter: '{param}.{key}.{id_key}'.",
            param=f"{param}.{key}.{id_key}",
            code="missing_required_parameter",
        )
    stored: dict[str, Any] = {id_key: image[id_key]}
    if image.get("detail") is not None:
        stored["detail"] = check_one_of(f"{param}.{key}.detail", str(image["detail"]), IMAGE_DETAILS)
    return {"type": part_type, key: stored}


def check_role(value: str, param: str = "role") -> str:
    if not value:
        raise InvalidRequestError(
            f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
        )
    return check_one_of(param, value, MESSAGE_ROLES)


def check_attachments(value: Sequence[Mapping[str, Any]], param: str = "attachments") -> list[dict[str, Any]]:
    checked = []
    for index, attachment in enumerate(value):
        file_id = attachment.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise InvalidRequestError(
                f"Missing required parameter: '{param}[{index}].file_id'.",
                param=f"{param}[{index}].file_id",
                code="missing_required_parameter",
            )
        tools = check_tools(list(attachment.get("tools", [])), f"{param}[{index}].tools", ATTACHMENT_TOOL_TYPES)
        checked.append({"file_id": file_id, "tools": tools})
    return checked


MIN_RUN_TOKEN_LIMIT = 256
TOOL_CHOICE_MODES = ("none", "auto", "required")


def check_token_limit(param: str, value: int | None) -> int | None:
    """`max_prompt_tokens` / `max_completion_tokens`: at least 256, as OpenAI requires."""
    if value is not None and value < MIN_RUN_TOKEN_LIMIT:
        raise InvalidRequestError(
            f"Invalid '{param}': integer below minimum value. Expected a value >= {MIN_RUN_TOKEN_LIMIT}, "
            f"but got {value} instead.",
            param=param,
            code="integer_below_min_value",
        )
    return value


def check_tool_choice(value: Any) -> Any:
    """`"none"`, `"auto"`, `"required"`, or `{"type": "function", "function": {"name": ...}}`."""
    if value is None:
        return "auto"
    if isinstance(value, str):
        return check_one_of("tool_choice", value, TOOL_CHOICE_MODES)
    if isinstance(value, Mapping) and value.get("type") in ("function", "file_search", "code_interpreter"):
        if value["type"] == "function":
            function = value.get("function")
            if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
                raise InvalidRequestError(
                    "Missing required parameter: 'tool_choice.function.name'.",
                    param="tool_choice.function.name",
                    code="missing_required_parameter",
                )
            return {"type": "function", "function": {"name": function["name"]}}
        return {"type": value["type"]}
    raise invalid_type("tool_choice", "'none', 'auto', 'required' or a tool object", value)


def check_truncation_strategy(value: Any) -> dict[str, Any]:
    """`{"type": "auto"}` (the default) or `{"type": "last_messages", "last_messages": n >= 1}`."""
    if value is None:
        return {"type": "auto", "last_messages": None}
    if not isinstance(value, Mapping):
        raise invalid_type("truncation_strategy", "an object", value)
    strategy = check_one_of("truncation_strategy.type", str(value.get("type", "")), ("auto", "last_messages"))
    last = value.get("last_messages")
    if strategy == "last_messages":
        if not isinstance(last, int | float) or isinstance(last, bool) or int(last) != last or last < 1:
            raise InvalidRequestError(
                "Invalid 'truncation_strategy.last_messages': expected an integer >= 1.",
                param="truncation_strategy.last_messages",
                code="invalid_value",
            )
        return {"type": "last_messages", "last_messages": int(last)}
    return {"type": "auto", "last_messages": None}


def check_tool_outputs(outputs: Sequence[tuple[str, str]], expected_ids: Sequence[str]) -> dict[str, str]:
    """Every tool call the run asked for must get exactly one output, and no other call may."""
    given: dict[str, str] = {}
    for index, (call_id, output) in enumerate(outputs):
        if not call_id:
            raise InvalidRequestError(
                f"Missing required parameter: 'tool_outputs[{index}].tool_call_id'.",
                param=f"tool_outputs[{index}].tool_call_id",
                code="missing_required_parameter",
            )
        if call_id in given:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{index}].tool_call_id': duplicate output for tool call '{call_id}'.",
                param=f"tool_outputs[{index}].tool_call_id",
                code="invalid_value",
            )
        if call_id not in expected_ids:
            raise InvalidRequestError(
                f"Invalid 'tool_outputs[{index}].tool_call_id': no tool call with id '{call_id}' is awaiting output.",
                param=f"tool_outputs[{index}].tool_call_id",
                code="invalid_value",
            )
        given[call_id] = output
    missing = [call_id for call_id in expected_ids if call_id not in given]
    if missing:
        raise InvalidRequestError(
            f"Expected tool outputs for call_ids {list(expected_ids)}, got {list(given)}.",
            param="tool_outputs",
            code="invalid_value",
        )
    return given
