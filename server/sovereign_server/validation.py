"""Checks of caller input against the shapes and limits OpenAI documents; each failure names its `param`.

Works on plain Python values (what the protobuf request holds, already unpacked; a `Struct` or
`ListValue` passes as the mapping or sequence it is), so it is independent of gRPC and reusable by
every servicer. The objects the server reads key by key (tool options, tool resources, response
formats, content parts...) reject keys OpenAI does not define, as OpenAI does, and return a canonical
form without nulls: what is stored is always what OpenAI's response schemas allow."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from sovereign_server.engines.images import IMAGE_TYPES, MAX_IMAGE_BYTES, image_type, parse_data_url
from sovereign_server.errors import InvalidRequestError
from sovereign_storage import ContentPart, ImageFileContent, ImageUrlContent, PageRequest
from sovereign_storage.values import ImageDetail

MAX_NAME = 256
MAX_DESCRIPTION = 512
MAX_INSTRUCTIONS = 256_000
MAX_TOOLS = 128
MAX_RUN_TOOLS = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20
MAX_CODE_INTERPRETER_FILES = 20
MAX_VECTOR_STORES = 1
MAX_FILE_SEARCH_RESULTS = 50
MAX_STORE_HELPER_FILES = 10_000

MESSAGE_ROLES = ("user", "assistant")
IMAGE_DETAILS = ("auto", "low", "high")
FILE_SEARCH_RANKERS = ("auto", "default_2024_08_21")
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
IMAGE_URL_SCHEMES = ("http", "https")
# The Responses API's `input_image` also takes `original`, which chat completions (and so the model
# servers) do not: the nearest level is sent.
INPUT_IMAGE_DETAILS: dict[str, ImageDetail] = {"auto": "auto", "low": "low", "high": "high", "original": "high"}
# A `data:` URL holding MAX_IMAGE_BYTES, in base64 with its header; other URLs are far shorter.
MAX_IMAGE_URL = 4 * -(-MAX_IMAGE_BYTES // 3) + 64
# Function and response format names: a-z, A-Z, 0-9, underscores and dashes, at most 64.
_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")


# ---------------------------------------------------------------- errors and JSON types


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, Sequence):
        return "array"
    return "object"


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param=param,
        code="invalid_type",
    )


def missing_parameter(param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _object(value: Any, param: str, keys: Collection[str] | None = None) -> Mapping[str, Any]:
    """`value` as an object whose keys are all among `keys` (any keys when None)."""
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    unknown = [key for key in value if key not in keys] if keys is not None else []
    if unknown:
        raise InvalidRequestError(
            f"Unknown parameter: '{param}.{unknown[0]}'.", param=f"{param}.{unknown[0]}", code="unknown_parameter"
        )
    return value


def _tagged(value: Any, param: str, keys_by_type: Mapping[str, Collection[str]]) -> tuple[str, Mapping[str, Any]]:
    """An object whose `type` is one of `keys_by_type` and whose other keys are those that type takes."""
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    kind = check_one_of(f"{param}.type", _required_string(value, "type", param), tuple(keys_by_type))
    return kind, _object(value, param, ("type", *keys_by_type[kind]))


def _array(value: Any, param: str, max_items: int | None = None) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise invalid_type(param, "an array", value)
    if max_items is not None and len(value) > max_items:
        raise _too_long(param, "array", max_items, len(value))
    return value


def _too_long(param: str, kind: str, maximum: int, length: int) -> InvalidRequestError:
    article = "an" if kind == "array" else "a"
    return InvalidRequestError(
        f"Invalid '{param}': {kind} too long. Expected {article} {kind} with maximum length {maximum}, "
        f"but got {article} {kind} with length {length} instead.",
        param=param,
        code=f"{kind}_above_max_length",
    )


def _string(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise invalid_type(param, "a string", value)
    return value


def _required(parent: Mapping[str, Any], key: str, param: str) -> Any:
    """`parent[key]`, which must be present and not null."""
    if parent.get(key) is None:
        raise missing_parameter(f"{param}.{key}")
    return parent[key]


def _required_string(parent: Mapping[str, Any], key: str, param: str) -> str:
    return _string(_required(parent, key, param), f"{param}.{key}")


def _integer(value: Any, param: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer, also when it arrives as a whole float (`Struct` numbers are doubles)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise invalid_type(param, "an integer", value)
    number = int(value)
    if minimum is not None and number < minimum:
        raise InvalidRequestError(
            f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, but got {number} instead.",
            param=param,
            code="integer_below_min_value",
        )
    if maximum is not None and number > maximum:
        raise InvalidRequestError(
            f"Invalid '{param}': integer above maximum value. Expected a value <= {maximum}, but got {number} instead.",
            param=param,
            code="integer_above_max_value",
        )
    return number


def _number(value: Any, param: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(param, "a number", value)
    if not low <= value <= high:
        raise _out_of_range(param, value, low, high)
    return value


def _boolean(value: Any, param: str) -> bool:
    if not isinstance(value, bool):
        raise invalid_type(param, "a boolean", value)
    return value


def _strings(value: Any, param: str, max_items: int) -> list[str]:
    items = _array(value, param, max_items)
    return [_string(item, f"{param}[{index}]") for index, item in enumerate(items)]


def _out_of_range(param: str, value: float, low: float, high: float) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid '{param}': expected a value between {low} and {high}, but got {value} instead.",
        param=param,
        code="decimal_out_of_range",
    )


# ---------------------------------------------------------------- scalars and metadata


def check_max_length(param: str, value: str | None, maximum: int) -> str | None:
    if value is not None and len(value) > maximum:
        raise _too_long(param, "string", maximum, len(value))
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
        check_max_length(f"{param}.{key}", _string(item, f"{param}.{key}"), MAX_METADATA_VALUE)
    return dict(value)


def check_model(value: str) -> str:
    """A model name given to replace the stored one: not empty."""
    if not value:
        raise InvalidRequestError(
            "Invalid 'model': empty string. Expected a string with minimum length 1, but got an empty string instead.",
            param="model",
            code="empty_string",
        )
    return value


def check_temperature(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 2.0:
        raise _out_of_range("temperature", value, 0, 2)
    return value


def check_top_p(value: float | None) -> float | None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise _out_of_range("top_p", value, 0, 1)
    return value


def check_reasoning_effort(value: str | None) -> str | None:
    return None if value is None else check_one_of("reasoning_effort", value, REASONING_EFFORTS)


# ---------------------------------------------------------------- tools and tool resources


def check_tools(value: Any, param: str = "tools", maximum: int = MAX_TOOLS) -> list[dict[str, Any]]:
    """Tool objects as OpenAI accepts them (at most 128 on an assistant, 20 on a run), in a
    canonical form for storage."""
    if value is None:
        return []
    tools = _array(value, param, maximum)
    return [_check_tool(tool, f"{param}[{index}]") for index, tool in enumerate(tools)]


def check_run_tools(value: Any) -> list[dict[str, Any]]:
    return check_tools(value, maximum=MAX_RUN_TOOLS)


# The keys each tool type takes besides `type`.
_TOOL_KEYS: dict[str, tuple[str, ...]] = {
    "code_interpreter": (),
    "file_search": ("file_search",),
    "function": ("function",),
}
_ATTACHMENT_TOOL_KEYS: dict[str, tuple[str, ...]] = {"code_interpreter": (), "file_search": ()}


def _check_tool(value: Any, param: str) -> dict[str, Any]:
    tool_type, tool = _tagged(value, param, _TOOL_KEYS)
    if tool_type == "function":
        function = _named_schema(_required(tool, "function", param), f"{param}.function", "parameters")
        return {"type": "function", "function": function}
    if tool_type == "file_search" and tool.get("file_search") is not None:
        return {"type": "file_search", "file_search": _check_file_search(tool["file_search"], f"{param}.file_search")}
    return {"type": tool_type}


def _named_schema(value: Any, param: str, schema_key: str) -> dict[str, Any]:
    """A function (its JSON Schema is `parameters`) or a JSON schema response format (`schema`):
    `{name, description?, <schema_key>?, strict?}`."""
    holder = _object(value, param, ("name", "description", schema_key, "strict"))
    name = _required_string(holder, "name", param)
    if not _NAME.fullmatch(name):
        raise InvalidRequestError(
            f"Invalid '{param}.name': expected a string of 1 to 64 characters a-z, A-Z, 0-9, underscores or dashes.",
            param=f"{param}.name",
            code="invalid_value",
        )
    canonical: dict[str, Any] = {"name": name}
    if holder.get("description") is not None:
        canonical["description"] = _string(holder["description"], f"{param}.description")
    if holder.get(schema_key) is not None:
        # A JSON Schema: any object.
        canonical[schema_key] = dict(_object(holder[schema_key], f"{param}.{schema_key}"))
    if holder.get("strict") is not None:
        canonical["strict"] = _boolean(holder["strict"], f"{param}.strict")
    return canonical


def _check_file_search(value: Any, param: str) -> dict[str, Any]:
    """`{max_num_results: 1..50, ranking_options: {ranker, score_threshold: 0..1}}`, both optional."""
    options = _object(value, param, ("max_num_results", "ranking_options"))
    checked: dict[str, Any] = {}
    if options.get("max_num_results") is not None:
        checked["max_num_results"] = _integer(
            options["max_num_results"], f"{param}.max_num_results", 1, MAX_FILE_SEARCH_RESULTS
        )
    if options.get("ranking_options") is not None:
        ranking_param = f"{param}.ranking_options"
        ranking = _object(options["ranking_options"], ranking_param, ("ranker", "score_threshold"))
        threshold = _required(ranking, "score_threshold", ranking_param)
        checked_ranking: dict[str, Any] = {}
        if ranking.get("ranker") is not None:
            ranker = _string(ranking["ranker"], f"{ranking_param}.ranker")
            checked_ranking["ranker"] = check_one_of(f"{ranking_param}.ranker", ranker, FILE_SEARCH_RANKERS)
        checked_ranking["score_threshold"] = _number(threshold, f"{ranking_param}.score_threshold", 0, 1)
        checked["ranking_options"] = checked_ranking
    return checked


def check_tool_resources(value: Any, param: str = "tool_resources") -> dict[str, Any]:
    """`{code_interpreter: {file_ids: <= 20}, file_search: {vector_store_ids: <= 1}}`, each optional."""
    if value is None:
        return {}
    resources = _object(value, param, ("code_interpreter", "file_search"))
    checked: dict[str, Any] = {}
    if resources.get("code_interpreter") is not None:
        code_param = f"{param}.code_interpreter"
        code = _object(resources["code_interpreter"], code_param, ("file_ids",))
        file_ids = code.get("file_ids")
        checked["code_interpreter"] = {
            "file_ids": []
            if file_ids is None
            else _strings(file_ids, f"{code_param}.file_ids", MAX_CODE_INTERPRETER_FILES)
        }
    if resources.get("file_search") is not None:
        search_param = f"{param}.file_search"
        search = _object(resources["file_search"], search_param, ("vector_store_ids", "vector_stores"))
        store_ids = search.get("vector_store_ids")
        checked["file_search"] = {
            "vector_store_ids": []
            if store_ids is None
            else _strings(store_ids, f"{search_param}.vector_store_ids", MAX_VECTOR_STORES)
        }
        if search.get("vector_stores") is not None:
            # The helper that creates a store from files: created (and replaced by its id) by the
            # servicer, which checks each helper's chunking strategy then.
            helpers_param = f"{search_param}.vector_stores"
            helpers = _array(search["vector_stores"], helpers_param, MAX_VECTOR_STORES)
            total = len(checked["file_search"]["vector_store_ids"]) + len(helpers)
            if total > MAX_VECTOR_STORES:
                raise _too_long(helpers_param, "array", MAX_VECTOR_STORES, total)
            checked["file_search"]["vector_stores"] = [
                _check_store_helper(helper, f"{helpers_param}[{index}]") for index, helper in enumerate(helpers)
            ]
    return checked


def _check_store_helper(value: Any, param: str) -> dict[str, Any]:
    """`{file_ids, chunking_strategy, metadata}`; the strategy is checked when the store is made."""
    helper = _object(value, param, ("file_ids", "chunking_strategy", "metadata"))
    file_ids = helper.get("file_ids")
    checked: dict[str, Any] = {
        "file_ids": [] if file_ids is None else _strings(file_ids, f"{param}.file_ids", MAX_STORE_HELPER_FILES),
        "metadata": check_metadata(helper.get("metadata"), f"{param}.metadata"),
    }
    if helper.get("chunking_strategy") is not None:
        checked["chunking_strategy"] = dict(_object(helper["chunking_strategy"], f"{param}.chunking_strategy"))
    return checked


# ---------------------------------------------------------------- run options


_RESPONSE_FORMAT_KEYS: dict[str, tuple[str, ...]] = {"text": (), "json_object": (), "json_schema": ("json_schema",)}


def check_response_format(value: Any) -> Any:
    """`"auto"`, `{"type": "text" | "json_object"}` or `{"type": "json_schema", "json_schema":
    {name, description?, schema?, strict?}}`; None means unset."""
    param = "response_format"
    if value is None:
        return None
    if isinstance(value, str):
        return check_one_of(param, value, ("auto",))
    if not isinstance(value, Mapping):
        raise invalid_type(param, "'auto' or an object", value)
    kind, value = _tagged(value, param, _RESPONSE_FORMAT_KEYS)
    if kind != "json_schema":
        return {"type": kind}
    return {
        "type": "json_schema",
        "json_schema": _named_schema(_required(value, "json_schema", param), f"{param}.json_schema", "schema"),
    }


MIN_RUN_TOKEN_LIMIT = 256
# The largest integer every supported database stores in an integer column (PostgreSQL's `integer`).
MAX_STORED_INTEGER = 2**31 - 1
TOOL_CHOICE_MODES = ("none", "auto", "required")
_TOOL_CHOICE_KEYS: dict[str, tuple[str, ...]] = {"function": ("function",), "code_interpreter": (), "file_search": ()}


def check_token_limit(param: str, value: int | None) -> int | None:
    """`max_prompt_tokens` / `max_completion_tokens`: at least 256, as OpenAI requires."""
    return None if value is None else _integer(value, param, MIN_RUN_TOKEN_LIMIT, MAX_STORED_INTEGER)


def check_tool_choice(value: Any) -> Any:
    """`"none"`, `"auto"`, `"required"`, or `{"type": "function", "function": {"name": ...}}`
    (`{"type": "file_search" | "code_interpreter"}` for the other tools)."""
    param = "tool_choice"
    if value is None:
        return "auto"
    if isinstance(value, str):
        return check_one_of(param, value, TOOL_CHOICE_MODES)
    if not isinstance(value, Mapping):
        raise invalid_type(param, "'none', 'auto', 'required' or a tool object", value)
    tool_type, value = _tagged(value, param, _TOOL_CHOICE_KEYS)
    if tool_type != "function":
        return {"type": tool_type}
    function = _object(_required(value, "function", param), f"{param}.function", ("name",))
    return {"type": "function", "function": {"name": _required_string(function, "name", f"{param}.function")}}


def check_truncation_strategy(value: Any) -> dict[str, Any]:
    """`{"type": "auto"}` (the default) or `{"type": "last_messages", "last_messages": n >= 1}`."""
    param = "truncation_strategy"
    if value is None:
        return {"type": "auto", "last_messages": None}
    strategy = _object(value, param, ("type", "last_messages"))
    kind = check_one_of(f"{param}.type", _required_string(strategy, "type", param), ("auto", "last_messages"))
    last = strategy.get("last_messages")
    if kind == "last_messages":
        return {
            "type": "last_messages",
            "last_messages": _integer(_required(strategy, "last_messages", param), f"{param}.last_messages", 1),
        }
    if last is not None:
        _integer(last, f"{param}.last_messages", 1)
    return {"type": "auto", "last_messages": None}


def page_request(limit: int | None, order: str, after: str, before: str) -> PageRequest:
    """The `limit`, `order`, `after`, `before` query parameters every list takes."""
    limit = DEFAULT_PAGE_SIZE if limit is None else _integer(limit, "limit", 1, MAX_PAGE_SIZE)
    order = order or "desc"
    check_one_of("order", order, ("asc", "desc"))
    return PageRequest(limit=limit, order=order, after=after or None, before=before or None)


# ---------------------------------------------------------------- messages


def check_message_content(value: Any, param: str = "content") -> list[dict[str, Any]]:
    """A string, or an array of `text`, `image_file` and `image_url` parts, as stored content parts."""
    if isinstance(value, str):
        return [{"type": "text", "text": {"value": value, "annotations": []}}]
    if value is None:
        raise missing_parameter(param)
    if isinstance(value, Mapping) or not isinstance(value, Sequence):
        raise invalid_type(param, "a string or an array of content parts", value)
    if not value:
        raise InvalidRequestError(
            f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            param=param,
            code="empty_array",
        )
    return [_check_content_part(part, f"{param}[{index}]") for index, part in enumerate(value)]


def _check_content_part(value: Any, param: str) -> dict[str, Any]:
    part_type, part = _tagged(
        value, param, {"text": ("text",), "image_file": ("image_file",), "image_url": ("image_url",)}
    )
    if part_type == "text":
        return {"type": "text", "text": {"value": _required_string(part, "text", param), "annotations": []}}
    key, id_key = ("image_file", "file_id") if part_type == "image_file" else ("image_url", "url")
    image = _object(_required(part, key, param), f"{param}.{key}", (id_key, "detail"))
    stored: dict[str, Any] = {id_key: _required_string(image, id_key, f"{param}.{key}")}
    if id_key == "url":
        _check_image_url(stored["url"], f"{param}.image_url.url")
    if image.get("detail") is not None:
        detail_param = f"{param}.{key}.detail"
        stored["detail"] = check_one_of(detail_param, _string(image["detail"], detail_param), IMAGE_DETAILS)
    return {"type": part_type, key: stored}


def check_images_allowed(role: str, content: Sequence[Mapping[str, Any]], param: str = "content") -> None:
    """Images only in user messages, as OpenAI allows: a model is shown what users send."""
    for index, part in enumerate(content):
        if role != "user" and part["type"] in ("image_url", "image_file"):
            raise InvalidRequestError(
                f"Invalid '{param}[{index}].type': '{part['type']}' content is only allowed in messages with role "
                f"'user', not '{role}'.",
                param=f"{param}[{index}].type",
                code="invalid_value",
            )


def _check_image_url(url: str, param: str) -> None:
    """An http(s) URL, or a base64 `data:` URL of a PNG, JPEG, GIF or WebP image of at most
    MAX_IMAGE_BYTES (checked by its bytes: a model server would fail the run on anything else)."""
    check_max_length(param, url, MAX_IMAGE_URL)
    if url[:5].lower() == "data:":
        _check_inline_image(url, param)
        return
    try:
        parts = urlsplit(url)
        # Reading `port` raises, as urlsplit does for a malformed host (`http://[x`), on a bad port.
        valid = parts.scheme in IMAGE_URL_SCHEMES and bool(parts.hostname) and (parts.port or 0) >= 0
    except ValueError:
        valid = False
    if not valid:
        raise InvalidRequestError(
            f"Invalid '{param}': expected an http, https or data URL.", param=param, code="invalid_value"
        )


def _check_inline_image(url: str, param: str) -> None:
    inline = parse_data_url(url)
    if inline is None:
        raise InvalidRequestError(
            f"Invalid '{param}': expected a base64 data URL (data:image/png;base64,...).",
            param=param,
            code="invalid_value",
        )
    if len(inline.data) > MAX_IMAGE_BYTES:
        raise InvalidRequestError(
            f"Invalid '{param}': the image is {len(inline.data)} bytes; an image may have at most {MAX_IMAGE_BYTES}.",
            param=param,
            code="image_too_large",
        )
    # The bytes tell the type; the declared one (image/jpg, say) need only be an image's.
    if not inline.media_type.startswith("image/") or image_type(inline.data) is None:
        raise InvalidRequestError(
            f"Invalid '{param}': expected an image of a supported type ({', '.join(IMAGE_TYPES)}).",
            param=param,
            code="invalid_image_format",
        )


def check_input_image(value: Any, param: str) -> ContentPart:
    """The Responses API's `input_image` part, `{type, image_url | file_id, detail}`, as the content
    part it stands for: an image URL (http, https, or base64 `data:`) or a stored file, checked as
    the Assistants API's image parts are (a file's existence by `runs.images.check_image_files`)."""
    _, part = _tagged(value, param, {"input_image": ("image_url", "file_id", "detail", "prompt_cache_breakpoint")})
    url, file_id = part.get("image_url"), part.get("file_id")
    if (url is None) == (file_id is None):
        raise InvalidRequestError(
            f"Invalid '{param}': expected exactly one of 'image_url' and 'file_id'.",
            param=param,
            code="invalid_value" if url is not None else "missing_required_parameter",
        )
    detail_param = f"{param}.detail"
    detail = "auto" if part.get("detail") is None else _string(part["detail"], detail_param)
    sent = INPUT_IMAGE_DETAILS[check_one_of(detail_param, detail, tuple(INPUT_IMAGE_DETAILS))]
    if file_id is not None:
        return ImageFileContent(_string(file_id, f"{param}.file_id"), sent)
    checked = _string(url, f"{param}.image_url")
    _check_image_url(checked, f"{param}.image_url")
    return ImageUrlContent(checked, sent)


def check_role(value: str, param: str = "role") -> str:
    if not value:
        raise missing_parameter(param)
    return check_one_of(param, value, MESSAGE_ROLES)


def check_attachments(value: Sequence[Mapping[str, Any]], param: str = "attachments") -> list[dict[str, Any]]:
    """`[{file_id, tools: [{"type": "code_interpreter" | "file_search"}]}]`."""
    checked = []
    for index, item in enumerate(_array(value, param)):
        item_param = f"{param}[{index}]"
        attachment = _object(item, item_param, ("file_id", "tools"))
        file_id = attachment.get("file_id")
        if not file_id:
            raise missing_parameter(f"{item_param}.file_id")
        tools = _array([] if attachment.get("tools") is None else attachment["tools"], f"{item_param}.tools")
        checked.append(
            {
                "file_id": _string(file_id, f"{item_param}.file_id"),
                "tools": [_check_attachment_tool(tool, f"{item_param}.tools[{n}]") for n, tool in enumerate(tools)],
            }
        )
    return checked


def _check_attachment_tool(value: Any, param: str) -> dict[str, Any]:
    return {"type": _tagged(value, param, _ATTACHMENT_TOOL_KEYS)[0]}


def check_tool_outputs(outputs: Sequence[tuple[str, str]], expected_ids: Sequence[str]) -> dict[str, str]:
    """Every tool call the run asked for must get exactly one output, and no other call may."""
    given: dict[str, str] = {}
    for index, (call_id, output) in enumerate(outputs):
        if not call_id:
            raise missing_parameter(f"tool_outputs[{index}].tool_call_id")
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


# ---------------------------------------------------------------- the Responses and Conversations APIs

MAX_CONVERSATION_ITEMS = 20
MIN_OUTPUT_TOKENS = 16
ITEM_ROLES = ("user", "assistant", "system", "developer")
ITEM_STATUSES = ("in_progress", "completed", "incomplete")
INCLUDABLE = (
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "message.input_image.image_url",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
    "message.output_text.logprobs",
)
TEXT_VERBOSITIES = ("low", "medium", "high")
TRUNCATIONS = ("disabled", "auto")
_ITEM_KEYS: dict[str, tuple[str, ...]] = {
    "message": ("id", "role", "content", "status"),
    "function_call": ("id", "call_id", "name", "arguments", "status"),
    "function_call_output": ("id", "call_id", "output", "status"),
    "item_reference": ("id",),
}
_INPUT_PART_KEYS: dict[str, tuple[str, ...]] = {
    "input_text": ("text",),
    "output_text": ("text", "annotations", "logprobs"),
    "input_image": ("image_url", "file_id", "detail", "prompt_cache_breakpoint"),
    "input_file": ("file_id", "file_data", "file_url", "filename"),
}
_TEXT_FORMAT_KEYS: dict[str, tuple[str, ...]] = {
    "text": (),
    "json_object": (),
    "json_schema": ("name", "description", "schema", "strict"),
}


def check_input_items(
    value: Any, param: str = "input", *, references: bool = True, max_items: int | None = None
) -> list[dict[str, Any]]:
    """A response's `input` (a string: one user message) or a conversation's `items`: messages,
    function calls, their outputs and (`references`) item references, in a canonical form
    (messages with typed `type`, content parts as arrays)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    items = _array(value, param, max_items)
    return [_check_input_item(item, f"{param}[{index}]", references) for index, item in enumerate(items)]


