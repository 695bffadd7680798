"""Input checks and conversions of the server, on plain values: OpenAI's limits, each failure
naming its `param` and `code`, and the canonical forms that get stored."""

from __future__ import annotations

from typing import Any

import pytest

from sovereign_assistant.v1 import assistant_service_pb2
from sovereign_server import convert, validation
from sovereign_server.errors import InvalidRequestError

pytestmark = pytest.mark.unit


def rejects(call: Any, *args: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        call(*args)
    return caught.value


def test_list_parameters_default_to_twenty_newest_first() -> None:
    page = validation.page_request(None, "", "", "")
    assert (page.limit, page.order, page.after, page.before) == (20, "desc", None, None)


@pytest.mark.parametrize(
    ("limit", "order", "code", "param"),
    [
        (0, "asc", "integer_below_min_value", "limit"),
        (101, "asc", "integer_above_max_value", "limit"),
        (5, "up", "invalid_value", "order"),
    ],
)
def test_bad_list_parameters_name_themselves(limit: int, order: str, code: str, param: str) -> None:
    error = rejects(validation.page_request, limit, order, "", "")
    assert (error.param, error.code) == (param, code)


def test_metadata_limits() -> None:
    assert validation.check_metadata({"k" * 64: "v" * 512}) == {"k" * 64: "v" * 512}
    assert rejects(validation.check_metadata, {f"k{i}": "v" for i in range(17)}).code == "object_above_max_properties"
    assert rejects(validation.check_metadata, {"k": 1}).param == "metadata.k"
    assert rejects(validation.check_metadata, {"k": "v" * 513}).param == "metadata.k"


def test_tools_are_stored_in_a_canonical_form() -> None:
    tools = validation.check_tools(
        [
            {
                "type": "function",
                "function": {"name": "get_price", "description": None, "parameters": {"type": "object"}},
            },
            {"type": "code_interpreter", "ignored": True},
            {"type": "file_search", "file_search": {"max_num_results": 5}},
        ]
    )
    assert tools == [
        {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}},
        {"type": "code_interpreter"},
        {"type": "file_search", "file_search": {"max_num_results": 5}},
    ]
    assert rejects(validation.check_tools, [{"type": "function", "function": {"name": "bad name"}}]).param == (
        "tools[0].function.name"
    )
    assert rejects(validation.check_tools, [{"type": ""}]).param == "tools[0].type"


def test_message_content_becomes_content_parts() -> None:
    assert validation.check_message_content("hi") == [{"type": "text", "text": {"value": "hi", "annotations": []}}]
    parts = validation.check_message_content(
        [{"type": "text", "text": "a"}, {"type": "image_file", "image_file": {"file_id": "f", "detail": "low"}}]
    )
    assert parts[1] == {"type": "image_file", "image_file": {"file_id": "f", "detail": "low"}}
    assert rejects(validation.check_message_content, [{"type": "image_url", "image_url": {}}]).param == (
        "content[0].image_url.url"
    )
    assert rejects(validation.check_message_content, None).code == "missing_required_parameter"


def test_run_options() -> None:
    assert validation.check_tool_choice(None) == "auto"
    assert validation.check_tool_choice({"type": "function", "function": {"name": "f", "x": 1}}) == {
        "type": "function",
        "function": {"name": "f"},
    }
    assert rejects(validation.check_tool_choice, "always").param == "tool_choice"
    assert validation.check_truncation_strategy({"type": "last_messages", "last_messages": 3}) == {
        "type": "last_messages",
        "last_messages": 3,
    }
    assert rejects(validation.check_truncation_strategy, {"type": "last_messages", "last_messages": 0}).param == (
        "truncation_strategy.last_messages"
    )
    assert rejects(validation.check_token_limit, "max_prompt_tokens", 255).code == "integer_below_min_value"


def test_tool_outputs_must_answer_every_call_once() -> None:
    assert validation.check_tool_outputs([("a", "1"), ("b", "2")], ["a", "b"]) == {"a": "1", "b": "2"}
    assert rejects(validation.check_tool_outputs, [("a", "1")], ["a", "b"]).param == "tool_outputs"
    assert (
        rejects(validation.check_tool_outputs, [("a", "1"), ("a", "2")], ["a"]).param == "tool_outputs[1].tool_call_id"
    )
    assert rejects(validation.check_tool_outputs, [("c", "1")], ["a"]).param == "tool_outputs[0].tool_call_id"


def test_a_modify_request_changes_only_the_fields_it_carries() -> None:
    request = assistant_service_pb2.ModifyAssistantRequest(assistant_id="asst_1", name="n")
    request.metadata.update({"k": "v"})
    request.tools.SetInParent()
    assert convert.assistant_changes(request) == {"name": "n", "metadata": {"k": "v"}, "tools": []}


def test_json_numbers_print_as_envoy_prints_them() -> None:
    # protobuf's Python printer gives Value numbers as floats; the gateway's prints integers plainly.
    value = convert.to_value({"created_at": 1700000000, "temperature": 0.5, "top_p": 1.0, "ok": True})
    assert convert.openai_json(value) == {"created_at": 1700000000, "temperature": 0.5, "top_p": 1, "ok": True}
    assert type(convert.openai_json(value)["created_at"]) is int
