"""Input checks and conversions of the server, on plain values: OpenAI's limits, each failure
naming its `param` and `code`, and the canonical forms that get stored."""

from __future__ import annotations

from typing import Any

import pytest

from sovereign_assistant.v1 import assistant_service_pb2
from sovereign_server import convert, validation
from sovereign_server.errors import InvalidRequestError
from tests.images import png_url

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
            {"type": "code_interpreter"},
            # Struct numbers arrive as floats.
            {"type": "file_search", "file_search": {"max_num_results": 5.0, "ranking_options": None}},
        ]
    )
    assert tools == [
        {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}},
        {"type": "code_interpreter"},
        {"type": "file_search", "file_search": {"max_num_results": 5}},
    ]
    assert type(tools[2]["file_search"]["max_num_results"]) is int
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
    assert validation.check_tool_choice({"type": "function", "function": {"name": "f"}}) == {
        "type": "function",
        "function": {"name": "f"},
    }
    assert validation.check_tool_choice({"type": "file_search"}) == {"type": "file_search"}
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


# ---------------------------------------------------------------- shapes OpenAI documents


def rejected(call: Any, value: Any) -> tuple[str | None, str | None]:
    """The `(param, code)` of the error `call(value)` raises."""
    error = rejects(call, value)
    return error.param, error.code


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ({"k": {}}, "metadata.k", "invalid_type"),
        ({"k": 1.0}, "metadata.k", "invalid_type"),
        ({"k": None}, "metadata.k", "invalid_type"),
        ({"k": ["v"]}, "metadata.k", "invalid_type"),
        (["k"], "metadata", "invalid_type"),
    ],
)
def test_metadata_values_must_be_strings(value: Any, param: str, code: str) -> None:
    assert rejected(validation.check_metadata, value) == (param, code)


def test_metadata_from_a_struct_names_the_wrong_value_type() -> None:
    # What a request's `Struct` field holds; nested values stay protobuf containers.
    struct = convert.to_struct({"ok": "v", "nested": {"a": "b"}})
    assert rejects(validation.check_metadata, dict(struct)).message == (
        "Invalid type for 'metadata.nested': expected a string, but got object instead."
    )
    listed = convert.to_struct({"list": ["a"]})
    assert "but got array instead" in rejects(validation.check_metadata, dict(listed)).message
    assert validation.check_metadata(dict(convert.to_struct({"k": "v"}))) == {"k": "v"}