def _check_input_item(value: Any, param: str, references: bool) -> dict[str, Any]:
    if isinstance(value, Mapping) and value.get("type") is None and "role" in value:
        # A message may leave its type out (OpenAI's "easy" input message).
        value = {**value, "type": "message"}
    kinds = _ITEM_KEYS if references else {kind: keys for kind, keys in _ITEM_KEYS.items() if kind != "item_reference"}
    kind, item = _tagged(value, param, kinds)
    if kind == "item_reference":
        return {"type": kind, "id": _required_string(item, "id", param)}
    checked: dict[str, Any] = {"type": kind}
    if item.get("status") is not None:
        checked["status"] = check_one_of(f"{param}.status", _string(item["status"], f"{param}.status"), ITEM_STATUSES)
    if kind == "message":
        role = _required_string(item, "role", param)
        checked["role"] = check_one_of(f"{param}.role", role, ITEM_ROLES)
        checked["content"] = _check_input_content(_required(item, "content", param), f"{param}.content")
        for index, part in enumerate(checked["content"]):
            if role != "user" and part["type"] == "input_image":
                raise InvalidRequestError(
                    f"Invalid '{param}.content[{index}].type': 'input_image' content is only allowed in messages "
                    f"with role 'user', not '{role}'.",
                    param=f"{param}.content[{index}].type",
                    code="invalid_value",
                )
        return checked
    call_id = _required_string(item, "call_id", param)
    if not 1 <= len(call_id) <= 64:
        raise InvalidRequestError(
            f"Invalid '{param}.call_id': expected a string of 1 to 64 characters.",
            param=f"{param}.call_id",
            code="invalid_value",
        )
    checked["call_id"] = call_id
    if kind == "function_call":
        # The same rules as a function's name.
        checked["name"] = _named_schema({"name": _required(item, "name", param)}, param, "parameters")["name"]
        checked["arguments"] = _required_string(item, "arguments", param)
    else:
        output = _required(item, "output", param)
        if not isinstance(output, str):
            raise InvalidRequestError(
                f"Invalid '{param}.output': only a string output is supported.",
                param=f"{param}.output",
                code="invalid_type",
            )
        checked["output"] = output
    return checked


