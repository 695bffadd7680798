"""Threads and messages end to end: the official `openai` SDK through a real Envoy to a real server."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.beta import Thread
from openai.types.beta.threads import Message

pytestmark = pytest.mark.sdk


def test_create_thread_with_initial_messages(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create(
        messages=[
            {"role": "user", "content": "Is AAPL overbought?", "metadata": {"source": "chat"}},
            {"role": "assistant", "content": [{"type": "text", "text": "Checking RSI."}]},
        ],
        metadata={"user": "u-1"},
    )
    assert isinstance(thread, Thread)
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert isinstance(thread.created_at, int)
    assert thread.metadata == {"user": "u-1"}
    messages = list(openai_client.beta.threads.messages.list(thread.id, order="asc"))
    assert [(m.role, m.content[0].text.value) for m in messages] == [  # type: ignore[union-attr]
        ("user", "Is AAPL overbought?"),
        ("assistant", "Checking RSI."),
    ]
    assert messages[0].metadata == {"source": "chat"}


def test_thread_retrieve_update_delete(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    assert openai_client.beta.threads.retrieve(thread.id) == thread
    updated = openai_client.beta.threads.update(thread.id, metadata={"stage": "review"})
    assert updated.metadata == {"stage": "review"}
    raw = openai_client.beta.threads.with_raw_response.retrieve(thread.id).http_response.json()
    assert raw == {
        "id": thread.id,
        "object": "thread",
        "created_at": thread.created_at,
        "tool_resources": {},
        "metadata": {"stage": "review"},
    }
    deleted = openai_client.beta.threads.delete(thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (thread.id, "thread.deleted", True)
    with pytest.raises(openai.NotFoundError):
        openai_client.beta.threads.retrieve(thread.id)


def test_message_with_string_content(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    message = openai_client.beta.threads.messages.create(thread.id, role="user", content="Plot MACD")
    assert isinstance(message, Message)
    assert message.id.startswith("msg_")
    assert (message.object, message.thread_id, message.role, message.status) == (
        "thread.message",
        thread.id,
        "user",
        "completed",
    )
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "Plot MACD"
    assert message.content[0].text.annotations == []
    raw = openai_client.beta.threads.messages.with_raw_response.retrieve(
        message.id, thread_id=thread.id
    ).http_response.json()
    assert set(raw) == {
        "id",
        "object",
        "created_at",
        "thread_id",
        "status",
        "incomplete_details",
        "completed_at",
        "incomplete_at",
        "role",
        "content",
        "assistant_id",
        "run_id",
        "attachments",
        "metadata",
    }
    assert (raw["assistant_id"], raw["run_id"], raw["incomplete_details"], raw["incomplete_at"]) == (None,) * 4
    assert type(raw["created_at"]) is int
    assert raw["attachments"] == []


def test_message_with_content_parts(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    message = openai_client.beta.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Compare these charts"},
            {"type": "image_url", "image_url": {"url": "https://charts.example/a.png", "detail": "high"}},
        ],
        attachments=[{"file_id": "file-csv", "tools": [{"type": "code_interpreter"}]}],
    )
    assert [part.type for part in message.content] == ["text", "image_url"]
    assert message.content[1].image_url.url == "https://charts.example/a.png"  # type: ignore[union-attr]
    assert message.content[1].image_url.detail == "high"  # type: ignore[union-attr]
    assert message.attachments is not None
    assert message.attachments[0].file_id == "file-csv"


def test_message_retrieve_update_list_delete(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create()
    ids = [openai_client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(5)]
    assert [m.id for m in openai_client.beta.threads.messages.list(thread.id)] == ids[::-1]
    page = openai_client.beta.threads.messages.list(thread.id, order="asc", limit=2, after=ids[1])
    assert [m.id for m in page.data] == ids[2:4]
    assert page.has_more
    before = openai_client.beta.threads.messages.list(thread.id, order="desc", limit=2, before=ids[1])
    assert [m.id for m in before.data] == ids[3:1:-1]
    assert [m.id for m in openai_client.beta.threads.messages.list(thread.id, order="asc", limit=2)] == ids

    updated = openai_client.beta.threads.messages.update(ids[0], thread_id=thread.id, metadata={"pinned": "yes"})
    assert updated.metadata == {"pinned": "yes"}
    assert openai_client.beta.threads.messages.retrieve(ids[0], thread_id=thread.id).metadata == {"pinned": "yes"}

    deleted = openai_client.beta.threads.messages.delete(ids[0], thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (ids[0], "thread.message.deleted", True)
    assert [m.id for m in openai_client.beta.threads.messages.list(thread.id, order="asc")] == ids[1:]


def test_list_filtered_by_run_id_returns_only_that_runs_messages(openai_client: OpenAI) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    assert openai_client.beta.threads.messages.list(thread.id, run_id="run_none").data == []
    assert len(openai_client.beta.threads.messages.list(thread.id).data) == 1


@pytest.mark.parametrize(
    ("arguments", "param", "code"),
    [
        ({"role": "system", "content": "x"}, "role", "invalid_value"),
        ({"role": "user", "content": []}, "content", "empty_array"),
        ({"role": "user", "content": [{"type": "video"}]}, "content[0].type", "invalid_value"),
        ({"role": "user", "content": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", None),
        ({"role": "user", "content": "x", "extra_body": {"metadata": {"k": 1}}}, "metadata.k", "invalid_type"),
    ],
)
def test_invalid_messages_raise_bad_request_and_are_not_stored(
    openai_client: OpenAI, arguments: dict[str, Any], param: str, code: str | None
) -> None:
    thread = openai_client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.messages.create(thread.id, **arguments)
    assert caught.value.param == param
    if code is not None:
        assert caught.value.code == code
    assert openai_client.beta.threads.messages.list(thread.id).data == []


def test_unknown_thread_and_message_are_not_found(openai_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="No thread found with id 'thread_missing'"):
        openai_client.beta.threads.messages.create("thread_missing", role="user", content="x")
    thread = openai_client.beta.threads.create()
    with pytest.raises(openai.NotFoundError, match="No message found with id 'msg_missing'"):
        openai_client.beta.threads.messages.retrieve("msg_missing", thread_id=thread.id)


def test_invalid_initial_message_creates_no_thread(openai_client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.create(messages=[{"role": "robot", "content": "x"}])  # type: ignore[typeddict-item]
    assert caught.value.param == "messages[0].role"
