"""Threads and messages over gRPC, through the typed asyncio client, against a real server."""

from __future__ import annotations

import grpc
import pytest

from sovereign_client import AsyncSovereignClient, BadRequestError, NotFoundError, SovereignClient
from tests.conftest import ServerThread

pytestmark = pytest.mark.grpc


async def test_create_thread_with_initial_messages_stores_them_in_order(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create(
        messages=[{"role": "user", "content": "first"}, {"role": "assistant", "content": "second"}],
        metadata={"user": "u1"},
    )
    assert thread.id.startswith("thread_")
    assert thread.object == "thread"
    assert dict(thread.metadata) == {"user": "u1"}
    messages = await client.threads.messages.list(thread.id, order="asc")
    assert [(m.role, m.content[0].text.value) for m in messages.data] == [
        ("user", "first"),
        ("assistant", "second"),
    ]


async def test_thread_update_and_delete(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create()
    updated = await client.threads.update(thread.id, metadata={"stage": "2"})
    assert dict(updated.metadata) == {"stage": "2"}
    assert await client.threads.retrieve(thread.id) == updated
    deleted = await client.threads.delete(thread.id)
    assert (deleted.object, deleted.deleted) == ("thread.deleted", True)
    with pytest.raises(NotFoundError, match="No thread found"):
        await client.threads.retrieve(thread.id)


async def test_deleting_a_thread_deletes_its_messages(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "x"}])
    message = (await client.threads.messages.list(thread.id)).data[0]
    await client.threads.delete(thread.id)
    with pytest.raises(NotFoundError):
        await client.threads.messages.retrieve(message.id, thread_id=thread.id)


async def test_message_from_string_content_is_one_text_part(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create()
    message = await client.threads.messages.create(thread.id, role="user", content="What is RSI?")
    assert message.id.startswith("msg_")
    assert message.object == "thread.message"
    assert message.thread_id == thread.id
    assert message.status == "completed"
    assert len(message.content) == 1
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "What is RSI?"
    assert list(message.content[0].text.annotations) == []
    assert message.assistant_id.WhichOneof("kind") == "null_value"
    assert message.run_id.WhichOneof("kind") == "null_value"


async def test_message_from_content_parts_keeps_each_part(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create()
    message = await client.threads.messages.create(
        thread.id,
        role="user",
        content=[
            {"type": "text", "text": "Look at this chart"},
            {"type": "image_url", "image_url": {"url": "https://example.com/c.png", "detail": "low"}},
        ],
    )
    assert [part.type for part in message.content] == ["text", "image_url"]
    assert message.content[1].image_url.url == "https://example.com/c.png"
    assert message.content[1].image_url.detail == "low"
    # An image file must exist in the caller's project: no file does without a Files API.
    with pytest.raises(BadRequestError) as caught:
        await client.threads.messages.create(
            thread.id, role="user", content=[{"type": "image_file", "image_file": {"file_id": "file_1"}}]
        )
    assert caught.value.param == "content[0].image_file.file_id"


async def test_message_update_retrieve_delete(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create()
    message = await client.threads.messages.create(thread.id, role="user", content="hi")
    updated = await client.threads.messages.update(message.id, thread_id=thread.id, metadata={"seen": "yes"})
    assert dict(updated.metadata) == {"seen": "yes"}
    assert await client.threads.messages.retrieve(message.id, thread_id=thread.id) == updated
    deleted = await client.threads.messages.delete(message.id, thread_id=thread.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (message.id, "thread.message.deleted", True)
    assert list((await client.threads.messages.list(thread.id)).data) == []


async def test_message_pagination_in_both_orders(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create()
    ids = [(await client.threads.messages.create(thread.id, role="user", content=str(i))).id for i in range(7)]
    first = await client.threads.messages.list(thread.id, order="asc", limit=3)
    assert [m.id for m in first.data] == ids[:3]
    assert first.has_more
    second = await client.threads.messages.list(thread.id, order="asc", limit=3, after=first.last_id.string_value)
    assert [m.id for m in second.data] == ids[3:6]
    newest = await client.threads.messages.list(thread.id, limit=2)
    assert [m.id for m in newest.data] == ids[::-1][:2]


async def test_message_cursor_from_another_thread_is_rejected(client: AsyncSovereignClient) -> None:
    thread = await client.threads.create(messages=[{"role": "user", "content": "a"}])
    other = await client.threads.create(messages=[{"role": "user", "content": "b"}])
    foreign_id = (await client.threads.messages.list(other.id)).data[0].id
    with pytest.raises(BadRequestError) as caught:
        await client.threads.messages.list(thread.id, after=foreign_id)
    assert caught.value.param == "after"


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "system", "content": "x"}, "role"),
        ({"role": "user", "content": []}, "content"),
        ({"role": "user", "content": [{"type": "audio"}]}, "content[0].type"),
        ({"role": "user", "content": [{"type": "text", "text": 5}]}, "content[0].text"),
        ({"role": "user", "content": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"role": "user", "content": "x", "metadata": {"k": 1}}, "metadata.k"),
        (
            {"role": "user", "content": "x", "attachments": [{"file_id": "f", "tools": [{"type": "function"}]}]},
            "attachments[0].tools[0].type",
        ),
    ],
)
async def test_invalid_messages_are_rejected_and_not_stored(
    client: AsyncSovereignClient, message: dict[str, object], param: str
) -> None:
    thread = await client.threads.create()
    with pytest.raises(BadRequestError) as caught:
        await client.threads.messages.create(thread.id, **message)
    assert caught.value.param == param
    assert list((await client.threads.messages.list(thread.id)).data) == []


async def test_invalid_initial_message_creates_no_thread(client: AsyncSovereignClient) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client.threads.create(messages=[{"role": "user", "content": "ok"}, {"role": "robot", "content": "x"}])
    assert caught.value.param == "messages[1].role"


async def test_message_on_unknown_thread_is_not_found(client: AsyncSovereignClient) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.threads.messages.create("thread_missing", role="user", content="x")
    assert caught.value.status == grpc.StatusCode.NOT_FOUND


def test_the_synchronous_client_does_the_same(grpc_server: ServerThread) -> None:
    with SovereignClient(f"127.0.0.1:{grpc_server.port}") as client:
        thread = client.threads.create(messages=[{"role": "user", "content": "sync"}])
        assert client.threads.messages.list(thread.id).data[0].content[0].text.value == "sync"
        with pytest.raises(NotFoundError):
            client.threads.retrieve("thread_missing")