@pytest.mark.parametrize(
    ("tools", "param", "code"),
    [
        ([{"type": "code_interpreter", "ignored": True}], "tools[0].ignored", "unknown_parameter"),
        ([{"type": "code_interpreter", "file_search": {}}], "tools[0].file_search", "unknown_parameter"),
        ([{}], "tools[0].type", "missing_required_parameter"),
        ([{"type": 3}], "tools[0].type", "invalid_type"),
        ([{"type": "browser"}], "tools[0].type", "invalid_value"),
        (["code_interpreter"], "tools[0]", "invalid_type"),
        ({"type": "function"}, "tools", "invalid_type"),
        ([{"type": "function"}], "tools[0].function", "missing_required_parameter"),
        ([{"type": "function", "function": {}}], "tools[0].function.name", "missing_required_parameter"),
        ([{"type": "function", "function": {"name": "f\n"}}], "tools[0].function.name", "invalid_value"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": "{}"}}],
            "tools[0].function.parameters",
            "invalid_type",
        ),
        (
            [{"type": "function", "function": {"name": "f", "strict": "yes"}}],
            "tools[0].function.strict",
            "invalid_type",
        ),
        (
            [{"type": "function", "function": {"name": "f", "description": 1}}],
            "tools[0].function.description",
            "invalid_type",
        ),
        (
            [{"type": "function", "function": {"name": "f", "arguments": {}}}],
            "tools[0].function.arguments",
            "unknown_parameter",
        ),
        (
            [{"type": "file_search", "file_search": {"max_results": 3}}],
            "tools[0].file_search.max_results",
            "unknown_parameter",
        ),
        (
            [{"type": "file_search", "file_search": {"max_num_results": "3"}}],
            "tools[0].file_search.max_num_results",
            "invalid_type",
        ),
        (
            [{"type": "file_search", "file_search": {"max_num_results": 2.5}}],
            "tools[0].file_search.max_num_results",
            "invalid_type",
        ),
        (
            [{"type": "file_search", "file_search": {"max_num_results": 51}}],
            "tools[0].file_search.max_num_results",
            "integer_above_max_value",
        ),
        (
            [{"type": "file_search", "file_search": {"ranking_options": {}}}],
            "tools[0].file_search.ranking_options.score_threshold",
            "missing_required_parameter",
        ),
        (
            [{"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 2}}}],
            "tools[0].file_search.ranking_options.score_threshold",
            "decimal_out_of_range",
        ),
        (
            [{"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 0, "ranker": "best"}}}],
            "tools[0].file_search.ranking_options.ranker",
            "invalid_value",
        ),
    ],
)
def test_tools_are_checked_to_openais_shapes(tools: Any, param: str, code: str) -> None:
    assert rejected(validation.check_tools, tools) == (param, code)


def test_tool_options_are_kept_in_canonical_form() -> None:
    options = {"max_num_results": 20, "ranking_options": {"ranker": "auto", "score_threshold": 0.5}}
    assert validation.check_tools([{"type": "file_search", "file_search": options}]) == [
        {"type": "file_search", "file_search": options}
    ]
    function = {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": True}
    assert validation.check_tools([{"type": "function", "function": function}])[0]["function"] == function


def test_a_run_takes_at_most_twenty_tools() -> None:
    tools = [{"type": "code_interpreter"}] * 21
    assert len(validation.check_tools(tools)) == 21
    assert rejected(validation.check_run_tools, tools) == ("tools", "array_above_max_length")


@pytest.mark.parametrize(
    ("resources", "param", "code"),
    [
        ({"file_search": {"vector_store_ids": [{}]}}, "tool_resources.file_search.vector_store_ids[0]", "invalid_type"),
        (
            {"file_search": {"vector_store_ids": ["a", "b"]}},
            "tool_resources.file_search.vector_store_ids",
            "array_above_max_length",
        ),
        ({"file_search": {"vector_store_ids": "vs_1"}}, "tool_resources.file_search.vector_store_ids", "invalid_type"),
        (
            {"file_search": {"vector_stores": [{"file_ids": []}, {"file_ids": []}]}},
            "tool_resources.file_search.vector_stores",
            "array_above_max_length",
        ),
        (
            {"file_search": {"vector_store_ids": ["vs"], "vector_stores": [{"file_ids": []}]}},
            "tool_resources.file_search.vector_stores",
            "array_above_max_length",
        ),
        (
            {"file_search": {"vector_stores": [{"file_ids": [1]}]}},
            "tool_resources.file_search.vector_stores[0].file_ids[0]",
            "invalid_type",
        ),
        (
            {"file_search": {"vector_stores": [{"files": []}]}},
            "tool_resources.file_search.vector_stores[0].files",
            "unknown_parameter",
        ),
        ({"file_search": {"ids": []}}, "tool_resources.file_search.ids", "unknown_parameter"),
        (
            {"code_interpreter": {"file_ids": ["f"] * 21}},
            "tool_resources.code_interpreter.file_ids",
            "array_above_max_length",
        ),
        ({"code_interpreter": {"file_ids": [1]}}, "tool_resources.code_interpreter.file_ids[0]", "invalid_type"),
        ({"code_interpreter": []}, "tool_resources.code_interpreter", "invalid_type"),
        ({"function": {}}, "tool_resources.function", "unknown_parameter"),
        ("none", "tool_resources", "invalid_type"),
    ],
)
def test_tool_resources_are_checked(resources: Any, param: str, code: str) -> None:
    assert rejected(validation.check_tool_resources, resources) == (param, code)


def test_tool_resources_are_stored_with_their_lists() -> None:
    assert validation.check_tool_resources(None) == {}
    assert validation.check_tool_resources({"code_interpreter": {}, "file_search": {"vector_store_ids": ["vs"]}}) == {
        "code_interpreter": {"file_ids": []},
        "file_search": {"vector_store_ids": ["vs"]},
    }
    assert validation.check_tool_resources({"code_interpreter": None}) == {}


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ("json", "response_format", "invalid_value"),
        (3.0, "response_format", "invalid_type"),
        ({}, "response_format.type", "missing_required_parameter"),
        ({"type": "xml"}, "response_format.type", "invalid_value"),
        ({"type": "json_object", "schema": {}}, "response_format.schema", "unknown_parameter"),
        ({"type": "json_schema"}, "response_format.json_schema", "missing_required_parameter"),
        ({"type": "json_schema", "json_schema": {}}, "response_format.json_schema.name", "missing_required_parameter"),
        ({"type": "json_schema", "json_schema": {"name": "a b"}}, "response_format.json_schema.name", "invalid_value"),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "schema": []}},
            "response_format.json_schema.schema",
            "invalid_type",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "strict": 1.0}},
            "response_format.json_schema.strict",
            "invalid_type",
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "a", "format": "x"}},
            "response_format.json_schema.format",
            "unknown_parameter",
        ),
    ],
)
def test_response_format_is_checked(value: Any, param: str, code: str) -> None:
    assert rejected(validation.check_response_format, value) == (param, code)


