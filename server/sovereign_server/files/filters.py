"""OpenAI's attribute filters for vector store search: a comparison `{type, key, value}` (`eq`, `ne`,
`gt`, `gte`, `lt`, `lte`, `in`, `nin`) or a compound `{type: "and" | "or", filters: [...]}`, checked
once (`check_filter`) and evaluated against each file's attributes (`matches`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sovereign_server.errors import InvalidRequestError
from sovereign_server.validation import check_one_of, invalid_type, missing_parameter

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")
MAX_DEPTH = 8
MAX_FILTERS = 64


def check_filter(value: Any, param: str = "filters", depth: int = 0) -> dict[str, Any]:
    """The filter, validated; raises InvalidRequestError naming the faulty `param`."""
    if not isinstance(value, Mapping):
        raise invalid_type(param, "an object", value)
    kind = value.get("type")
    if not isinstance(kind, str):
        raise missing_parameter(f"{param}.type") if kind is None else invalid_type(f"{param}.type", "a string", kind)
    check_one_of(f"{param}.type", kind, (*COMPARISONS, *COMPOUNDS))
    if kind in COMPOUNDS:
        _only(value, param, ("type", "filters"))
        if depth >= MAX_DEPTH:
            raise InvalidRequestError(f"Invalid '{param}': filters nest too deeply.", param=param, code="invalid_value")
        filters = value.get("filters")
        if filters is None:
            raise missing_parameter(f"{param}.filters")
        if isinstance(filters, str | bytes) or not isinstance(filters, Sequence):
            raise invalid_type(f"{param}.filters", "an array", filters)
        if len(filters) > MAX_FILTERS:
            raise InvalidRequestError(f"Invalid '{param}.filters': too many filters.", param=f"{param}.filters")
        return {
            "type": kind,
            "filters": [check_filter(item, f"{param}.filters[{i}]", depth + 1) for i, item in enumerate(filters)],
        }
    _only(value, param, ("type", "key", "value"))
    key = value.get("key")
    if not isinstance(key, str):
        raise missing_parameter(f"{param}.key") if key is None else invalid_type(f"{param}.key", "a string", key)
    if "value" not in value or value["value"] is None:
        raise missing_parameter(f"{param}.value")
    target = value["value"]
    if kind in ("in", "nin"):
        if isinstance(target, str | bytes) or not isinstance(target, Sequence):
            raise invalid_type(f"{param}.value", "an array", target)
        for index, item in enumerate(target):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise invalid_type(f"{param}.value[{index}]", "a string or a number", item)
        return {"type": kind, "key": key, "value": list(target)}
    if not isinstance(target, str | int | float | bool):
        raise invalid_type(f"{param}.value", "a string, a number or a boolean", target)
    return {"type": kind, "key": key, "value": target}


def _only(value: Mapping[str, Any], param: str, keys: tuple[str, ...]) -> None:
    for key in value:
        if key not in keys:
            raise InvalidRequestError(
                f"Unknown parameter: '{param}.{key}'.", param=f"{param}.{key}", code="unknown_parameter"
            )


def matches(check: Mapping[str, Any], attributes: Mapping[str, Any] | None) -> bool:
    """Whether attributes pass a filter from `check_filter`. A missing attribute passes only `ne`
    and `nin`; values of different kinds (a string and a number) are never equal or ordered."""
    kind = check["type"]
    if kind == "and":
        return all(matches(item, attributes) for item in check["filters"])
    if kind == "or":
        return any(matches(item, attributes) for item in check["filters"])
    present = attributes is not None and check["key"] in attributes
    if not present:
        return kind in ("ne", "nin")
    assert attributes is not None
    actual = attributes[check["key"]]
    target = check["value"]
    if kind == "eq":
        return _same_kind(actual, target) and actual == target
    if kind == "ne":
        return not (_same_kind(actual, target) and actual == target)
    if kind == "in":
        return any(_same_kind(actual, item) and actual == item for item in target)
    if kind == "nin":
        return not any(_same_kind(actual, item) and actual == item for item in target)
    if not _same_kind(actual, target) or isinstance(actual, bool):
        return False
    if kind == "gt":
        return bool(actual > target)
    if kind == "gte":
        return bool(actual >= target)
    if kind == "lt":
        return bool(actual < target)
    return bool(actual <= target)


def _same_kind(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, int | float) and isinstance(b, int | float):
        return True
    return isinstance(a, str) and isinstance(b, str)