def _check_input_content(value: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"type": "input_text", "text": value}]
    parts = _array(value, param)
    return [_check_input_part(part, f"{param}[{index}]") for index, part in enumerate(parts)]


def _check_input_part(value: Any, param: str) -> dict[str, Any]:
    kind, part = _tagged(value, param, _INPUT_PART_KEYS)
    if kind in ("input_text", "output_text"):
        return {"type": kind, "text": _required_string(part, "text", param)}
    if kind == "input_file":
        raise InvalidRequestError(
            f"Invalid '{param}.type': file inputs are not supported; send the file's text as 'input_text'.",
            param=f"{param}.type",
            code="unsupported_value",
        )
    # Checked as the Assistants API's image parts are; the part it stands for goes on as it is.
    return {"type": kind, "image": check_input_image(value, param)}


# Checks a hosted tool of a response (`file_search`): the tool as given, its param -> as stored.
HostedToolCheck = Callable[[Mapping[str, Any], str], dict[str, Any]]


def check_response_tools(
    value: Any, param: str = "tools", hosted: Mapping[str, HostedToolCheck] | None = None
) -> list[dict[str, Any]] | None:
    """Function tools, `{"type": "function", "name", "description"?, "parameters"?, "strict"?}`, as
    stored and printed (`parameters` and `strict` null when left out), and the tools the server runs
    itself, each checked by its `hosted` check. None when not given."""
    if value is None:
        return None
    tools = _array(value, param, MAX_TOOLS)
    hosted = hosted or {}
    checked = []
    for index, tool in enumerate(tools):
        tool_param = f"{param}[{index}]"
        kind = tool.get("type") if isinstance(tool, Mapping) else None
        if isinstance(kind, str) and kind in hosted:
            checked.append(hosted[kind](tool, tool_param))
            continue
        _, function = _tagged(tool, tool_param, {"function": ("name", "description", "parameters", "strict")})
        canonical = _named_schema(
            {key: item for key, item in function.items() if key != "type"}, tool_param, "parameters"
        )
        checked.append(
            {
                "type": "function",
                **canonical,
                "parameters": canonical.get("parameters"),
                "strict": canonical.get("strict"),
            }
        )
    return checked


