"""Malformed input through the official `openai` SDK: a `BadRequestError` naming the parameter,
for the shapes OpenAI documents (the SDK's types allow some of these, its users' dicts the rest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.beta import Assistant
from openai.types.shared import ResponseFormatJSONSchema

pytestmark = pytest.mark.sdk


@pytest.fixture(scope="module")
def assistant(openai_client: OpenAI) -> Assistant:
    return openai_client.beta.assistants.create(model="builtin")


def bad_request(call: Callable[[], object]) -> tuple[str | None, str | None]:
    """The `(param, code)` of the 400 that `call` raises."""
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    assert caught.value.type == "invalid_request_error"
    return caught.value.param, caught.value.code


ASSISTANT_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"metadata": {"k": {}}}, "metadata.k", "invalid_type"),
    ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    (
        {"tool_resources": {"file_search": {"vector_store_ids": [{}]}}},
        "tool_resources.file_search.vector_store_ids[0]",
        "invalid_type",
    ),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
    (
        {"tools": [{"type": "file_search", "file_search": {"max_num_results": "5"}}]},
        "tools[0].file_search.max_num_results",
        "invalid_type",
    ),
    (
        {"tools": [{"type": "file_search", "file_search": {"max_results": 5}}]},
        "tools[0].file_search.max_results",
        "unknown_parameter",
    ),
    ({"reasoning_effort": "extreme"}, "reasoning_effort", "invalid_value"),
]


@pytest.mark.parametrize(("fields", "param", "code"), ASSISTANT_FIELDS)
def test_assistant_fields_are_checked(openai_client: OpenAI, fields: dict[str, Any], param: str, code: str) -> None:
    before = [item.id for item in openai_client.beta.assistants.list(limit=100)]
    assert bad_request(lambda: openai_client.beta.assistants.create(model="builtin", **fields)) == (param, code)
    assert [item.id for item in openai_client.beta.assistants.list(limit=100)] == before


def test_a_json_schema_response_format_is_kept(openai_client: OpenAI) -> None:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    created = openai_client.beta.assistants.create(model="builtin", response_format=response_format)
    assert isinstance(created.response_format, ResponseFormatJSONSchema)
    assert created.response_format.model_dump(exclude_none=True, by_alias=True) == response_format


def test_run_options_are_checked(openai_client: OpenAI, assistant: Assistant) -> None:
    thread = openai_client.beta.threads.create()
    runs = openai_client.beta.threads.runs
    metadata: Any = {"k": {}}
    assert bad_request(lambda: runs.create(thread.id, assistant_id=assistant.id, metadata=metadata)) == (
        "metadata.k",
        "invalid_type",
    )
    truncation: Any = {"type": "last_messages"}
    assert bad_request(lambda: runs.create(thread.id, assistant_id=assistant.id, truncation_strategy=truncation)) == (
        "truncation_strategy.last_messages",
        "missing_required_parameter",
    )
    choice: Any = {"type": "function"}
    assert bad_request(lambda: runs.create(thread.id, assistant_id=assistant.id, tool_choice=choice)) == (
        "tool_choice.function",
        "missing_required_parameter",
    )
    assert list(runs.list(thread.id)) == []


def test_create_and_run_checks_the_thread_it_creates(openai_client: OpenAI, assistant: Assistant) -> None:
    thread: Any = {"messages": [{"role": "user", "content": "hi", "metadata": {"k": []}}]}
    assert bad_request(lambda: openai_client.beta.threads.create_and_run(assistant_id=assistant.id, thread=thread)) == (
        "thread.messages[0].metadata.k",
        "invalid_type",
    )


def test_message_content_parts_are_checked(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    content: Any = [{"type": "image_url", "image_url": {"url": "not a url"}}]
    assert bad_request(lambda: openai_client.beta.threads.messages.create(thread.id, role="user", content=content)) == (
        "content[0].image_url.url",
        "invalid_value",
    )
    assert list(openai_client.beta.threads.messages.list(thread.id)) == []
