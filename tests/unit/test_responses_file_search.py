"""The Responses API's `file_search` on its own: the tool's validation, the item's rendering and
storage, what the engine is sent, and an execution driven by a scripted engine and a fake search
(the server tool seam, `responses.tools.ResponseTools`), in `tools` and `prefetch` modes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sovereign_server import convert, convert_responses, validation
from sovereign_server.engines import ChatMessage, Finish, GenerationRequest, TextDelta, ToolCall, ToolCallDelta, Usage
from sovereign_server.errors import InvalidRequestError
from sovereign_server.files.requests import check_file_search_tool
from sovereign_server.files.tool_search import FILE_SEARCH_FUNCTION, cite, offer
from sovereign_server.responses import ResponseManager, ResponseOptions
from sovereign_server.responses.context import engine_messages
from sovereign_server.responses.execution import replay
from sovereign_server.runs.tools import Citation
from sovereign_storage import (
    FileCitation,
    FileSearchCall,
    FileSearchResult,
    Item,
    Repository,
    ResponseRecord,
    TextContent,
    migrate,
    open_database,
    values,
)
from tests.unit.test_responses import _events, user
from tests.unit.test_runs import ScriptedEngine

pytestmark = pytest.mark.unit

RESULT = FileSearchResult("file-1", "notes.txt", 0.9, "Refunds within thirty days.", {"lang": "en"})
SEARCHED = FileSearchCall("call_1", "refunds", (RESULT,))
TOOL = {"type": "file_search", "vector_store_ids": ["vs_1"]}


class FakeSearch:
    """`ResponseTools` with a canned search: records what it was asked."""

    def __init__(self, prefetch: bool = False) -> None:
        self.prefetch = prefetch
        self.searched: list[FileSearchCall] = []

    def hosts(self, tool_type: str) -> bool:
        return tool_type == "file_search"

    async def check(self, project_id: str, tools: Sequence[Mapping[str, Any]]) -> None:
        pass

    def used_by(self, response: ResponseRecord) -> bool:
        return any(tool["type"] == "file_search" for tool in response.tools)

    def handles(self, name: str) -> bool:
        return name == "file_search"

    def offer(self, response: ResponseRecord, request: GenerationRequest) -> GenerationRequest:
        return request if self.prefetch else offer(request)

    async def search(self, project_id: str, response: ResponseRecord, call: FileSearchCall) -> FileSearchCall:
        self.searched.append(call)
        return replace(call, results=(RESULT,))

    def cite(self, text: str, searches: Sequence[FileSearchCall]) -> Citation | None:
        return cite(text, searches)


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    database = open_database(str(tmp_path / "responses.sqlite3"))
    migrate(database)
    return Repository(database)


# ---------------------------------------------------------------- validation


def test_the_tool_is_stored_with_openais_defaults() -> None:
    assert check_file_search_tool(TOOL, "tools[0]") == {
        "type": "file_search",
        "vector_store_ids": ["vs_1"],
        "max_num_results": 20,
        "ranking_options": {"ranker": "auto", "score_threshold": 0.0},
        "filters": None,
    }
    given = {
        **TOOL,
        "max_num_results": 3,
        "ranking_options": {"ranker": "default-2024-11-15", "score_threshold": 0.5, "hybrid_search": {}},
        "filters": {"type": "eq", "key": "lang", "value": "en"},
    }
    checked = check_file_search_tool(given, "tools[0]")
    assert (checked["max_num_results"], checked["ranking_options"]["score_threshold"]) == (3, 0.5)
    assert checked["filters"] == {"type": "eq", "key": "lang", "value": "en"}


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        ({"type": "file_search"}, "tools[0].vector_store_ids"),
        ({"type": "file_search", "vector_store_ids": []}, "tools[0].vector_store_ids"),
        ({"type": "file_search", "vector_store_ids": "vs_1"}, "tools[0].vector_store_ids"),
        ({**TOOL, "max_num_results": 0}, "tools[0].max_num_results"),
        ({**TOOL, "ranking_options": {"score_threshold": 2}}, "tools[0].ranking_options.score_threshold"),
        ({**TOOL, "filters": {"type": "eq"}}, "tools[0].filters.key"),
        ({**TOOL, "extra": 1}, "tools[0].extra"),
    ],
)
def test_a_malformed_tool_is_a_400_naming_its_param(tool: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        validation.check_response_tools([tool], hosted=convert_responses.HOSTED_TOOLS)
    assert raised.value.param == param


# ---------------------------------------------------------------- rendering and storage


def test_a_search_item_shows_its_results_only_when_asked() -> None:
    item = Item("fs_1", "assistant", details=SEARCHED)
    assert item.type == "file_search_call"
    plain = convert_responses.item_json(item)
    assert plain == {
        "id": "fs_1",
        "type": "file_search_call",
        "status": "completed",
        "queries": ["refunds"],
        "results": None,
    }
    assert convert_responses.item_json(item, search_results=True)["results"] == [
        {
            "file_id": "file-1",
            "filename": "notes.txt",
            "score": 0.9,
            "text": RESULT.content,
            "attributes": {"lang": "en"},
        }
    ]
    # The typed message prints the same JSON (what the gateway prints for listed items).
    for results in (False, True):
        message = convert_responses.item_message(item, search_results=results)
        assert convert.openai_json(message) == convert_responses.item_json(item, results)


def test_citations_render_as_openais_and_survive_storage() -> None:
    citation = FileCitation("【0:0†notes.txt】", 5, 19, "file-1", "notes.txt")
    message = Item("msg_1", "assistant", content=(TextContent("Yes. 【0:0†notes.txt】", (citation,)),))
    [part] = convert_responses.item_json(message)["content"]
    assert part["annotations"] == [{"type": "file_citation", "file_id": "file-1", "filename": "notes.txt", "index": 5}]
    for item in (message, Item("fs_1", "assistant", details=SEARCHED)):
        assert values.item_from_json(values.item_to_json(item)) == item
    # The Assistants API's shape of a citation is unchanged.
    assert values.content_to_json(message.content[0])["text"]["annotations"][0]["file_citation"] == {
        "file_id": "file-1"
    }


def test_a_search_is_replayed_as_the_call_and_the_result_it_was() -> None:
    items = [
        user("refunds?"),
        Item("fs_1", "assistant", details=SEARCHED),
        Item("msg_2", "assistant", content=(TextContent("Yes."),)),
    ]
    messages = engine_messages(None, items)
    assert [message.role for message in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].tool_calls == (ToolCall("call_1", "file_search", '{"query": "refunds"}'),)
    assert messages[2].tool_call_id == "call_1"
    assert "【0:0†notes.txt】" in messages[2].text
    prefetched = engine_messages(
        None, [user("refunds?"), Item("fs_1", "assistant", details=replace(SEARCHED, prefetched=True))]
    )
    assert [message.role for message in prefetched] == ["user", "system"]


# ---------------------------------------------------------------- execution


async def test_a_search_call_becomes_an_item_and_the_answer_cites_it(repository: Repository) -> None:
    engine = ScriptedEngine(
        [ToolCallDelta(0, "call_1", "file_search", '{"query": "refunds"}'), Finish("tool_calls", Usage(5, 2))],
        later_turns=[[TextDelta("Thirty days "), TextDelta("【0:0†notes.txt】"), Finish("stop", Usage(20, 3))]],
    )
    tools = FakeSearch()
    manager = ResponseManager(repository, engine, tools=tools)
    response, events = await _events(
        manager, ResponseOptions(model="m", input=(user("refunds?"),), tools=[check_file_search_tool(TOOL, "t")])
    )
    assert [event.type for event in events[:7]] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
        "response.output_item.done",
    ]
    assert events[-1].type == "response.completed"
    search, message = response.output_items
    assert search.id.startswith("fs_")
    assert search.details == replace(SEARCHED, results=(RESULT,))
    [part] = message.content
    assert isinstance(part, TextContent)
    assert part.annotations == (FileCitation("【0:0†notes.txt】", 12, 27, "file-1", "notes.txt"),)
    assert response.usage == Usage(25, 5)
    # The tool was offered as a function, then the results were read as the call's output.
    assert FILE_SEARCH_FUNCTION in engine.requests[0].tools
    assert engine.requests[1].messages[-1] == ChatMessage(
        "tool", "【0:0†notes.txt】\n" + RESULT.content, tool_call_id="call_1"
    )
    assert repository.get_response(response.id) == response
    assert [event.type for event in replay(response)][2:7] == [event.type for event in events[2:7]]


async def test_prefetch_searches_first_and_appends_the_files_cited(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("Thirty days."), Finish("stop", Usage(20, 3))])
    tools = FakeSearch(prefetch=True)
    manager = ResponseManager(repository, engine, tools=tools)
    response, events = await _events(
        manager, ResponseOptions(model="m", input=(user("refunds?"),), tools=[check_file_search_tool(TOOL, "t")])
    )
    assert [call.query for call in tools.searched] == ["refunds?"]
    assert engine.requests[0].tools == ()
    assert engine.requests[0].messages[-1].role == "system"
    search, message = response.output_items
    assert isinstance(search.details, FileSearchCall)
    assert search.details.prefetched
    [part] = message.content
    assert isinstance(part, TextContent)
    assert part.value == "Thirty days. 【0:0†notes.txt】"
    assert [citation.start_index for citation in part.annotations] == [13]
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) == 2  # the reply, then the citation appended


async def test_the_typed_grpc_events_and_response_print_the_same_json(repository: Repository) -> None:
    """What gRPC callers get (typed messages) is what the JSON streams carry."""
    engine = ScriptedEngine(
        [ToolCallDelta(0, "call_1", "file_search", "{}"), Finish("tool_calls")],
        later_turns=[[TextDelta("【0:0†notes.txt】"), Finish("stop")]],
    )
    manager = ResponseManager(repository, engine, tools=FakeSearch())
    tools = [check_file_search_tool(TOOL, "t"), {"type": "function", "name": "f", "parameters": None, "strict": None}]
    response, events = await _events(manager, ResponseOptions(model="m", input=(user("refunds?"),), tools=tools))
    for event in events:
        for results in (False, True):
            typed = convert_responses.event_message(event, results)
            assert convert.openai_json(typed) == convert_responses.event_json(event, results)
    assert convert.openai_json(convert_responses.response_message(response)) == convert_responses.response_json(
        response
    )
