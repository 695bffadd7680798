"""Checks of the files and vector stores API's input, on plain Python values (what the protobuf
requests hold, unpacked); each failure names its `param`, as OpenAI's errors do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sovereign_server.errors import InvalidRequestError
from sovereign_server.files.filters import check_filter
from sovereign_server.validation import check_one_of, invalid_type, missing_parameter
from sovereign_storage import AttributeValue, ChunkingStrategy, ExpiresAfter, IndexStatus

PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_FILES_PAGE = 10_000
MAX_STORE_FILE_IDS = 500
MAX_BATCH_FILES = 2000
MAX_ATTRIBUTES = 16
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_STRING = 512
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
FILE_EXPIRY_SECONDS = (3600, 2_592_000)
MAX_SEARCH_RESULTS = 50
DEFAULT_SEARCH_RESULTS = 10
SEARCH_RANKERS = ("none", "auto", "default-2024-11-15")
STATUS_FILTERS = tuple(str(status) for status in IndexStatus)


def _unknown(param: str, key: str) -> InvalidRequestError:
    return InvalidRequestError(f"Unknown parameter: '{param}.{key}'.", param=f"{param}.{key}", code="unknown_parameter")


def _object(value: Any, param: str, keys: Sequence[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    for key in value:
        if key not in keys:
            raise _unknown(param, key)
    return value


def _integer(value: Any, param: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise invalid_type(param, "an integer", value)
    number = int(value)
    if number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise InvalidRequestError(
            f"Invalid '{param}': expected an integer {bound}, but got {number} instead.",
            param=param,
            code="integer_out_of_range",
        )
    return number


def check_purpose(value: str | None) -> str:
    if not value:
        raise missing_parameter("purpose")
    return check_one_of("purpose", value, PURPOSES)


def check_file_expiry(fields: Mapping[str, str]) -> int | None:
    """Seconds after creation at which an upload expires (`expires_after[anchor]` / `[seconds]`)."""
    anchor = fields.get("expires_after[anchor]")
    seconds = fields.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor is None:
        raise missing_parameter("expires_after[anchor]")
    check_one_of("expires_after[anchor]", anchor, ("created_at",))
    if seconds is None:
        raise missing_parameter("expires_after[seconds]")
    try:
        number = int(seconds)
    except ValueError:
        raise invalid_type("expires_after[seconds]", "an integer", seconds) from None
    return _integer(number, "expires_after[seconds]", *FILE_EXPIRY_SECONDS)


def check_chunking_strategy(value: Any, param: str = "chunking_strategy") -> ChunkingStrategy:
    """`{"type": "auto"}` (800 tokens, 400 overlap) or `{"type": "static", "static": {...}}`."""
    if value is None:
        return ChunkingStrategy()
    strategy = _object(value, param, ("type", "static"))
    kind = strategy.get("type")
    if kind is None:
        raise missing_parameter(f"{param}.type")
    if not isinstance(kind, str):
        raise invalid_type(f"{param}.type", "a string", kind)
    check_one_of(f"{param}.type", kind, ("auto", "static"))
    if kind == "auto":
        if strategy.get("static") is not None:
            raise _unknown(param, "static")
        return ChunkingStrategy()
    if strategy.get("static") is None:
        raise missing_parameter(f"{param}.static")
    static_param = f"{param}.static"
    static = _object(strategy["static"], static_param, ("max_chunk_size_tokens", "chunk_overlap_tokens"))
    for key in ("max_chunk_size_tokens", "chunk_overlap_tokens"):
        if static.get(key) is None:
            raise missing_parameter(f"{static_param}.{key}")
    size = _integer(
        static["max_chunk_size_tokens"], f"{static_param}.max_chunk_size_tokens", MIN_CHUNK_TOKENS, MAX_CHUNK_TOKENS
    )
    overlap = _integer(static["chunk_overlap_tokens"], f"{static_param}.chunk_overlap_tokens", 0)
    if overlap > size // 2:
        raise InvalidRequestError(
            f"Invalid '{static_param}.chunk_overlap_tokens': the overlap must not exceed half of "
            f"max_chunk_size_tokens ({size // 2}).",
            param=f"{static_param}.chunk_overlap_tokens",
            code="invalid_value",
        )
    return ChunkingStrategy(size, overlap)


def check_attributes(value: Any, param: str = "attributes") -> dict[str, AttributeValue] | None:
    """At most 16 keys up to 64 characters; values are strings up to 512 characters, numbers or booleans."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidRequestError(
            f"Invalid '{param}': too many properties. Expected at most {MAX_ATTRIBUTES}, got {len(value)}.",
            param=param,
            code="object_above_max_properties",
        )
    checked: dict[str, AttributeValue] = {}
    for key, item in value.items():
        if len(key) > MAX_ATTRIBUTE_KEY:
            raise InvalidRequestError(
                f"Invalid '{param}': key too long. Expected at most {MAX_ATTRIBUTE_KEY} characters.",
                param=param,
                code="string_above_max_length",
            )
        if isinstance(item, bool):
            checked[key] = item
        elif isinstance(item, int | float):
            # Struct numbers are doubles: whole ones read back as integers.
            checked[key] = int(item) if float(item).is_integer() and abs(item) < 2**53 else float(item)
        elif isinstance(item, str):
            if len(item) > MAX_ATTRIBUTE_STRING:
                raise InvalidRequestError(
                    f"Invalid '{param}.{key}': string too long. Expected at most {MAX_ATTRIBUTE_STRING} characters.",
                    param=f"{param}.{key}",
                    code="string_above_max_length",
                )
            checked[key] = item
        else:
            raise invalid_type(f"{param}.{key}", "a string, a number or a boolean", item)
    return checked


