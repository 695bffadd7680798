"""The Responses and Conversations APIs over gRPC: the typed clients (typed events, the response
itself, conversations and items), grpcurl through reflection, and projects: with keys, one
project never reaches another's responses or conversations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import json_format

from sovereign_assistant.v1 import item_pb2
from sovereign_client import AsyncSovereignClient, BadRequestError, NotFoundError, RateLimitError, SovereignClient
from tests.conftest import Keys, ServerThread
from tests.grpc.test_grpcurl import grpcurl, json_messages, run_grpcurl

pytestmark = pytest.mark.grpc

PRICE_TOOL = {"type": "function", "name": "get_price", "parameters": {"type": "object"}}


def text_of(item: item_pb2.Item) -> str:
    """The text of a message item's first content part."""
    parts: Any = json_format.MessageToDict(item.content)
    return str(parts[0]["text"])


@pytest.fixture(scope="module")
def sync_client(grpc_server: ServerThread) -> Iterator[SovereignClient]:
    with SovereignClient(f"127.0.0.1:{grpc_server.port}") as client:
        yield client


async def test_typed_events_stream_a_response(client: AsyncSovereignClient) -> None:
    events = [event async for event in client.responses.stream(model="builtin", input="typed events")]
    names = [event.type for event in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "You said: typed events"
    added = next(event for event in events if event.type == "response.output_item.added")
    assert (added.item.type, added.item.role, added.output_index) == ("message", "assistant", 0)
    completed = events[-1].response
    assert completed.status == "completed"
    assert text_of(completed.output[0]) == "You said: typed events"
    retrieved = await client.responses.retrieve(completed.id)
    assert retrieved == completed


async def test_a_response_is_created_listed_cancelled_and_deleted(client: AsyncSovereignClient) -> None:
    response = await client.responses.create(
        model="builtin", input=[{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    )
    assert (response.status, response.usage.struct_value["output_tokens"]) == ("completed", 3)
    items = await client.responses.input_items.list(response.id, order="asc")
    assert [text_of(item) for item in items.data] == ["one", "two"]
    with pytest.raises(BadRequestError):
        await client.responses.cancel(response.id)
    queued = await client.responses.create(model="builtin", input="later", background=True)
    assert queued.status == "queued"
    replayed = [event.type async for event in client.responses.events(queued.id)]
    assert replayed[-1] == "response.completed"
    deleted = await client.responses.delete(response.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (response.id, "response", True)
    with pytest.raises(NotFoundError):
        await client.responses.retrieve(response.id)


async def test_a_function_call_round_trip(client: AsyncSovereignClient) -> None:
    first = await client.responses.create(model="builtin", input='get_price {"ticker": "X"}', tools=[PRICE_TOOL])
    call = first.output[0]
    assert (call.type, call.name, call.arguments) == ("function_call", "get_price", '{"ticker": "X"}')
    second = await client.responses.create(
        model="builtin",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "9"}],
    )
    assert text_of(second.output[0]) == "get_price returned: 9"


def test_conversations_and_items_with_the_sync_client(sync_client: SovereignClient) -> None:
    conversation = sync_client.conversations.create(
        items=[{"role": "user", "content": f"item {n}"} for n in range(3)], metadata={"k": "v"}
    )
    assert conversation.id.startswith("conv_")
    assert dict(conversation.metadata) == {"k": "v"}
    every = list(sync_client.conversations.items.iterate(conversation.id, limit=2, order="asc"))
    assert [text_of(item) for item in every] == ["item 0", "item 1", "item 2"]
    added = sync_client.conversations.items.create(conversation.id, items=[{"role": "user", "content": "more"}])
    item = sync_client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
    assert item.role == "user"
    assert sync_client.conversations.items.delete(item.id, conversation_id=conversation.id).id == conversation.id
    response = sync_client.responses.create(model="builtin", input="in it", conversation=conversation.id)
    assert response.conversation.struct_value["id"] == conversation.id
    assert sync_client.conversations.update(conversation.id, metadata={"k": "w"}).metadata["k"] == "w"
    assert sync_client.conversations.delete(conversation.id).object == "conversation.deleted"
    with pytest.raises(NotFoundError):
        sync_client.conversations.retrieve(conversation.id)


def test_grpcurl_lists_and_calls_the_new_services(grpc_server: ServerThread) -> None:
    services = set(grpcurl(grpc_server, "list").split())
    assert {"sovereign_assistant.v1.ResponseService", "sovereign_assistant.v1.ConversationService"} <= services
    conversation = json.loads(
        grpcurl(
            grpc_server,
            "sovereign_assistant.v1.ConversationService/CreateConversation",
            data={"items": [{"role": "user", "content": "hi"}]},
        )
    )
    events = json_messages(
        grpcurl(
            grpc_server,
            "sovereign_assistant.v1.ResponseService/CreateResponseEvents",
            data={"model": "builtin", "input": "Hello grpcurl", "conversation": conversation["id"]},
        )
    )
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["output"][0]["content"][0]["text"] == "You said: Hello grpcurl"
    rejected = run_grpcurl(
        grpc_server,
        "sovereign_assistant.v1.ResponseService/CreateResponseEvents",
        data={"model": "builtin", "input": "x", "max_output_tokens": 3},
    )
    assert rejected.returncode != 0
    assert "Code: InvalidArgument" in rejected.stderr


def test_one_project_never_reaches_anothers_responses_or_conversations(
    keyed_server: tuple[ServerThread, Keys],
) -> None:
    server, keys = keyed_server
    address = f"127.0.0.1:{server.port}"
    with SovereignClient(address, api_key=keys.alpha) as alpha, SovereignClient(address, api_key=keys.beta) as beta:
        response = alpha.responses.create(model="builtin", input="alpha's")
        conversation = alpha.conversations.create(items=[{"role": "user", "content": "alpha's"}])
        for call in (
            lambda: beta.responses.retrieve(response.id),
            lambda: beta.responses.delete(response.id),
            lambda: beta.responses.input_items.list(response.id),
            lambda: list(beta.responses.events(response.id)),
            lambda: beta.responses.create(model="builtin", input="x", previous_response_id=response.id),
            lambda: beta.conversations.retrieve(conversation.id),
            lambda: beta.conversations.items.list(conversation.id),
            lambda: beta.responses.create(model="builtin", input="x", conversation=conversation.id),
        ):
            with pytest.raises(NotFoundError):
                call()
        assert alpha.responses.retrieve(response.id).id == response.id


def test_a_response_spends_the_keys_tokens(keyed_server: tuple[ServerThread, Keys]) -> None:
    server, keys = keyed_server
    with SovereignClient(f"127.0.0.1:{server.port}", api_key=keys.thrifty) as thrifty:
        # The budget (5 tokens a minute) admits a response, which spends more than that.
        assert thrifty.responses.create(model="builtin", input="one two three four").status == "completed"
        with pytest.raises(RateLimitError) as refused:
            thrifty.responses.create(model="builtin", input="again")
        assert refused.value.type == "tokens"
        # Reading costs no tokens.
        assert thrifty.conversations.create().object == "conversation"
