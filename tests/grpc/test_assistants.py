"""Assistants over gRPC, through the typed asyncio client, against a real server."""

from __future__ import annotations

import grpc
import pytest

from sovereign_client import AsyncSovereignClient, BadRequestError, NotFoundError

pytestmark = pytest.mark.grpc

FUNCTION_TOOL = {
    "type": "function",
    "function": {"name": "get_price", "description": "Price of a ticker", "parameters": {"type": "object"}},
}


async def test_create_returns_the_assistant_with_openai_fields(client: AsyncSovereignClient) -> None:
    assistant = await client.assistants.create(
        model="local-model",
        name="Analyst",
        instructions="Be brief.",
        tools=[FUNCTION_TOOL, {"type": "code_interpreter"}],
        metadata={"team": "ta"},
        temperature=0.5,
    )
    assert assistant.id.startswith("asst_")
    assert assistant.object == "assistant"
    assert assistant.created_at > 1_700_000_000
    assert assistant.name.string_value == "Analyst"
    assert assistant.description.WhichOneof("kind") == "null_value"
    assert assistant.model == "local-model"
    assert [tool.type for tool in assistant.tools] == ["function", "code_interpreter"]
    assert assistant.tools[0].function.name == "get_price"
    assert dict(assistant.metadata) == {"team": "ta"}
    assert assistant.temperature == 0.5
    assert assistant.response_format.string_value == "auto"


async def test_retrieve_returns_what_create_stored(client: AsyncSovereignClient) -> None:
    created = await client.assistants.create(model="m", name="stored")
    assert await client.assistants.retrieve(created.id) == created


async def test_update_changes_only_the_fields_given(client: AsyncSovereignClient) -> None:
    created = await client.assistants.create(model="m", name="before", instructions="keep", tools=[FUNCTION_TOOL])
    updated = await client.assistants.update(created.id, name="after", tools=[], metadata={"v": "2"})
    assert updated.name.string_value == "after"
    assert updated.instructions.string_value == "keep"
    assert list(updated.tools) == []
    assert dict(updated.metadata) == {"v": "2"}
    assert await client.assistants.retrieve(created.id) == updated


async def test_delete_removes_the_assistant(client: AsyncSovereignClient) -> None:
    created = await client.assistants.create(model="m")
    deleted = await client.assistants.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "assistant.deleted", True)
    with pytest.raises(NotFoundError):
        await client.assistants.retrieve(created.id)


async def test_unknown_id_is_not_found_with_openai_message(client: AsyncSovereignClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.assistants.retrieve("asst_missing")
    assert caught.value.status == grpc.StatusCode.NOT_FOUND
    assert caught.value.message == "No assistant found with id 'asst_missing'."
    assert caught.value.type == "invalid_request_error"


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"name": "n" * 257}, "name", "string_above_max_length"),
        ({"description": "d" * 513}, "description", "string_above_max_length"),
        ({"instructions": "i" * 256_001}, "instructions", "string_above_max_length"),
        ({"tools": [{"type": "code_interpreter"}] * 129}, "tools", "array_above_max_length"),
        ({"tools": [{"type": "browser"}]}, "tools[0].type", "invalid_value"),
        ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "object_above_max_properties"),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length"),
        ({"metadata": {"k": "v" * 513}}, "metadata.k", "string_above_max_length"),
        ({"temperature": 2.5}, "temperature", "decimal_out_of_range"),
        ({"model": ""}, "model", "missing_required_parameter"),
        ({"metadata": {"k": {}}}, "metadata.k", "invalid_type"),
        (
            {"tool_resources": {"file_search": {"vector_store_ids": [{}]}}},
            "tool_resources.file_search.vector_store_ids[0]",
            "invalid_type",
        ),
        ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
        (
            {"tools": [{"type": "file_search", "file_search": {"max_results": 3}}]},
            "tools[0].file_search.max_results",
            "unknown_parameter",
        ),
    ],
)
async def test_invalid_fields_are_rejected_and_nothing_is_stored(
    client: AsyncSovereignClient, fields: dict[str, object], param: str, code: str
) -> None:
    before = [assistant.id async for assistant in client.assistants.iterate(limit=100)]
    with pytest.raises(BadRequestError) as caught:
        await client.assistants.create(**{"model": "m", **fields})
    assert caught.value.status == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.param, caught.value.code) == (param, code)
    assert [assistant.id async for assistant in client.assistants.iterate(limit=100)] == before


async def test_invalid_update_leaves_the_assistant_unchanged(client: AsyncSovereignClient) -> None:
    created = await client.assistants.create(model="m", name="same")
    with pytest.raises(BadRequestError):
        await client.assistants.update(created.id, name="x" * 300)
    assert await client.assistants.retrieve(created.id) == created


@pytest.mark.parametrize(
    ("page", "param"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"order": "sideways"}, "order"),
        ({"after": "asst_nope"}, "after"),
        ({"before": "asst_nope"}, "before"),
    ],
)
async def test_bad_list_parameters_are_rejected(
    client: AsyncSovereignClient, page: dict[str, object], param: str
) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client.assistants.list(**page)
    assert caught.value.param == param