def check_store_expiry(value: Any, param: str = "expires_after") -> ExpiresAfter | None:
    if value is None:
        return None
    policy = _object(value, param, ("anchor", "days"))
    anchor = policy.get("anchor")
    if anchor is None:
        raise missing_parameter(f"{param}.anchor")
    if not isinstance(anchor, str):
        raise invalid_type(f"{param}.anchor", "a string", anchor)
    check_one_of(f"{param}.anchor", anchor, ("last_active_at",))
    if policy.get("days") is None:
        raise missing_parameter(f"{param}.days")
    return ExpiresAfter(_integer(policy["days"], f"{param}.days", 1, 365))


def check_file_ids(value: Sequence[str], param: str, maximum: int, *, required: bool = False) -> list[str]:
    if len(value) > maximum:
        raise InvalidRequestError(
            f"Invalid '{param}': array too long. Expected at most {maximum} items, got {len(value)}.",
            param=param,
            code="array_above_max_length",
        )
    if required and not value:
        raise InvalidRequestError(
            f"Invalid '{param}': empty array. Expected at least 1 item.", param=param, code="empty_array"
        )
    for index, file_id in enumerate(value):
        if not file_id:
            raise InvalidRequestError(
                f"Invalid '{param}[{index}]': empty string.", param=f"{param}[{index}]", code="empty_string"
            )
    return list(value)


def check_status_filter(value: str) -> IndexStatus | None:
    if not value:
        return None
    return IndexStatus(check_one_of("filter", value, STATUS_FILTERS))


def check_queries(value: Any) -> tuple[str, ...]:
    if value is None:
        raise missing_parameter("query")
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        if not value:
            raise InvalidRequestError("Invalid 'query': empty array.", param="query", code="empty_array")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise invalid_type(f"query[{index}]", "a string", item)
        return tuple(value)
    raise invalid_type("query", "a string or an array of strings", value)


def check_search_ranking(value: Any, param: str = "ranking_options") -> float:
    """The `score_threshold` of `{ranker, score_threshold}` (the ranker is accepted, not used)."""
    if value is None:
        return 0.0
    options = _object(value, param, ("ranker", "score_threshold"))
    ranker = options.get("ranker")
    if ranker is not None:
        if not isinstance(ranker, str):
            raise invalid_type(f"{param}.ranker", "a string", ranker)
        check_one_of(f"{param}.ranker", ranker, (*SEARCH_RANKERS, "default_2024_08_21"))
    threshold = options.get("score_threshold")
    if threshold is None:
        return 0.0
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise invalid_type(f"{param}.score_threshold", "a number", threshold)
    if not 0 <= threshold <= 1:
        raise InvalidRequestError(
            f"Invalid '{param}.score_threshold': expected a value between 0 and 1, but got {threshold} instead.",
            param=f"{param}.score_threshold",
            code="decimal_out_of_range",
        )
    return float(threshold)


def check_max_results(value: int | None) -> int:
    return DEFAULT_SEARCH_RESULTS if value is None else _integer(value, "max_num_results", 1, MAX_SEARCH_RESULTS)


# The Responses API's `file_search` tool: OpenAI's defaults, shown when the request leaves them out.
FILE_SEARCH_TOOL_KEYS = ("type", "vector_store_ids", "max_num_results", "ranking_options", "filters")
FILE_SEARCH_TOOL_RESULTS = 20
MAX_TOOL_VECTOR_STORES = 2


def check_file_search_tool(value: Mapping[str, Any], param: str) -> dict[str, Any]:
    """`{"type": "file_search", "vector_store_ids", "max_num_results"?, "ranking_options"?,
    "filters"?}` as stored and echoed, OpenAI's defaults filled in. Whether the stores exist is the
    response's creation to check (it knows the project)."""
    _object(value, param, FILE_SEARCH_TOOL_KEYS)
    ids_param = f"{param}.vector_store_ids"
    ids = value.get("vector_store_ids")
    if ids is None:
        raise missing_parameter(ids_param)
    if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
        raise invalid_type(ids_param, "an array", ids)
    if not 1 <= len(ids) <= MAX_TOOL_VECTOR_STORES:
        raise InvalidRequestError(
            f"Invalid '{ids_param}': expected 1 to {MAX_TOOL_VECTOR_STORES} vector store ids, got {len(ids)}.",
            param=ids_param,
            code="invalid_value",
        )
    for index, store_id in enumerate(ids):
        if not isinstance(store_id, str):
            raise invalid_type(f"{ids_param}[{index}]", "a string", store_id)
    maximum = value.get("max_num_results")
    max_results = (
        FILE_SEARCH_TOOL_RESULTS
        if maximum is None
        else _integer(maximum, f"{param}.max_num_results", 1, MAX_SEARCH_RESULTS)
    )
    ranking_param = f"{param}.ranking_options"
    ranking = _object(value.get("ranking_options") or {}, ranking_param, ("ranker", "score_threshold", "hybrid_search"))
    # The hybrid weights are accepted and not used: fusion here weighs both rankings alike.
    threshold = check_search_ranking({k: v for k, v in ranking.items() if k != "hybrid_search"}, ranking_param)
    if ranking.get("hybrid_search") is not None:
        _object(ranking["hybrid_search"], f"{ranking_param}.hybrid_search", ("embedding_weight", "text_weight"))
    filters = value.get("filters")
    return {
        "type": "file_search",
        "vector_store_ids": list(ids),
        "max_num_results": max_results,
        "ranking_options": {"ranker": ranking.get("ranker") or "auto", "score_threshold": threshold},
        "filters": None if filters is None else check_filter(filters, f"{param}.filters"),
    }
