"""`file_search` in the Responses API, through the official SDK and a real Envoy: the built-in engine
calls the tool when the input names it, the server searches the tool's vector stores (the search of
Assistants runs), outputs a `file_search_call` item, feeds the results back, and the answer's
`output_text` carries `file_citation` annotations; the stream has the search's events."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.responses import ResponseFileSearchToolCall, ResponseOutputMessage

from sovereign_server.gateway import Gateway, GatewayConfig
from tests.conftest import Keys, ServerThread

pytestmark = pytest.mark.sdk

NOTES = b"The return policy allows refunds within thirty days of purchase.\nShipping takes five days.\n"
QUESTION = 'Use file_search to answer: how long do refunds take? {"query": "refund policy days"}'
SEARCH_EVENTS = [
    "response.output_item.added",
    "response.file_search_call.in_progress",
    "response.file_search_call.searching",
    "response.file_search_call.completed",
    "response.output_item.done",
]


def _indexed_store(client: OpenAI, file_id: str) -> str:
    store = client.vector_stores.create(file_ids=[file_id])
    deadline = time.monotonic() + 20
    while store.status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)
        store = client.vector_stores.retrieve(store.id)
    assert store.status == "completed"
    return store.id


@pytest.fixture(scope="module")
def notes_id(openai_client: OpenAI) -> str:
    return openai_client.files.create(file=("notes.txt", io.BytesIO(NOTES)), purpose="assistants").id


@pytest.fixture(scope="module")
def store_id(openai_client: OpenAI, notes_id: str) -> str:
    return _indexed_store(openai_client, notes_id)


def _parts(response: Any) -> tuple[ResponseFileSearchToolCall, ResponseOutputMessage]:
    search, message = response.output
    assert isinstance(search, ResponseFileSearchToolCall)
    assert isinstance(message, ResponseOutputMessage)
    return search, message


def test_a_response_searches_and_answers_with_citations(openai_client: OpenAI, store_id: str, notes_id: str) -> None:
    tool: Any = {"type": "file_search", "vector_store_ids": [store_id], "max_num_results": 4}
    response = openai_client.responses.create(
        model="builtin", input=QUESTION, tools=[tool], include=["file_search_call.results"]
    )
    assert response.status == "completed"
    search, message = _parts(response)
    assert search.id.startswith("fs_")
    assert (search.status, search.queries) == ("completed", ["refund policy days"])
    assert search.results is not None
    result = search.results[0]
    assert (result.file_id, result.filename) == (notes_id, "notes.txt")
    assert result.text is not None
    assert "thirty days" in result.text
    assert result.score is not None
    assert 0 < result.score <= 1
    assert result.attributes == {}

    text = message.content[0]
    assert text.type == "output_text"
    assert text.text.startswith("file_search returned: 【0:0†notes.txt】")
    [citation] = text.annotations
    assert citation.type == "file_citation"
    assert (citation.file_id, citation.filename, citation.index) == (
        notes_id,
        "notes.txt",
        len("file_search returned: "),
    )
    # Two model turns: the one that called the tool and the one that answered.
    assert response.usage is not None
    assert response.usage.output_tokens > len(text.text.split())

    # The tool is echoed with OpenAI's defaults; the results are shown only when asked for.
    [echoed] = response.tools
    assert echoed.to_dict() == {
        "type": "file_search",
        "vector_store_ids": [store_id],
        "max_num_results": 4,
        "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
        "filters": None,
    }
    retrieved = openai_client.responses.retrieve(response.id)
    assert _parts(retrieved)[0].results is None
    assert _parts(retrieved)[1].content[0].annotations == text.annotations  # type: ignore[union-attr]
    included = openai_client.responses.retrieve(response.id, include=["file_search_call.results"])
    assert _parts(included)[0].results == search.results


def test_the_stream_has_the_search_events_in_order(openai_client: OpenAI, store_id: str) -> None:
    events = list(
        openai_client.responses.create(
            model="builtin",
            input=QUESTION,
            tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
            stream=True,
        )
    )
    names = [event.type for event in events]
    assert names[:2] == ["response.created", "response.in_progress"]
    assert names[2 : 2 + len(SEARCH_EVENTS)] == SEARCH_EVENTS
    assert names[-1] == "response.completed"
    added, in_progress = events[2], events[3]
    assert (added.item.type, added.item.status) == ("file_search_call", "in_progress")  # type: ignore[union-attr]
    assert in_progress.item_id == added.item.id  # type: ignore[union-attr]
    done = events[2 + len(SEARCH_EVENTS) - 1]
    assert (done.item.status, done.item.results) == ("completed", None)  # type: ignore[union-attr]
    part_done = next(event for event in events if event.type == "response.content_part.done")
    assert [a.type for a in part_done.part.annotations] == ["file_citation"]  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_the_stream_helper_and_a_chained_response(openai_client: OpenAI, store_id: str) -> None:
    tools: Any = [{"type": "file_search", "vector_store_ids": [store_id]}]
    with openai_client.responses.stream(model="builtin", input=QUESTION, tools=tools) as stream:
        for _ in stream:
            pass
        first = stream.get_final_response()
    assert [item.type for item in first.output] == ["file_search_call", "message"]
    # The next response reads the search as the call and the result it was (the engine is given
    # valid turns), and answers the new input.
    second = openai_client.responses.create(model="builtin", input="thanks", tools=tools, previous_response_id=first.id)
    assert second.output_text == "You said: thanks"
    conversation = openai_client.conversations.create()
    in_conversation = openai_client.responses.create(
        model="builtin", input=QUESTION, tools=tools, conversation=conversation.id
    )
    assert [item.type for item in in_conversation.output] == ["file_search_call", "message"]
    items = openai_client.conversations.items.list(conversation.id, order="asc", include=["file_search_call.results"])
    assert [item.type for item in items.data] == ["message", "file_search_call", "message"]
    assert items.data[1].results  # type: ignore[union-attr]
    follow_up = openai_client.responses.create(model="builtin", input="and shipping?", conversation=conversation.id)
    assert follow_up.output_text == "You said: and shipping?"


def test_a_tool_choice_forces_the_search(openai_client: OpenAI, store_id: str, notes_id: str) -> None:
    response = openai_client.responses.create(
        model="builtin",
        input="refunds",
        tools=[{"type": "file_search", "vector_store_ids": [store_id]}],
        tool_choice={"type": "file_search"},
    )
    search, message = _parts(response)
    assert search.queries == ["refunds"]
    assert [a.file_id for a in message.content[0].annotations] == [notes_id]  # type: ignore[union-attr]


def test_an_unknown_vector_store_is_a_404_and_a_bad_tool_a_400(openai_client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        openai_client.responses.create(
            model="builtin", input="x", tools=[{"type": "file_search", "vector_store_ids": ["vs_missing"]}]
        )
    bad: list[tuple[Any, str]] = [
        ({"type": "file_search"}, "tools[0].vector_store_ids"),
        ({"type": "file_search", "vector_store_ids": ["vs_a"], "max_num_results": 51}, "tools[0].max_num_results"),
        ({"type": "file_search", "vector_store_ids": ["vs_a"], "filters": {"type": "eq"}}, "tools[0].filters.key"),
    ]
    for tool, param in bad:
        with pytest.raises(openai.BadRequestError) as error:
            openai_client.responses.create(model="builtin", input="x", tools=[tool])
        assert error.value.body["param"] == param  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as choice:
        openai_client.responses.create(model="builtin", input="x", tool_choice={"type": "file_search"})
    assert choice.value.body["param"] == "tool_choice"  # type: ignore[index]


@pytest.fixture(scope="module")
def keyed_gateway(keyed_server: tuple[ServerThread, Keys]) -> Iterator[Gateway]:
    with Gateway(GatewayConfig(grpc_port=keyed_server[0].port, http_port=0)) as gateway:
        yield gateway


def test_another_projects_vector_store_is_a_404(
    keyed_gateway: Gateway, keyed_server: tuple[ServerThread, Keys]
) -> None:
    keys = keyed_server[1]
    with (
        OpenAI(base_url=keyed_gateway.base_url, api_key=keys.alpha, max_retries=0, timeout=20) as alpha,
        OpenAI(base_url=keyed_gateway.base_url, api_key=keys.beta, max_retries=0, timeout=20) as beta,
    ):
        file_id = alpha.files.create(file=("notes.txt", io.BytesIO(NOTES)), purpose="assistants").id
        store_id = _indexed_store(alpha, file_id)
        tools: Any = [{"type": "file_search", "vector_store_ids": [store_id]}]
        with pytest.raises(openai.NotFoundError):
            beta.responses.create(model="builtin", input=QUESTION, tools=tools)
        assert _parts(alpha.responses.create(model="builtin", input=QUESTION, tools=tools))[1].content[0].annotations  # type: ignore[union-attr]
