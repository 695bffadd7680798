"""The run layer on its own: events and their renderings, the context sent to engines, and the
lifecycle a run goes through, driven by a scripted engine over a real SQLite file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sovereign_assistant.v1 import run_service_pb2
from sovereign_server import convert
from sovereign_server.engines import (
    Chunk,
    EngineError,
    Finish,
    GenerationRequest,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from sovereign_server.runs import RunManager, RunSettings
from sovereign_server.runs.context import generation_request
from sovereign_server.runs.events import DONE_EVENT, EventChannel, RunEvent
from sovereign_storage import (
    MessageRecord,
    NewAssistant,
    NewMessage,
    Repository,
    RunRecord,
    RunStepRecord,
    migrate,
    open_database,
)
from tests.conftest import reply_events

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- events


async def test_a_late_subscriber_sees_every_event_in_order() -> None:
    channel = EventChannel()
    first, second = RunEvent("a"), RunEvent("b")
    channel.publish(first)
    channel.publish(second)
    channel.close()
    assert [batch async for batch in channel.follow()] == [[first, second]]


async def test_followers_get_events_published_while_they_wait_then_stop_at_close() -> None:
    channel = EventChannel()

    async def produce() -> None:
        for name in ("a", "b", "c"):
            await asyncio.sleep(0)
            channel.publish(RunEvent(name))
        channel.close()

    producer = asyncio.create_task(produce())
    names = [event.name async for batch in channel.follow() for event in batch]
    await producer
    assert names == ["a", "b", "c"]


async def test_silence_yields_empty_batches_as_heartbeats() -> None:
    channel = EventChannel()
    follower = channel.follow(heartbeat=0.01)
    assert await anext(follower) == []
    channel.publish(RunEvent("a"))
    assert [event.name for event in await anext(follower)] == ["a"]
    await follower.aclose()


def test_sse_frames_are_event_and_data_lines() -> None:
    delta = RunEvent("thread.message.delta", "message_delta", convert.message_delta("msg_1", "Hi"))
    frame = delta.to_sse()
    head, data = frame.removesuffix(b"\n\n").split(b"\n")
    assert head == b"event: thread.message.delta"
    assert json.loads(data.removeprefix(b"data: ")) == {
        "id": "msg_1",
        "object": "thread.message.delta",
        "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "Hi", "annotations": []}}]},
    }
    assert DONE_EVENT.to_sse() == b"event: done\ndata: [DONE]\n\n"


def test_typed_events_carry_the_payload_in_the_matching_field() -> None:
    event = RunEvent("thread.message.delta", "message_delta", convert.message_delta("msg_1", "Hi")).to_proto()
    assert event.event == "thread.message.delta"
    assert event.WhichOneof("data") == "message_delta"
    assert event.message_delta.delta.content[0].text.value == "Hi"
    assert DONE_EVENT.to_proto().WhichOneof("data") is None


# ---------------------------------------------------------------- context


def _run(**fields: Any) -> RunRecord:
    defaults: dict[str, Any] = {
        "id": "run_1",
        "created_at": 0,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "status": "in_progress",
        "model": "m",
        "instructions": "Be brief.",
        "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "code_interpreter"}],
        "metadata": {},
        "required_action": None,
        "last_error": None,
        "expires_at": None,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "usage": None,
        "temperature": 0.5,
        "top_p": None,
        "max_prompt_tokens": None,
        "max_completion_tokens": 300,
        "truncation_strategy": None,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": None,
    }
    return RunRecord(**(defaults | fields))


def _message(role: str, content: list[dict[str, Any]], **fields: Any) -> MessageRecord:
    defaults: dict[str, Any] = {
        "id": "msg",
        "created_at": 0,
        "thread_id": "thread_1",
        "status": "completed",
        "incomplete_details": None,
        "completed_at": 0,
        "incomplete_at": None,
        "assistant_id": None,
        "run_id": None,
        "attachments": [],
        "metadata": {},
    }
    return MessageRecord(role=role, content=content, **(defaults | fields))


def test_context_is_instructions_then_messages_then_tool_rounds() -> None:
    text = [{"type": "text", "text": {"value": "look", "annotations": []}}]
    image = [{"type": "image_url", "image_url": {"url": "https://x/c.png"}}]
    tool_step = RunStepRecord(
        id="step_1",
        created_at=0,
        run_id="run_1",
        thread_id="thread_1",
        assistant_id="asst_1",
        type="tool_calls",
        status="completed",
        step_details={
            "type": "tool_calls",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}", "output": "42"}}
            ],
        },
        last_error=None,
        expired_at=None,
        cancelled_at=None,
        failed_at=None,
        completed_at=0,
        metadata={},
        usage=None,
    )
    request = generation_request(_run(), [_message("user", text + image)], [tool_step])
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."),
        ("user", "look\n[image: https://x/c.png]"),
        ("assistant", ""),
        ("tool", "42"),
    ]
    assert request.messages[2].tool_calls[0].name == "f"
    assert request.messages[3].tool_call_id == "call_1"
    assert [tool.name for tool in request.tools] == ["f"]
    assert (request.temperature, request.max_completion_tokens, request.tool_choice) == (0.5, 300, "auto")


def test_context_leaves_out_the_runs_own_unfinished_reply() -> None:
    reply = _message("assistant", [], status="in_progress", run_id="run_1")
    request = generation_request(_run(instructions=None), [reply], [])
    assert request.messages == ()


# ---------------------------------------------------------------- lifecycle


class ScriptedEngine:
    """Yields the chunks it is given; between chunks it waits for `step` when `paced` is set."""

    name = "scripted"

    def __init__(self, chunks: Sequence[Chunk | Exception], *, paced: bool = False, prompt_tokens: int = 7) -> None:
        self._chunks = chunks
        self._prompt_tokens = prompt_tokens
        self.paced = paced
        self.step = asyncio.Event()
        self.requests: list[GenerationRequest] = []
        self.closed = False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        try:
            for chunk in self._chunks:
                if self.paced:
                    await self.step.wait()
                    self.step.clear()
                if isinstance(chunk, Exception):
                    raise chunk
                yield chunk
        finally:
            self.closed = True

    async def start(self) -> None:
        pass

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return self._prompt_tokens

    async def aclose(self) -> None:
        pass


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    database = open_database(str(tmp_path / "runs.sqlite3"))
    migrate(database)
    return Repository(database)


async def _start(repository: Repository, engine: ScriptedEngine, **request: Any) -> tuple[RunManager, Any, Any]:
    manager = RunManager(repository, engine, RunSettings(expiry_sweep_interval=60))
    assistant = repository.create_assistant(NewAssistant(model="m"))
    thread, _ = repository.create_thread({}, {}, [NewMessage(role="user", content=[])])
    run, channel = await manager.create_run(
        run_service_pb2.CreateRunRequest(thread_id=thread.id, assistant_id=assistant.id, **request)
    )
    return manager, run, channel


async def _names(channel: EventChannel) -> list[str]:
    return [event.name async for batch in channel.follow() for event in batch]


async def test_a_reply_goes_queued_in_progress_completed(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("Hi "), TextDelta("there"), Finish("stop", Usage(7, 2))])
    _, run, channel = await _start(repository, engine)
    assert run.status == "queued"
    assert await _names(channel) == reply_events(2)
    ended = repository.get_run(run.thread_id, run.id)
    assert ended.status == "completed"
    assert ended.usage == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    reply = repository.thread_messages(run.thread_id)[-1]
    assert (reply.status, reply.content[0]["text"]["value"], reply.run_id) == ("completed", "Hi there", run.id)


async def test_tool_calls_park_the_run_in_requires_action(repository: Repository) -> None:
    engine = ScriptedEngine(
        [
            ToolCallDelta(0, "call_1", "f", ""),
            ToolCallDelta(0, arguments='{"a": '),
            ToolCallDelta(0, arguments="1}"),
            Finish("tool_calls", Usage(7, 2)),
        ]
    )
    _, run, channel = await _start(repository, engine)
    names = await _names(channel)
    assert names[-2:] == ["thread.run.requires_action", "done"]
    assert names.count("thread.run.step.delta") == 3
    waiting = repository.get_run(run.thread_id, run.id)
    assert waiting.status == "requires_action"
    assert waiting.required_action == {
        "type": "submit_tool_outputs",
        "submit_tool_outputs": {
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]
        },
    }


async def test_length_ends_the_run_incomplete(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), Finish("length", Usage(7, 1))])
    _, run, channel = await _start(repository, engine, max_completion_tokens=256)
    assert (await _names(channel))[-3:] == ["thread.run.step.completed", "thread.run.incomplete", "done"]
    ended = repository.get_run(run.thread_id, run.id)
    assert ended.incomplete_details == {"reason": "max_completion_tokens"}
    assert repository.thread_messages(run.thread_id)[-1].incomplete_details == {"reason": "max_tokens"}


async def test_a_prompt_over_max_prompt_tokens_never_reaches_the_engine(repository: Repository) -> None:
    engine = ScriptedEngine([Finish("stop")], prompt_tokens=1000)
    _, run, channel = await _start(repository, engine, max_prompt_tokens=256)
    assert (await _names(channel))[-2:] == ["thread.run.incomplete", "done"]
    assert engine.requests == []
    assert repository.get_run(run.thread_id, run.id).incomplete_details == {"reason": "max_prompt_tokens"}


async def test_an_engine_error_fails_the_run_and_keeps_the_partial_reply(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("par"), EngineError("upstream down", code="rate_limit_exceeded")])
    _, run, channel = await _start(repository, engine)
    assert (await _names(channel))[-4:] == [
        "thread.message.incomplete",
        "thread.run.step.failed",
        "thread.run.failed",
        "done",
    ]
    failed = repository.get_run(run.thread_id, run.id)
    assert failed.last_error == {"code": "rate_limit_exceeded", "message": "upstream down"}
    reply = repository.thread_messages(run.thread_id)[-1]
    assert (reply.status, reply.content[0]["text"]["value"]) == ("incomplete", "par")


async def test_cancel_between_tokens_stops_the_engine_and_ends_cancelled(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), TextDelta("c"), Finish("stop")], paced=True)
    manager, run, channel = await _start(repository, engine)
    follower = channel.follow()
    seen: list[str] = []
    engine.step.set()  # lets exactly one token out
    while "thread.message.delta" not in seen:
        seen += [event.name for event in await anext(follower)]
    cancelling = await manager.cancel_run(run.thread_id, run.id)
    assert cancelling.status == "cancelling"
    engine.step.set()
    seen += [event.name async for batch in follower for event in batch]
    assert seen.count("thread.message.delta") == 1
    assert seen[-5:] == [
        "thread.run.cancelling",
        "thread.message.incomplete",
        "thread.run.step.cancelled",
        "thread.run.cancelled",
        "done",
    ]
    assert engine.closed
    assert repository.get_run(run.thread_id, run.id).status == "cancelled"


async def test_stop_ends_unfinished_runs_as_interrupted(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), Finish("stop")], paced=True)
    manager, run, _ = await _start(repository, engine)
    await asyncio.sleep(0.05)
    await manager.stop(grace=0.05)
    stopped = repository.get_run(run.thread_id, run.id)
    assert stopped.status == "failed"
    assert stopped.last_error == {
        "code": "server_error",
        "message": "The server stopped while the run was in progress.",
    }


async def test_cancel_interrupts_an_engine_that_sends_nothing(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), Finish("stop")], paced=True)
    manager, run, channel = await _start(repository, engine)
    follower = channel.follow()
    seen: list[str] = []
    engine.step.set()  # one token, then the engine stalls
    while "thread.message.delta" not in seen:
        seen += [event.name for event in await anext(follower)]
    await manager.cancel_run(run.thread_id, run.id)
    # No further step: the cancel alone must end the wait for the engine.
    seen += [event.name async for batch in follower for event in batch]
    assert seen.count("thread.message.delta") == 1
    assert seen[-2:] == ["thread.run.cancelled", "done"]
    assert engine.closed
    assert repository.get_run(run.thread_id, run.id).status == "cancelled"


async def test_an_unexpected_failure_mid_stream_is_an_error_event_and_a_failed_run(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), RuntimeError("disk on fire")])
    _, run, channel = await _start(repository, engine)
    events = [event async for batch in channel.follow() for event in batch]
    names = [event.name for event in events]
    assert names[-5:] == ["error", "thread.message.incomplete", "thread.run.step.failed", "thread.run.failed", "done"]
    error = next(event for event in events if event.name == "error")
    frame = error.to_sse()
    assert frame.startswith(b"event: error\ndata: ")
    assert b'"type":"server_error"' in frame
    assert b"disk on fire" not in frame  # internals stay in the server's log
    failed = repository.get_run(run.thread_id, run.id)
    assert failed.status == "failed"
    assert failed.last_error == {"code": "server_error", "message": "The server had an error while processing the run."}
