"""Assistants end to end: the official `openai` SDK through a real Envoy to a real server."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.beta import Assistant

pytestmark = pytest.mark.sdk

PRICE_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_price",
        "description": "Latest price of a ticker",
        "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]},
    },
}


def test_create_returns_a_typed_assistant(openai_client: OpenAI) -> None:
    assistant = openai_client.beta.assistants.create(
        model="builtin",
        name="Aurora TA",
        description="Technical analysis",
        instructions="Answer with numbers.",
        tools=[PRICE_TOOL, {"type": "code_interpreter"}, {"type": "file_search"}],
        metadata={"app": "aurora"},
        temperature=0.2,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert isinstance(assistant, Assistant)
    assert assistant.id.startswith("asst_")
    assert assistant.object == "assistant"
    assert isinstance(assistant.created_at, int)
    assert (assistant.name, assistant.description) == ("Aurora TA", "Technical analysis")
    assert assistant.instructions == "Answer with numbers."
    assert [tool.type for tool in assistant.tools] == ["function", "code_interpreter", "file_search"]
    function_tool = assistant.tools[0]
    assert function_tool.type == "function"
    assert function_tool.function.name == "get_price"
    assert function_tool.function.parameters == PRICE_TOOL["function"]["parameters"]
    assert assistant.metadata == {"app": "aurora"}
    assert (assistant.temperature, assistant.top_p) == (0.2, 0.9)
    assert assistant.response_format is not None
    assert assistant.response_format.type == "json_object"  # type: ignore[union-attr]


def test_json_fields_have_openai_types_and_nulls(openai_client: OpenAI) -> None:
    created = openai_client.beta.assistants.create(model="builtin")
    raw = openai_client.beta.assistants.with_raw_response.retrieve(created.id).http_response.json()
    assert raw == {
        "id": created.id,
        "object": "assistant",
        "created_at": created.created_at,
        "name": None,
        "description": None,
        "model": "builtin",
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "temperature": 1,
        "top_p": 1,
        "response_format": "auto",
    }
    assert type(raw["created_at"]) is int


def test_retrieve_update_delete(openai_client: OpenAI) -> None:
    created = openai_client.beta.assistants.create(model="builtin", name="before", tools=[PRICE_TOOL])
    assert openai_client.beta.assistants.retrieve(created.id) == created
    updated = openai_client.beta.assistants.update(
        created.id, name="after", instructions="New rules.", tools=[], metadata={"v": "2"}
    )
    assert (updated.name, updated.instructions, updated.tools, updated.metadata) == (
        "after",
        "New rules.",
        [],
        {"v": "2"},
    )
    assert updated.model == "builtin"
    deleted = openai_client.beta.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "assistant.deleted", True)
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.beta.assistants.retrieve(created.id)
    assert caught.value.status_code == 404
    assert caught.value.body == {
        "message": f"No assistant found with id '{created.id}'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_list_pages_with_limit_order_after_before_and_auto_pagination(openai_client: OpenAI) -> None:
    ids = [openai_client.beta.assistants.create(model="builtin", metadata={"batch": "paging"}).id for _ in range(7)]
    newest_first = [a.id for a in openai_client.beta.assistants.list(limit=100) if a.id in ids]
    assert newest_first == ids[::-1]

    page = openai_client.beta.assistants.list(limit=3, order="asc", after=ids[0])
    assert [a.id for a in page.data] == ids[1:4]
    assert page.has_more is True
    assert page.first_id == ids[1]  # type: ignore[attr-defined]
    assert page.last_id == ids[3]  # type: ignore[attr-defined]

    before = openai_client.beta.assistants.list(limit=2, order="asc", before=ids[4])
    assert [a.id for a in before.data] == ids[2:4]

    # Auto-pagination follows `after` across pages of 2 until `has_more` is false.
    walked = [a.id for a in openai_client.beta.assistants.list(limit=2, order="asc", after=ids[0])]
    assert walked[:6] == ids[1:]
    assert len(walked) == len(set(walked))


@pytest.mark.parametrize(
    ("arguments", "param", "code"),
    [
        ({"name": "n" * 257}, "name", "string_above_max_length"),
        ({"description": "d" * 513}, "description", "string_above_max_length"),
        ({"instructions": "i" * 256_001}, "instructions", "string_above_max_length"),
        ({"tools": [{"type": "code_interpreter"}] * 129}, "tools", "array_above_max_length"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"temperature": 3}, "temperature", "decimal_out_of_range"),
        ({"top_p": -0.5}, "top_p", "decimal_out_of_range"),
        ({"extra_body": {"name": 12}}, "name", "invalid_type"),
        ({"extra_body": {"tools": "all"}}, "tools", "invalid_type"),
    ],
)
def test_invalid_assistants_raise_bad_request_naming_the_param(
    openai_client: OpenAI, arguments: dict[str, Any], param: str, code: str
) -> None:
    before = {a.id for a in openai_client.beta.assistants.list(limit=100)}
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.assistants.create(model="builtin", **arguments)
    assert caught.value.status_code == 400
    assert (caught.value.param, caught.value.code, caught.value.type) == (param, code, "invalid_request_error")
    assert {a.id for a in openai_client.beta.assistants.list(limit=100)} == before


@pytest.mark.parametrize(
    ("query", "param"),
    [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"order": "up"}, "order"), ({"after": "asst_x"}, "after")],
)
def test_invalid_list_parameters_raise_bad_request(openai_client: OpenAI, query: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.assistants.list(**query)
    assert caught.value.param == param


def test_unknown_route_is_not_found(openai_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.get("/no/such/route", cast_to=object)
    assert caught.value.type == "invalid_request_error"