def check_response_tool_choice(value: Any) -> Any:
    """`"none"`, `"auto"` (the default), `"required"`, `{"type": "function", "name": ...}` or
    `{"type": "file_search"}`."""
    param = "tool_choice"
    if value is None:
        return "auto"
    if isinstance(value, str):
        return check_one_of(param, value, TOOL_CHOICE_MODES)
    kind, choice = _tagged(value, param, {"function": ("name",), "file_search": ()})
    if kind == "file_search":
        return {"type": "file_search"}
    return {"type": "function", "name": _required_string(choice, "name", param)}


def check_text_config(value: Any) -> dict[str, Any] | None:
    """`text`: `{"format": {"type": "text" | "json_object"} | {"type": "json_schema", "name",
    "schema", "description"?, "strict"?}, "verbosity"?}`; returns the format (None: text)."""
    param = "text"
    if value is None:
        return None
    config = _object(value, param, ("format", "verbosity"))
    if config.get("verbosity") is not None:
        verbosity = _string(config["verbosity"], f"{param}.verbosity")
        check_one_of(f"{param}.verbosity", verbosity, TEXT_VERBOSITIES)
    if config.get("format") is None:
        return None
    format_param = f"{param}.format"
    kind, text_format = _tagged(config["format"], format_param, _TEXT_FORMAT_KEYS)
    if kind != "json_schema":
        return {"type": kind}
    schema = _named_schema({key: item for key, item in text_format.items() if key != "type"}, format_param, "schema")
    if "schema" not in schema:
        raise missing_parameter(f"{format_param}.schema")
    return {"type": "json_schema", **schema}


