"""The Responses API on the run core, on its own: its table and events, what it sends the engine,
its renderings (held equal to the gateway's printing), and the lifecycle of a response, driven by a
scripted engine over a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sovereign_server import convert, convert_responses, sse
from sovereign_server.caller import Caller
from sovereign_server.engines import (
    ChatMessage,
    EngineError,
    Finish,
    ImagePart,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from sovereign_server.errors import ConflictError, InvalidRequestError, NotFoundError
from sovereign_server.responses import RESPONSES, ItemReference, ResponseEventType, ResponseManager, ResponseOptions
from sovereign_server.responses import service as response_service
from sovereign_server.responses.context import engine_messages, generation_request
from sovereign_server.responses.execution import replay
from sovereign_server.responses.model import UNFINISHED, ContentPartEvent, ResponseEvent
from sovereign_server.responses.service import assistant_text_format, assistant_tools, page_of
from sovereign_server.runs import RunManager, RunSettings
from sovereign_server.runs.background import UNFINISHED_RESPONSES
from sovereign_server.runs.coordination import LocalCoordination, ResponseHost
from sovereign_server.runs.model import StreamError
from sovereign_storage import (
    DEFAULT_PROJECT_ID,
    FunctionCallDetails,
    FunctionOutputDetails,
    ImageUrlContent,
    IncompleteDetails,
    InvalidCursorError,
    Item,
    LastError,
    MessageStatus,
    NewAssistant,
    NewMessage,
    NewRun,
    PageRequest,
    Repository,
    ResponseRecord,
    ResponseStatus,
    TextContent,
    migrate,
    open_database,
)
from tests.unit.test_runs import ScriptedEngine

pytestmark = pytest.mark.unit

CALLER = Caller(DEFAULT_PROJECT_ID)
CALL = FunctionCallDetails("call_1", "get_price", '{"ticker": "AAPL"}')
TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def user(text: str) -> Item:
    return Item(f"msg_{text.replace(' ', '_')}", "user", content=(TextContent(text),))


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    database = open_database(str(tmp_path / "responses.sqlite3"))
    migrate(database)
    return Repository(database)


async def _events(manager: ResponseManager, options: ResponseOptions) -> tuple[ResponseRecord, list[ResponseEvent]]:
    execution = await manager.create(CALLER, options)
    events = [event async for batch in execution.channel.follow() for event in batch]
    return execution.response, events


# ---------------------------------------------------------------- the table and the vocabulary


def test_a_response_changes_status_only_as_the_table_allows() -> None:
    assert RESPONSES.sources(ResponseStatus.IN_PROGRESS) == {ResponseStatus.QUEUED}
    assert RESPONSES.sources(ResponseStatus.COMPLETED) == {ResponseStatus.IN_PROGRESS}
    assert RESPONSES.sources(ResponseStatus.CANCELLED) == {ResponseStatus.QUEUED, ResponseStatus.IN_PROGRESS}
    # What a restart fails follows from the table (background.py names it without importing it).
    assert set(UNFINISHED_RESPONSES) == UNFINISHED == RESPONSES.sources(ResponseStatus.FAILED)
    for ended in set(ResponseStatus) - UNFINISHED:
        assert not any(RESPONSES.allows(ended, to) for to in ResponseStatus)
    for status in set(ResponseStatus) - {ResponseStatus.CANCELLED}:
        assert RESPONSES.event(status) == f"response.{status}"


def test_the_engine_reads_instructions_then_items_with_calls_joining_their_turn() -> None:
    items = [
        Item("msg_d", "developer", content=(TextContent("Be brief."),)),
        user("price?"),
        Item("msg_a", "assistant", content=(TextContent("Looking."),)),
        Item("fc_1", "assistant", details=CALL),
        Item("fc_2", "assistant", details=replace(CALL, call_id="call_2")),
        Item("fco_1", "user", details=FunctionOutputDetails("call_1", "42")),
        Item("msg_i", "user", content=(ImageUrlContent("https://x/y.png"),)),
    ]
    calls = (ToolCall("call_1", "get_price", CALL.arguments), ToolCall("call_2", "get_price", CALL.arguments))
    assert engine_messages("You are terse.", items) == (
        ChatMessage("system", "You are terse."),
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "price?"),
        ChatMessage("assistant", "Looking.", calls),
        ChatMessage("tool", "42", tool_call_id="call_1"),
        ChatMessage("user", (ImagePart("https://x/y.png"),)),
    )


def test_the_request_speaks_chat_completions() -> None:
    response = record(
        tools=[{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": None}],
        tool_choice={"type": "function", "name": "f"},
        text_format={"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": True},
        max_output_tokens=64,
        parallel_tool_calls=False,
    )
    request = generation_request(response, [])
    assert request.tools[0].name == "f"
    assert request.tool_choice == {"type": "function", "function": {"name": "f"}}
    assert request.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": True},
    }
    assert (request.max_completion_tokens, request.parallel_tool_calls) == (64, False)


def test_an_assistants_settings_take_the_responses_shapes() -> None:
    tools: list[dict[str, Any]] = [
        {"type": "code_interpreter"},
        {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
    ]
    assert assistant_tools(tools) == [
        {"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": None}
    ]
    assert assistant_text_format("auto") is None
    assert assistant_text_format({"type": "json_object"}) == {"type": "json_object"}
    assert assistant_text_format({"type": "json_schema", "json_schema": {"name": "n", "schema": {}}}) == {
        "type": "json_schema",
        "name": "n",
        "schema": {},
    }


def test_input_items_page_by_their_ids() -> None:
    items = [user(str(n)) for n in range(5)]
    ids = [item.id for item in items]
    assert [i.id for i in page_of(items, PageRequest(limit=2)).items] == ids[::-1][:2]
    page = page_of(items, PageRequest(limit=2, order="asc", after=ids[1]))
    assert ([i.id for i in page.items], page.has_more) == (ids[2:4], True)
    page = page_of(items, PageRequest(limit=2, order="asc", before=ids[4]))
    assert ([i.id for i in page.items], page.has_more) == (ids[2:4], True)
    assert not page_of(items, PageRequest(limit=5)).has_more
    with pytest.raises(InvalidCursorError):
        page_of(items, PageRequest(after="msg_nope"))


# ---------------------------------------------------------------- renderings


def record(**fields: Any) -> ResponseRecord:
    values: dict[str, Any] = {
        "id": "resp_1",
        "created_at": 1_700_000_000,
        "status": ResponseStatus.IN_PROGRESS,
        "background": False,
        "store": True,
        "model": "m",
        "instructions": None,
        "input_items": (),
        "output_items": (),
        "previous_response_id": None,
        "conversation_id": None,
        "prompt_id": None,
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "temperature": None,
        "top_p": None,
        "text_format": None,
        "max_output_tokens": None,
        "truncation": "disabled",
        "metadata": {},
        "usage": None,
        "error": None,
        "incomplete_details": None,
        "completed_at": None,
    }
    return ResponseRecord(**(values | fields))


OUTPUT = (
    Item("msg_1", "assistant", content=(TextContent("Hi"),)),
    Item("fc_1", "assistant", MessageStatus.INCOMPLETE, details=CALL),
)
RECORDS = [
    record(),
    record(
        status=ResponseStatus.COMPLETED,
        background=True,
        instructions="Be brief.",
        output_items=OUTPUT,
        previous_response_id="resp_0",
        prompt_id="asst_1",
        tools=[{"type": "function", "name": "get_price", "parameters": None, "strict": None, "description": "d"}],
        tool_choice={"type": "function", "name": "get_price"},
        parallel_tool_calls=False,
        temperature=0.5,
        top_p=0.9,
        text_format={"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": True},
        max_output_tokens=100,
        metadata={"desk": "fx"},
        usage=Usage(10, 3),
        completed_at=9,
    ),
    record(status=ResponseStatus.FAILED, error=LastError("server_error", "x"), conversation_id="conv_1"),
    record(status=ResponseStatus.INCOMPLETE, incomplete_details=IncompleteDetails("max_output_tokens")),
]
ITEMS = [
    *OUTPUT,
    user("hello"),
    Item("msg_s", "system", content=(TextContent("rules"),)),
    Item("msg_img", "user", content=(ImageUrlContent("https://x/y.png", "low"),)),
    Item("fco_1", "user", details=FunctionOutputDetails("call_1", "42")),
]


@pytest.mark.parametrize("response", RECORDS)
def test_a_response_renders_the_same_directly_and_through_protobuf(response: ResponseRecord) -> None:
    assert convert.openai_json(convert_responses.response_message(response)) == convert_responses.response_json(
        response
    )


@pytest.mark.parametrize("item", ITEMS)
def test_an_item_renders_the_same_directly_and_through_protobuf(item: Item) -> None:
    assert convert.openai_json(convert_responses.item_message(item)) == convert_responses.item_json(item)


def test_items_take_openais_part_types_by_role() -> None:
    assert convert_responses.item_json(ITEMS[0])["content"] == [
        {"type": "output_text", "text": "Hi", "annotations": [], "logprobs": []}
    ]
    assert convert_responses.item_json(ITEMS[2])["content"] == [{"type": "input_text", "text": "hello"}]
    assert convert_responses.item_json(ITEMS[4])["content"] == [
        {"type": "input_image", "image_url": "https://x/y.png", "file_id": None, "detail": "low"}
    ]
    assert convert_responses.item_json(ITEMS[1]) == {
        "id": "fc_1",
        "type": "function_call",
        "status": "incomplete",
        "call_id": "call_1",
        "name": "get_price",
        "arguments": CALL.arguments,
    }


def test_a_response_event_is_framed_with_its_type_and_sequence_number() -> None:
    event = ResponseEvent(
        ResponseEventType.OUTPUT_TEXT_DELTA,
        4,
        ContentPartEvent("msg_1", 0, 0, "Hi"),
    )
    frame = sse.response_frame(event)
    assert frame.startswith(b"event: response.output_text.delta\ndata: {")
    assert json.loads(frame.split(b"data: ", 1)[1]) == {
        "type": "response.output_text.delta",
        "sequence_number": 4,
        "item_id": "msg_1",
        "output_index": 0,
        "content_index": 0,
        "delta": "Hi",
        "logprobs": [],
    }
    error = ResponseEvent(ResponseEventType.ERROR, 9, StreamError("down", code="server_error"))
    assert convert_responses.event_json(error) == {
        "type": "error",
        "sequence_number": 9,
        "code": "server_error",
        "message": "down",
        "param": None,
    }
    # The typed gRPC event is the same JSON.
    assert convert.openai_json(convert_responses.event_message(event)) == convert_responses.event_json(event)


# ---------------------------------------------------------------- validation at the edge


def test_inputs_become_items_with_ids_of_their_own() -> None:
    items = convert_responses.input_items(
        [
            {"role": "developer", "content": "Be brief."},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "call_1", "name": "f", "arguments": "{}", "id": "fc_given"},
            {"type": "function_call_output", "call_id": "call_1", "output": "42"},
            {"type": "item_reference", "id": "msg_x"},
        ]
    )
    assert [item.id[:3] for item in items[:4] if isinstance(item, Item)] == ["msg", "msg", "fc_", "fco"]
    assert isinstance(items[2], Item)
    assert items[2].id != "fc_given"
    assert items[4] == ItemReference("msg_x")
    [hello] = convert_responses.input_items("hello")
    assert isinstance(hello, Item)
    assert (hello.role, hello.content) == ("user", (TextContent("hello"),))


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ([{"role": "robot", "content": "x"}], "input[0].role"),
        ([{"type": "message", "role": "user"}], "input[0].content"),
        ([{"type": "function_call", "call_id": "c", "name": "bad name", "arguments": "{}"}], "input[0].name"),
        ([{"type": "function_call_output", "call_id": "c", "output": [1]}], "input[0].output"),
        ([{"type": "web_search_call"}], "input[0].type"),
        ([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}], "input[0].content[0].type"),
        ([{"role": "user", "content": "x", "extra": 1}], "input[0].extra"),
        (3, "input"),
    ],
)
def test_a_malformed_input_is_a_400_naming_its_param(value: Any, param: str) -> None:
    with pytest.raises(InvalidRequestError) as raised:
        convert_responses.input_items(value)
    assert raised.value.param == param


def test_conversation_items_are_at_most_twenty_and_never_references() -> None:
    with pytest.raises(InvalidRequestError) as raised:
        convert_responses.new_items([{"role": "user", "content": "x"}] * 21)
    assert raised.value.param == "items"
    with pytest.raises(InvalidRequestError) as raised:
        convert_responses.new_items([{"type": "item_reference", "id": "msg_1"}])
    assert raised.value.param == "items[0].type"


# ---------------------------------------------------------------- lifecycle


async def test_a_reply_streams_openais_events_in_order_and_is_stored(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("Hi "), TextDelta("there"), Finish("stop", Usage(7, 2))])
    manager = ResponseManager(repository, engine)
    response, events = await _events(manager, ResponseOptions(model="m", input=(user("hello"),)))
    assert [event.type for event in events] == TEXT_EVENTS
    assert [event.sequence_number for event in events] == list(range(len(events)))
    assert response.status is ResponseStatus.COMPLETED
    assert response.usage == Usage(7, 2)
    assert response.completed_at is not None
    [message] = response.output_items
    assert message.content == (TextContent("Hi there"),)
    assert repository.get_response(response.id) == response
    # The engine read the input.
    assert engine.requests[0].messages == (ChatMessage("user", "hello"),)
    # A stream asked for later replays the same events, text in one delta.
    replayed = [event.type for event in replay(response)]
    assert replayed == [name for index, name in enumerate(TEXT_EVENTS) if index != 5]


async def test_a_tool_call_becomes_a_function_call_item(repository: Repository) -> None:
    engine = ScriptedEngine(
        [
            ToolCallDelta(0, "call_9", "get_price", ""),
            ToolCallDelta(0, arguments='{"ticker":'),
            ToolCallDelta(0, arguments=' "AAPL"}'),
            Finish("tool_calls", Usage(5, 3)),
        ]
    )
    manager = ResponseManager(repository, engine)
    response, events = await _events(manager, ResponseOptions(model="m", input=(user("price"),)))
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    [call] = response.output_items
    assert call.details == FunctionCallDetails("call_9", "get_price", '{"ticker": "AAPL"}')
    assert call.id.startswith("fc_")
    assert [event.type for event in replay(response)] == [
        name for index, name in enumerate(event.type for event in events) if index != 4
    ]


async def test_the_output_limit_ends_a_response_incomplete(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), Finish("length", Usage(3, 16))])
    response, events = await _events(
        ResponseManager(repository, engine), ResponseOptions(model="m", input=(user("x"),), max_output_tokens=16)
    )
    assert events[-1].type == "response.incomplete"
    assert response.status is ResponseStatus.INCOMPLETE
    assert response.incomplete_details == IncompleteDetails("max_output_tokens")
    assert response.output_items[0].status is MessageStatus.INCOMPLETE
    assert engine.requests[0].max_completion_tokens == 16


async def test_an_engine_failure_sends_an_error_then_fails_the_response(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), EngineError("down", code="rate_limit_exceeded")])
    response, events = await _events(ResponseManager(repository, engine), ResponseOptions(model="m"))
    assert [event.type for event in events[-3:]] == ["response.output_item.done", "error", "response.failed"]
    assert response.status is ResponseStatus.FAILED
    assert response.error == LastError("rate_limit_exceeded", "down")
    assert repository.get_response(response.id).output_items[0].status is MessageStatus.INCOMPLETE


async def test_a_response_not_stored_leaves_nothing(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), Finish("stop")])
    manager = ResponseManager(repository, engine)
    response, events = await _events(manager, ResponseOptions(model="m", store=False))
    assert response.status is ResponseStatus.COMPLETED
    assert events[-1].type == "response.completed"
    with pytest.raises(Exception, match="No response found"):
        repository.get_response(response.id)
    with pytest.raises(Exception, match="No response found"):
        await manager.get(CALLER, response.id)


async def test_a_chain_reads_earlier_inputs_and_outputs_but_not_their_instructions(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("A"), Finish("stop")], later_turns=[[TextDelta("B"), Finish("stop")]])
    manager = ResponseManager(repository, engine)
    first, _ = await _events(manager, ResponseOptions(model="m", input=(user("one"),), instructions="Old."))
    second, _ = await _events(manager, ResponseOptions(model="m", input=(user("two"),), previous_response_id=first.id))
    assert engine.requests[1].messages == (
        ChatMessage("user", "one"),
        ChatMessage("assistant", "A"),
        ChatMessage("user", "two"),
    )
    assert second.instructions is None
    with pytest.raises(NotFoundError) as raised:
        await manager.create(CALLER, ResponseOptions(model="m", previous_response_id="resp_nope"))
    assert raised.value.param == "previous_response_id"
    # A reference names an item of the chain.
    third, _ = await _events(
        manager, ResponseOptions(model="m", input=(ItemReference(user("one").id),), previous_response_id=second.id)
    )
    assert third.input_items[0].content == (TextContent("one"),)
    with pytest.raises(InvalidRequestError):
        await manager.create(CALLER, ResponseOptions(model="m", input=(ItemReference("msg_nope"),)))


async def test_a_conversation_holds_the_input_and_the_output(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("Hello"), Finish("stop")])
    manager = ResponseManager(repository, engine)
    thread, _ = repository.create_thread({}, {}, [NewMessage(role="user", content=(TextContent("earlier"),))])
    response, _ = await _events(manager, ResponseOptions(model="m", input=(user("now"),), conversation_id=thread.id))
    assert engine.requests[0].messages == (ChatMessage("user", "earlier"), ChatMessage("user", "now"))
    texts = [m.content[0].value for m in repository.thread_messages(thread.id)]  # type: ignore[union-attr]
    assert texts == ["earlier", "now", "Hello"]
    # The reply is an Assistants message of the thread too, with the response's item id.
    assert repository.list_messages(thread.id, PageRequest(limit=1)).items[0].id == response.output_items[0].id
    with pytest.raises(NotFoundError) as raised:
        await manager.create(CALLER, ResponseOptions(model="m", conversation_id="conv_nope"))
    assert raised.value.param == "conversation"


async def test_a_conversation_with_an_active_run_takes_no_response(repository: Repository) -> None:
    manager = ResponseManager(repository, ScriptedEngine([Finish("stop")]))
    assistant = repository.create_assistant(NewAssistant(model="m"))
    thread, _ = repository.create_thread({}, {}, [])
    repository.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
    with pytest.raises(Exception, match="active run"):
        await manager.create(CALLER, ResponseOptions(model="m", conversation_id=thread.id))


async def test_an_assistant_gives_what_the_request_leaves_out(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("ok"), Finish("stop")])
    manager = ResponseManager(repository, engine)
    tool = {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}
    assistant = repository.create_assistant(
        NewAssistant(model="tiny", instructions="Be an analyst.", tools=[tool], temperature=0.3)
    )
    response, _ = await _events(manager, ResponseOptions(model=None, input=(user("x"),), prompt_id=assistant.id))
    assert (response.model, response.instructions, response.temperature) == ("tiny", "Be an analyst.", 0.3)
    assert response.tools[0]["name"] == "get_price"
    assert engine.requests[0].messages[0] == ChatMessage("system", "Be an analyst.")
    with pytest.raises(InvalidRequestError) as raised:
        await manager.create(CALLER, ResponseOptions(model=None))
    assert raised.value.param == "model"


async def test_a_background_response_is_cancelled_and_its_stream_resumes(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), Finish("stop")], paced=True)
    manager = ResponseManager(repository, engine)
    execution = await manager.create(CALLER, ResponseOptions(model="m", background=True))
    assert execution.response.status is ResponseStatus.QUEUED
    engine.step.set()
    seen: list[ResponseEvent] = []
    async for batch in execution.channel.follow():
        seen.extend(batch)
        if any(event.type == "response.output_text.delta" for event in batch):
            break
    assert [event.type for event in seen[:3]] == ["response.created", "response.queued", "response.in_progress"]
    # Resuming after the first delta skips what the client had.
    first_delta = seen[-1]
    cancelled = await manager.cancel(CALLER, execution.response.id)
    assert cancelled.status is ResponseStatus.CANCELLED
    assert cancelled.output_items[0].content == (TextContent("a"),)
    assert cancelled.output_items[0].status is MessageStatus.INCOMPLETE
    resumed = [
        event
        async for batch in manager.follow(CALLER, execution.response.id, first_delta.sequence_number, None)
        for event in batch
    ]
    assert [event.type for event in resumed] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ]
    assert resumed[0].sequence_number == first_delta.sequence_number + 1
    # Cancelling again answers the cancelled response; a foreground response cannot be cancelled.
    assert (await manager.cancel(CALLER, execution.response.id)).status is ResponseStatus.CANCELLED
    unpaced = ResponseManager(repository, ScriptedEngine([Finish("stop")]))
    foreground, _ = await _events(unpaced, ResponseOptions(model="m"))
    with pytest.raises(ConflictError):
        await unpaced.cancel(CALLER, foreground.id)


class SharedCoordination(LocalCoordination):
    """Replicas in one process: a response's cancel reaches every replica's manager, as a
    notification on the channel they all share does."""

    def __init__(self, repository: Repository, hosts: list[ResponseHost]) -> None:
        super().__init__(repository)
        self._hosts = hosts

    def host_responses(self, host: ResponseHost) -> None:
        self._hosts.append(host)

    async def cancel_response_elsewhere(self, response_id: str) -> None:
        for host in self._hosts:
            await host.cancelled_elsewhere(response_id)


async def test_a_response_cancelled_through_another_replica_stops_where_it_executes(repository: Repository) -> None:
    hosts: list[ResponseHost] = []
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), Finish("stop")], paced=True)
    here = ResponseManager(repository, engine, coordination=SharedCoordination(repository, hosts))
    there = ResponseManager(repository, ScriptedEngine([]), coordination=SharedCoordination(repository, hosts))
    execution = await here.create(CALLER, ResponseOptions(model="m", background=True))
    engine.step.set()
    seen: list[ResponseEvent] = []
    async for batch in execution.channel.follow():
        seen.extend(batch)
        if any(event.type == "response.output_text.delta" for event in batch):
            break
    cancelled = await there.cancel(CALLER, execution.response.id)
    assert cancelled.status is ResponseStatus.CANCELLED
    await asyncio.wait_for(execution.finished.wait(), 1.0)
    seen = [event async for batch in execution.channel.follow() for event in batch]
    assert engine.closed
    # Ended once, by the cancel: the execution's own end found it cancelled already.
    assert not any(event.type == "response.completed" for event in seen)
    assert sum(event.type == "response.output_text.delta" for event in seen) == 1
    assert repository.get_response(execution.response.id).status is ResponseStatus.CANCELLED


async def test_a_response_executing_on_another_replica_is_followed_from_storage_to_its_end(
    repository: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(response_service, "STORED_POLL", 0.01)
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), Finish("stop")], paced=True)
    here = ResponseManager(repository, engine)
    there = ResponseManager(repository, ScriptedEngine([]))
    execution = await here.create(CALLER, ResponseOptions(model="m", input=(user("hi"),), background=True))

    async def follow() -> list[list[ResponseEvent]]:
        return [batch async for batch in there.follow(CALLER, execution.response.id, 0, 0.02)]

    followed = asyncio.create_task(follow())
    await asyncio.sleep(0.1)
    while not execution.finished.is_set():
        engine.step.set()
        await asyncio.sleep(0.01)
    batches = await asyncio.wait_for(followed, 2.0)
    events = [event for batch in batches for event in batch]
    assert [] in batches  # heartbeats while it executed elsewhere
    assert [event.sequence_number for event in events] == list(range(1, len(events) + 1))
    assert events[0].type == "response.queued"
    assert events[-1].type == "response.completed"
    assert any(isinstance(e.data, ContentPartEvent) and e.data.text == "ab" for e in events)


async def test_stopping_fails_the_responses_still_running(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), Finish("stop")], paced=True)
    manager = ResponseManager(repository, engine)
    execution = await manager.create(CALLER, ResponseOptions(model="m"))
    await asyncio.sleep(0.05)
    await manager.stop(grace=0.05)
    stopped = repository.get_response(execution.response.id)
    assert stopped.status is ResponseStatus.FAILED
    assert stopped.error is not None
    assert stopped.error.code == "server_error"


async def test_another_projects_responses_are_not_found(repository: Repository) -> None:
    manager = ResponseManager(repository, ScriptedEngine([TextDelta("a"), Finish("stop")]))
    response, _ = await _events(manager, ResponseOptions(model="m"))
    other = Caller("proj_other")
    for call in (manager.get, manager.cancel, manager.delete):
        with pytest.raises(Exception, match="No response found"):
            await call(other, response.id)
    with pytest.raises(NotFoundError):
        await manager.create(other, ResponseOptions(model="m", previous_response_id=response.id))


async def test_a_restart_fails_the_responses_a_stopped_process_left(repository: Repository) -> None:
    repository.create_response(record(id="resp_left", status=ResponseStatus.IN_PROGRESS))
    repository.create_response(record(id="resp_done", status=ResponseStatus.COMPLETED))
    runs = RunManager(repository, ScriptedEngine([Finish("stop")]), RunSettings(expiry_sweep_interval=60))
    await runs.start()
    await runs.stop()
    left = repository.get_response("resp_left")
    assert left.status is ResponseStatus.FAILED
    assert left.error == LastError("server_error", "The server stopped while the response was in progress.")
    assert repository.get_response("resp_done").status is ResponseStatus.COMPLETED


async def test_a_context_too_long_for_the_window_fails_unless_truncation_is_auto(repository: Repository) -> None:
    # 75 prompt tokens of 100 (a quarter is the reply's); a word a token, 8 a message.
    engine = ScriptedEngine([TextDelta("A"), Finish("stop")], window=100)
    manager = ResponseManager(repository, engine)
    long = user(" ".join(f"w{n}" for n in range(60)))
    first, _ = await _events(manager, ResponseOptions(model="m", input=(long,)))
    second, events = await _events(
        manager, ResponseOptions(model="m", input=(user("short"),), previous_response_id=first.id)
    )
    assert [event.type for event in events[-2:]] == ["error", "response.failed"]
    assert second.status is ResponseStatus.FAILED
    assert second.error is not None
    assert second.error.code == "invalid_prompt"
    fitted, _ = await _events(
        manager,
        ResponseOptions(model="m", input=(user("short"),), previous_response_id=first.id, truncation="auto"),
    )
    assert fitted.status is ResponseStatus.COMPLETED
    assert fitted.truncation == "auto"
    # The oldest turn was left out: the long message.
    sent = engine.requests[-1].messages
    assert sent[-1] == ChatMessage("user", "short")
    assert all(message.content != long.content[0].value for message in sent)  # type: ignore[union-attr]


async def test_a_context_far_within_the_window_is_sent_uncounted(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("A"), Finish("stop")])
    response, _ = await _events(ResponseManager(repository, engine), ResponseOptions(model="m", input=(user("hi"),)))
    assert response.status is ResponseStatus.COMPLETED
    # No token was counted: the bytes alone show it fits (counting costs a model server round trips).
    assert engine.words.counted == []
    assert engine.requests[0].messages == (ChatMessage("user", "hi"),)