def test_response_formats_that_are_kept() -> None:
    assert validation.check_response_format(None) is None
    assert validation.check_response_format("auto") == "auto"
    assert validation.check_response_format({"type": "json_object"}) == {"type": "json_object"}
    schema = {"name": "answer", "schema": {"type": "object"}, "strict": True, "description": None}
    assert validation.check_response_format({"type": "json_schema", "json_schema": schema}) == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        (1.0, "tool_choice", "invalid_type"),
        ({"type": "browser"}, "tool_choice.type", "invalid_value"),
        ({"type": "function"}, "tool_choice.function", "missing_required_parameter"),
        ({"type": "function", "function": {}}, "tool_choice.function.name", "missing_required_parameter"),
        ({"type": "function", "function": {"name": "f", "x": 1}}, "tool_choice.function.x", "unknown_parameter"),
        ({"type": "file_search", "function": {"name": "f"}}, "tool_choice.function", "unknown_parameter"),
    ],
)
def test_tool_choice_is_checked(value: Any, param: str, code: str) -> None:
    assert rejected(validation.check_tool_choice, value) == (param, code)


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ("auto", "truncation_strategy", "invalid_type"),
        ({}, "truncation_strategy.type", "missing_required_parameter"),
        ({"type": "first_messages"}, "truncation_strategy.type", "invalid_value"),
        ({"type": "last_messages"}, "truncation_strategy.last_messages", "missing_required_parameter"),
        ({"type": "last_messages", "last_messages": 1.5}, "truncation_strategy.last_messages", "invalid_type"),
        ({"type": "auto", "last_messages": "3"}, "truncation_strategy.last_messages", "invalid_type"),
        ({"type": "auto", "keep": 3}, "truncation_strategy.keep", "unknown_parameter"),
    ],
)
def test_truncation_strategy_is_checked(value: Any, param: str, code: str) -> None:
    assert rejected(validation.check_truncation_strategy, value) == (param, code)


@pytest.mark.parametrize(
    ("content", "param", "code"),
    [
        ({"type": "text", "text": "a"}, "content", "invalid_type"),
        ([{"text": "a"}], "content[0].type", "missing_required_parameter"),
        ([{"type": "refusal", "refusal": "no"}], "content[0].type", "invalid_value"),
        ([{"type": "text"}], "content[0].text", "missing_required_parameter"),
        ([{"type": "text", "text": {"value": "a"}}], "content[0].text", "invalid_type"),
        ([{"type": "text", "text": "a", "annotations": []}], "content[0].annotations", "unknown_parameter"),
        ([{"type": "image_file"}], "content[0].image_file", "missing_required_parameter"),
        (
            [{"type": "image_file", "image_file": {"file_id": "f", "detail": 1}}],
            "content[0].image_file.detail",
            "invalid_type",
        ),
        (
            [{"type": "image_file", "image_file": {"file_id": "f", "detail": "max"}}],
            "content[0].image_file.detail",
            "invalid_value",
        ),
        (
            [{"type": "image_file", "image_file": {"file_id": "f", "url": "u"}}],
            "content[0].image_file.url",
            "unknown_parameter",
        ),
        ([{"type": "image_url", "image_url": {"url": "not a url"}}], "content[0].image_url.url", "invalid_value"),
        ([{"type": "image_url", "image_url": {"url": 7}}], "content[0].image_url.url", "invalid_type"),
    ],
)
def test_content_parts_are_checked(content: Any, param: str, code: str) -> None:
    assert rejected(validation.check_message_content, content) == (param, code)


def test_image_urls_may_be_web_or_data_urls() -> None:
    for url in ("https://example.com/a.png", "http://127.0.0.1/b.jpg", png_url()):
        part = {"type": "image_url", "image_url": {"url": url}}
        assert validation.check_message_content([part]) == [part]
    for url in ("http://[x/a.png", "https:///a.png", "http://h:port/a.png", "ftp://h/a.png", "data:,text"):
        part = {"type": "image_url", "image_url": {"url": url}}
        assert rejected(validation.check_message_content, [part]) == ("content[0].image_url.url", "invalid_value")


@pytest.mark.parametrize(
    ("attachments", "param", "code"),
    [
        ([{"tools": []}], "attachments[0].file_id", "missing_required_parameter"),
        ([{"file_id": "f", "tools": [{"type": "function"}]}], "attachments[0].tools[0].type", "invalid_value"),
        (
            [{"file_id": "f", "tools": [{"type": "file_search", "file_search": {}}]}],
            "attachments[0].tools[0].file_search",
            "unknown_parameter",
        ),
        ([{"file_id": "f", "tools": "file_search"}], "attachments[0].tools", "invalid_type"),
        ([{"file_id": "f", "purpose": "x"}], "attachments[0].purpose", "unknown_parameter"),
    ],
)
def test_attachments_are_checked(attachments: Any, param: str, code: str) -> None:
    assert rejected(validation.check_attachments, attachments) == (param, code)


def test_attachments_are_stored_with_their_tools() -> None:
    assert validation.check_attachments([{"file_id": "f", "tools": [{"type": "file_search"}]}]) == [
        {"file_id": "f", "tools": [{"type": "file_search"}]}
    ]
    assert validation.check_attachments([{"file_id": "f"}]) == [{"file_id": "f", "tools": []}]


def test_a_model_cannot_be_replaced_by_an_empty_name() -> None:
    request = assistant_service_pb2.ModifyAssistantRequest(assistant_id="asst_1", model="")
    assert rejected(convert.assistant_changes, request) == ("model", "empty_string")


def test_reasoning_effort_is_one_of_openais_values() -> None:
    assert validation.check_reasoning_effort(None) is None
    assert validation.check_reasoning_effort("low") == "low"
    assert rejected(validation.check_reasoning_effort, "extreme") == ("reasoning_effort", "invalid_value")