def check_max_output_tokens(value: int | None) -> int | None:
    return None if value is None else _integer(value, "max_output_tokens", MIN_OUTPUT_TOKENS)


def check_conversation(value: Any) -> str | None:
    """`conversation`: an id, or `{"id": ...}`."""
    param = "conversation"
    if value is None:
        return None
    conversation = value if isinstance(value, str) else _required(_object(value, param, ("id",)), "id", param)
    conversation_id = _string(conversation, param if isinstance(value, str) else f"{param}.id")
    if not conversation_id:
        raise InvalidRequestError(
            f"Invalid '{param}': empty string. Expected a conversation id.", param=param, code="empty_string"
        )
    return conversation_id


def check_prompt(value: Any) -> str | None:
    """`prompt`: `{"id": "asst_..."}`, an assistant whose settings the response takes; the id of
    the assistant, None when not given."""
    param = "prompt"
    if value is None:
        return None
    prompt = _object(value, param, ("id", "variables", "version"))
    prompt_id = _required_string(prompt, "id", param)
    if not prompt_id.startswith("asst_"):
        raise InvalidRequestError(
            f"Invalid '{param}.id': expected the id of an assistant ('asst_...'); stored prompts are not supported.",
            param=f"{param}.id",
            code="invalid_value",
        )
    if prompt.get("variables"):
        raise InvalidRequestError(
            f"Invalid '{param}.variables': an assistant's instructions take no variables.",
            param=f"{param}.variables",
            code="unsupported_parameter",
        )
    if prompt.get("version") is not None:
        _string(prompt["version"], f"{param}.version")
    return prompt_id


def check_include(values: Sequence[str], param: str = "include") -> list[str]:
    return [check_one_of(f"{param}[{index}]", value, INCLUDABLE) for index, value in enumerate(values)]


def check_exclusive(param: str, other: str, present: bool, other_present: bool) -> None:
    """Two parameters that cannot be given together."""
    if present and other_present:
        raise InvalidRequestError(
            f"Mutually exclusive parameters: Ensure you are only providing one of: '{param}' or '{other}'.",
            param=param,
            code="mutually_exclusive_parameters",
        )
