"""The run layer on its own: its tables, events and their renderings, the context sent to engines,
and the lifecycle a run goes through, driven by a scripted engine over a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

import pytest

from sovereign_server import convert, sse
from sovereign_server.caller import Caller
from sovereign_server.engines import (
    Chunk,
    ContextOverflowError,
    EngineError,
    Finish,
    GenerationRequest,
    ImagePart,
    TextDelta,
    TextPart,
    ToolCallDelta,
    Usage,
)
from sovereign_server.errors import ConflictError
from sovereign_server.runs import (
    DONE,
    Event,
    EventChannel,
    EventName,
    RunManager,
    RunOptions,
    RunSettings,
    ToolOutput,
)
from sovereign_server.runs.channel import merge_text_deltas
from sovereign_server.runs.context import Context, ThreadHistory, generation_request
from sovereign_server.runs.execution import ALL_STEPS
from sovereign_server.runs.fitting import PROMPT_OVERHEAD
from sovereign_server.runs.model import MESSAGES, RUNS, STEPS, MessageDelta
from sovereign_storage import (
    DEFAULT_PROJECT_ID,
    FileCitation,
    FunctionCall,
    ImageUrlContent,
    IncompleteDetails,
    LastError,
    MessageRecord,
    MessageStatus,
    NewAssistant,
    NewMessage,
    NewRun,
    PageRequest,
    Repository,
    RunRecord,
    RunStatus,
    RunStepRecord,
    StepStatus,
    SubmitToolOutputs,
    TextContent,
    ToolCalls,
    TruncationStrategy,
    migrate,
    open_database,
)
from tests.conftest import reply_events

pytestmark = pytest.mark.unit

CALLER = Caller(DEFAULT_PROJECT_ID)


# ---------------------------------------------------------------- the transition tables


def test_a_run_changes_status_only_as_the_table_allows() -> None:
    assert RUNS.sources(RunStatus.IN_PROGRESS) == {RunStatus.QUEUED}
    assert RUNS.sources(RunStatus.QUEUED) == {RunStatus.REQUIRES_ACTION}
    assert RUNS.sources(RunStatus.CANCELLING) == {RunStatus.QUEUED, RunStatus.IN_PROGRESS, RunStatus.REQUIRES_ACTION}
    assert RUNS.sources(RunStatus.CANCELLED) == {RunStatus.CANCELLING}
    # What a restart ends and what expiry sweeps follow from the same table.
    assert RUNS.sources(RunStatus.FAILED) == {RunStatus.QUEUED, RunStatus.IN_PROGRESS}
    assert RUNS.sources(RunStatus.EXPIRED) == {RunStatus.QUEUED, RunStatus.REQUIRES_ACTION}
    for terminal in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.INCOMPLETE):
        assert not any(RUNS.allows(terminal, to) for to in RunStatus)
    assert not RUNS.allows(RunStatus.REQUIRES_ACTION, RunStatus.COMPLETED)


def test_every_status_change_names_its_event() -> None:
    for status in RunStatus:
        assert RUNS.event(status) == f"thread.run.{status}"
    for step_status in StepStatus:
        assert STEPS.event(step_status) == f"thread.run.step.{step_status}"
    assert STEPS.sources(StepStatus.COMPLETED) == {StepStatus.IN_PROGRESS}
    for message_status in MessageStatus:
        assert MESSAGES.event(message_status) == f"thread.message.{message_status}"
    assert MESSAGES.sources(MessageStatus.INCOMPLETE) == {MessageStatus.IN_PROGRESS}


def test_the_run_layer_imports_no_grpc_or_protobuf() -> None:
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, sovereign_server.runs, sovereign_server.engines.openai_compat, "
            "sovereign_server.engines.builtin; print(sorted(m for m in sys.modules "
            "if m.split('.')[0] in ('grpc', 'google', 'sovereign_assistant')))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


# ---------------------------------------------------------------- events


async def test_a_late_subscriber_sees_every_event_in_order() -> None:
    channel = EventChannel()
    first, second = Event(EventName.RUN_CREATED), Event(EventName.RUN_QUEUED)
    channel.publish(first)
    channel.publish(second)
    channel.close()
    assert [batch async for batch in channel.follow()] == [[first, second]]


async def test_followers_get_events_published_while_they_wait_then_stop_at_close() -> None:
    channel = EventChannel()

    async def produce() -> None:
        for name in (EventName.RUN_CREATED, EventName.RUN_QUEUED, EventName.RUN_IN_PROGRESS):
            await asyncio.sleep(0)
            channel.publish(Event(name))
        channel.close()

    producer = asyncio.create_task(produce())
    names = [event.name async for batch in channel.follow() for event in batch]
    await producer
    assert names == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]


def test_deltas_that_queued_up_leave_as_one_and_nothing_else_is_merged() -> None:
    def delta(text: str, message: str = "msg_1", index: int = 0) -> Event:
        return Event(EventName.MESSAGE_DELTA, MessageDelta(message, text, index))

    step = Event(EventName.STEP_COMPLETED)
    batch = [delta("a"), delta("b"), delta("c", index=1), delta("d", "msg_2"), step, delta("e"), delta("f")]
    assert merge_text_deltas(batch) == [delta("ab"), delta("c", index=1), delta("d", "msg_2"), step, delta("ef")]
    single = [delta("a")]
    assert merge_text_deltas(single) is single


async def test_silence_yields_empty_batches_as_heartbeats() -> None:
    channel = EventChannel()
    follower = channel.follow(heartbeat=0.01)
    assert await anext(follower) == []
    channel.publish(Event(EventName.RUN_CREATED))
    assert [event.name for event in await anext(follower)] == ["thread.run.created"]
    await follower.aclose()


def test_sse_frames_are_event_and_data_lines() -> None:
    frame = sse.frame(Event(EventName.MESSAGE_DELTA, MessageDelta("msg_1", "Hi")))
    head, data = frame.removesuffix(b"\n\n").split(b"\n")
    assert head == b"event: thread.message.delta"
    assert json.loads(data.removeprefix(b"data: ")) == {
        "id": "msg_1",
        "object": "thread.message.delta",
        "delta": {"content": [{"index": 0, "type": "text", "text": {"value": "Hi", "annotations": []}}]},
    }
    assert sse.frame(DONE) == b"event: done\ndata: [DONE]\n\n"


def test_typed_events_carry_the_payload_in_the_matching_field() -> None:
    event = convert.event_message(Event(EventName.MESSAGE_DELTA, MessageDelta("msg_1", "Hi")))
    assert event.event == "thread.message.delta"
    assert event.WhichOneof("data") == "message_delta"
    assert event.message_delta.delta.content[0].text.value == "Hi"
    assert convert.event_message(DONE).WhichOneof("data") is None


def test_a_delta_renders_the_same_json_directly_as_through_its_message() -> None:
    cited = FileCitation("[1]", 3, 6, "file_a", "a.txt")
    for delta in (MessageDelta("msg_1", "Hi \u00e9", index=2), MessageDelta("msg_1", " [1]", annotations=(cited,))):
        typed = convert.event_message(Event(EventName.MESSAGE_DELTA, delta)).message_delta
        assert convert.message_delta_json(delta) == convert.openai_json(typed)


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
        "truncation_strategy": TruncationStrategy(),
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": None,
    }
    return RunRecord(**(defaults | fields))


def _message(role: Literal["user", "assistant"], content: tuple[Any, ...], **fields: Any) -> MessageRecord:
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
    text = (TextContent("look"),)
    image = (ImageUrlContent("https://x/c.png"),)
    tool_step = RunStepRecord(
        id="step_1",
        created_at=0,
        run_id="run_1",
        thread_id="thread_1",
        assistant_id="asst_1",
        type="tool_calls",
        status=StepStatus.COMPLETED,
        step_details=ToolCalls((FunctionCall("call_1", "f", "{}", "42"),)),
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
        ("user", (TextPart("look"), ImagePart("https://x/c.png"))),
        ("assistant", ""),
        ("tool", "42"),
    ]
    # As a model that sees no images reads it.
    assert request.messages[1].text == "look\n[image: https://x/c.png]"
    assert request.messages[2].tool_calls[0].name == "f"
    assert request.messages[3].tool_call_id == "call_1"
    assert [tool.name for tool in request.tools] == ["f"]
    assert (request.temperature, request.max_completion_tokens, request.tool_choice) == (0.5, 300, "auto")


def test_context_leaves_out_the_runs_own_unfinished_reply() -> None:
    reply = _message("assistant", (), status=MessageStatus.IN_PROGRESS, run_id="run_1")
    request = generation_request(_run(instructions=None), [reply], [])
    assert request.messages == ()


# ---------------------------------------------------------------- lifecycle


class WordTokenizer:
    """A token per word; counts are worth keeping (it has a key), a whole prompt is not counted."""

    key: str | None = "words"
    image_tokens = 100

    def __init__(self) -> None:
        self.counted: list[str] = []

    async def count(self, texts: Sequence[str]) -> list[int]:
        self.counted += texts
        return [len(text.split()) for text in texts]

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        return None


class ScriptedEngine:
    """Yields the chunks it is given (a later turn yields the next of `later_turns`, if any);
    between chunks it waits for `step` when `paced` is set, and calls `before_finish` before the
    last one. Its window is `window` tokens, counted by a `WordTokenizer`."""

    name = "scripted"

    def __init__(
        self,
        chunks: Sequence[Chunk | Exception],
        *,
        paced: bool = False,
        window: int = 4096,
        later_turns: Sequence[Sequence[Chunk | Exception]] = (),
        before_finish: Callable[[], None] | None = None,
    ) -> None:
        self._turns = [chunks, *later_turns]
        self._window = window
        self.words = WordTokenizer()
        self._before_finish = before_finish
        self.paced = paced
        self.step = asyncio.Event()
        self.requests: list[GenerationRequest] = []
        self.closed = False

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        chunks = self._turns[min(len(self.requests), len(self._turns)) - 1]
        try:
            for chunk in chunks:
                if isinstance(chunk, Finish) and self._before_finish is not None:
                    self._before_finish()
                if self.paced:
                    await self.step.wait()
                    self.step.clear()
                if isinstance(chunk, ContextOverflowError) and chunk.window is not None:
                    self._window = chunk.window  # as a real engine learns the window it was told
                if isinstance(chunk, Exception):
                    raise chunk
                yield chunk
        finally:
            self.closed = True

    async def start(self) -> None:
        pass

    async def context_window(self, model: str) -> int:
        return self._window

    async def tokenizer(self, model: str) -> WordTokenizer:
        return self.words

    def backend_name(self, model: str) -> str:
        return self.name

    async def aclose(self) -> None:
        pass


@pytest.fixture
def repository(database: str) -> Iterator[Repository]:
    opened = open_database(database)
    migrate(opened)
    yield Repository(opened)
    opened.close()


async def _start(
    repository: Repository,
    engine: ScriptedEngine,
    *,
    messages: Sequence[str] = ("",),
    instructions: str | None = None,
    **options: Any,
) -> tuple[RunManager, RunRecord, EventChannel]:
    """A run on a new thread of `messages` (user and assistant in turn, the first a user's)."""
    manager = RunManager(repository, engine, RunSettings(expiry_sweep_interval=60))
    assistant = repository.create_assistant(NewAssistant(model="m", instructions=instructions))
    thread, _ = repository.create_thread({}, {}, [_stored(index, text) for index, text in enumerate(messages)])
    run, channel = await manager.create_run(CALLER, thread.id, RunOptions(assistant_id=assistant.id, **options))
    return manager, run, channel


def _stored(index: int, text: str) -> NewMessage:
    return NewMessage(role="assistant" if index % 2 else "user", content=(TextContent(text),) if text else ())


async def _names(channel: EventChannel) -> list[str]:
    return [event.name async for batch in channel.follow() for event in batch]


async def test_a_reply_goes_queued_in_progress_completed(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("Hi "), TextDelta("there"), Finish("stop", Usage(7, 2))])
    _, run, channel = await _start(repository, engine)
    assert run.status == "queued"
    assert await _names(channel) == reply_events(2)
    ended = repository.get_run(run.thread_id, run.id)
    assert ended.status == "completed"
    assert ended.usage == Usage(7, 2)
    reply = repository.thread_messages(run.thread_id)[-1]
    assert (reply.status, reply.content, reply.run_id) == ("completed", (TextContent("Hi there"),), run.id)


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
    assert waiting.required_action == SubmitToolOutputs((FunctionCall("call_1", "f", '{"a": 1}'),))


async def test_length_ends_the_run_incomplete(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), Finish("length", Usage(7, 1))])
    _, run, channel = await _start(repository, engine, max_completion_tokens=256)
    assert (await _names(channel))[-3:] == ["thread.run.step.completed", "thread.run.incomplete", "done"]
    ended = repository.get_run(run.thread_id, run.id)
    assert ended.incomplete_details == IncompleteDetails("max_completion_tokens")
    assert repository.thread_messages(run.thread_id)[-1].incomplete_details == IncompleteDetails("max_tokens")


async def test_a_newest_message_larger_than_max_prompt_tokens_never_reaches_the_engine(
    repository: Repository,
) -> None:
    engine = ScriptedEngine([Finish("stop")])
    _, run, channel = await _start(repository, engine, messages=["word " * 300], max_prompt_tokens=256)
    assert (await _names(channel))[-2:] == ["thread.run.incomplete", "done"]
    assert engine.requests == []
    assert repository.get_run(run.thread_id, run.id).incomplete_details == IncompleteDetails("max_prompt_tokens")


def _note(index: int) -> str:
    return f"note {index} " + "word " * 18  # 20 words: 28 tokens with the message overhead


async def test_a_thread_longer_than_the_window_sends_its_start_and_its_newest_messages(
    repository: Repository,
) -> None:
    engine = ScriptedEngine([TextDelta("ok"), Finish("stop")], window=512)
    notes = [_note(index) for index in range(500)]
    _, run, channel = await _start(repository, engine, messages=notes, instructions="Be brief.")
    assert (await _names(channel))[-2:] == ["thread.run.completed", "done"]
    (request,) = engine.requests
    sent = [message.content for message in request.messages]
    assert sent[:2] == ["Be brief.", notes[0]]
    kept = len(sent) - 2
    assert sent[2:] == notes[-kept:]
    # A quarter of the window stays free for the reply; the rest is filled, not more.
    usage = repository.get_run(run.thread_id, run.id).usage
    assert usage is not None
    assert 384 - 28 < usage.prompt_tokens <= 384


async def test_a_threads_messages_are_counted_once_across_runs(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("ok"), Finish("stop")], window=512)
    notes = [_note(index) for index in range(100)]
    manager, run, channel = await _start(repository, engine, messages=notes)
    await _names(channel)
    first_counted = list(engine.words.counted)
    # Only what the window reached was counted: the newest notes and the first, not all 100.
    assert notes[0] in first_counted
    assert notes[50] not in first_counted
    repository.create_message(run.thread_id, NewMessage(role="user", content=(TextContent("and now?"),)))
    engine.words.counted.clear()
    _, second = await manager.create_run(CALLER, run.thread_id, RunOptions(assistant_id=run.assistant_id))
    await _names(second)
    # The first run's reply and the new question were counted, and none of what was counted before.
    assert {"and now?", "ok"} <= set(engine.words.counted)
    assert not set(engine.words.counted) & set(first_counted)


async def test_max_prompt_tokens_narrows_what_is_sent(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("ok"), Finish("stop")], window=4096)
    notes = [_note(index) for index in range(100)]
    _, run, channel = await _start(repository, engine, messages=notes, max_prompt_tokens=300)
    await _names(channel)
    usage = repository.get_run(run.thread_id, run.id).usage
    assert usage is not None
    assert 300 - 28 < usage.prompt_tokens <= 300
    assert engine.requests[0].messages[-1].content == notes[-1]


async def test_last_messages_is_also_fitted_to_the_window(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("ok"), Finish("stop")], window=512)
    notes = [_note(index) for index in range(100)]
    strategy = TruncationStrategy("last_messages", 50)
    _, _, channel = await _start(repository, engine, messages=notes, truncation_strategy=strategy)
    await _names(channel)
    sent = [message.content for message in engine.requests[0].messages]
    # Fewer than 50 fit; the newest are kept, and the thread's start is outside the 50 asked for.
    assert 1 < len(sent) < 50
    assert sent == notes[-len(sent) :]


async def test_the_runs_own_unfinished_reply_is_left_out_without_ending_the_walk_back(
    repository: Repository,
) -> None:
    thread, notes = repository.create_thread({}, {}, [_stored(0, _note(index)) for index in range(3)])
    assistant = repository.create_assistant(NewAssistant(model="m"))
    run, _ = repository.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
    reply, _ = repository.open_reply(run)
    # A first page of the reply alone, older messages left to read.
    history = ThreadHistory(run, Context([reply], True, None, []), repository, WordTokenizer(), {})
    older = await history.older()
    assert [turn.id for turn in older] == [message.id for message in reversed(notes)]


async def test_a_server_refusing_the_prompt_for_its_smaller_window_gets_it_fitted_again(
    repository: Repository,
) -> None:
    overflow = ContextOverflowError("request (900 tokens) exceeds the available context size (256 tokens)", 256)
    engine = ScriptedEngine([overflow], later_turns=[[TextDelta("ok"), Finish("stop")]], window=1024)
    notes = [_note(index) for index in range(100)]
    _, _, channel = await _start(repository, engine, messages=notes)
    assert (await _names(channel))[-2:] == ["thread.run.completed", "done"]
    first, second = engine.requests
    assert len(second.messages) < len(first.messages)
    assert second.messages[-1].content == notes[-1]


async def test_an_overflow_the_server_gives_no_smaller_window_for_fails_the_run_clearly(
    repository: Repository,
) -> None:
    overflow = ContextOverflowError("The prompt does not fit the context window of the model server 'x'.")
    engine = ScriptedEngine([overflow])
    _, run, channel = await _start(repository, engine, messages=["hello"])
    assert (await _names(channel))[-2:] == ["thread.run.failed", "done"]
    failed = repository.get_run(run.thread_id, run.id)
    assert failed.last_error == LastError("invalid_prompt", overflow.message)


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
    assert failed.last_error == LastError("rate_limit_exceeded", "upstream down")
    reply = repository.thread_messages(run.thread_id)[-1]
    assert (reply.status, reply.content) == ("incomplete", (TextContent("par"),))


async def test_cancel_between_tokens_stops_the_engine_and_ends_cancelled(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), TextDelta("c"), Finish("stop")], paced=True)
    manager, run, channel = await _start(repository, engine)
    follower = channel.follow()
    seen: list[str] = []
    engine.step.set()  # lets exactly one token out
    while "thread.message.delta" not in seen:
        seen += [event.name for event in await anext(follower)]
    cancelling = await manager.cancel_run(CALLER, run.thread_id, run.id)
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
    assert stopped.last_error == LastError("server_error", "The server stopped while the run was in progress.")


async def test_cancel_interrupts_an_engine_that_sends_nothing(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("a"), TextDelta("b"), Finish("stop")], paced=True)
    manager, run, channel = await _start(repository, engine)
    follower = channel.follow()
    seen: list[str] = []
    engine.step.set()  # one token, then the engine stalls
    while "thread.message.delta" not in seen:
        seen += [event.name for event in await anext(follower)]
    await manager.cancel_run(CALLER, run.thread_id, run.id)
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
    frame = sse.frame(error)
    assert frame.startswith(b"event: error\ndata: ")
    assert b'"type":"server_error"' in frame
    assert b"disk on fire" not in frame  # internals stay in the server's log
    failed = repository.get_run(run.thread_id, run.id)
    assert failed.status == "failed"
    assert failed.last_error == LastError("server_error", "The server had an error while processing the run.")


async def test_tool_outputs_resume_the_run_with_the_calls_and_their_results(repository: Repository) -> None:
    engine = ScriptedEngine(
        [ToolCallDelta(0, "call_1", "f", '{"a": 1}'), Finish("tool_calls", Usage(7, 2))],
        later_turns=[[TextDelta("It is 42."), Finish("stop", Usage(20, 3))]],
    )
    manager, run, channel = await _start(repository, engine)
    await _names(channel)

    queued, resumed = await manager.submit_tool_outputs(CALLER, run.thread_id, run.id, [ToolOutput("call_1", "42")])
    assert queued.status == "queued"
    assert queued.required_action is None
    names = await _names(resumed)
    assert names[:3] == ["thread.run.step.completed", "thread.run.queued", "thread.run.in_progress"]
    assert names[-2:] == ["thread.run.completed", "done"]

    ended = repository.get_run(run.thread_id, run.id)
    assert (ended.status, ended.usage) == ("completed", Usage(27, 5))
    tool_step = repository.list_steps(run.thread_id, run.id, ALL_STEPS).items[0]
    assert tool_step.step_details == ToolCalls((FunctionCall("call_1", "f", '{"a": 1}', "42"),))
    assert (tool_step.status, tool_step.usage) == ("completed", Usage(7, 2))
    turns = engine.requests[1].messages
    assert [(turn.role, turn.content) for turn in turns[-2:]] == [("assistant", ""), ("tool", "42")]


async def test_cancelling_a_run_that_waits_for_tool_outputs_ends_it_and_its_tool_step(
    repository: Repository,
) -> None:
    engine = ScriptedEngine([ToolCallDelta(0, "call_1", "f", "{}"), Finish("tool_calls", Usage(7, 2))])
    manager, run, channel = await _start(repository, engine)
    await _names(channel)

    cancelling = await manager.cancel_run(CALLER, run.thread_id, run.id)
    assert cancelling.status == "cancelling"
    for _ in range(100):
        if repository.get_run(run.thread_id, run.id).status == "cancelled":
            break
        await asyncio.sleep(0.01)
    cancelled = repository.get_run(run.thread_id, run.id)
    assert (cancelled.status, cancelled.required_action, cancelled.usage) == ("cancelled", None, Usage(7, 2))
    (tool_step,) = repository.list_steps(run.thread_id, run.id, ALL_STEPS).items
    assert (tool_step.status, tool_step.cancelled_at is not None) == ("cancelled", True)
    with pytest.raises(ConflictError, match="do not accept tool outputs"):
        await manager.submit_tool_outputs(CALLER, run.thread_id, run.id, [ToolOutput("call_1", "42")])


async def test_a_cancel_that_lands_after_the_last_token_still_ends_the_run_cancelled(
    repository: Repository,
) -> None:
    cancelled_elsewhere: list[str] = []

    def cancel_behind_the_executions_back() -> None:
        # As a concurrent cancel would: the run moves to cancelling between two of its writes.
        (run,) = repository.list_runs(thread_id, PageRequest()).items
        moved = repository.transition_run(run.id, RunStatus.CANCELLING, [RunStatus.IN_PROGRESS])
        cancelled_elsewhere.append(moved.record.status)

    engine = ScriptedEngine(
        [TextDelta("Hi"), Finish("stop", Usage(7, 1))], before_finish=cancel_behind_the_executions_back
    )
    manager = RunManager(repository, engine, RunSettings(expiry_sweep_interval=60))
    assistant = repository.create_assistant(NewAssistant(model="m"))
    thread, _ = repository.create_thread({}, {}, [])
    thread_id = thread.id
    run, channel = await manager.create_run(CALLER, thread.id, RunOptions(assistant_id=assistant.id))

    names = await _names(channel)
    assert cancelled_elsewhere == ["cancelling"]
    # The reply is finished and kept; the run does not claim to have completed.
    assert names[-4:] == ["thread.message.completed", "thread.run.step.completed", "thread.run.cancelled", "done"]
    assert "thread.run.completed" not in names
    ended = repository.get_run(run.thread_id, run.id)
    assert (ended.status, ended.usage) == ("cancelled", Usage(7, 1))


class Reports:
    """A run observer that keeps what it is told."""

    def __init__(self) -> None:
        self.ended: list[tuple[str, str, Usage]] = []
        self.first_tokens: list[tuple[str, str]] = []
        self.gaps = 0
        self.failures: list[str] = []

    def stretch_ended(self, caller: Caller, run: RunRecord, usage: Usage) -> None:
        self.ended.append((caller.project_id, run.status, usage))

    def token_timing(self, model: str, backend: str) -> Reports.Timing:
        return Reports.Timing(self, model, backend)

    class Timing:
        def __init__(self, reports: Reports, model: str, backend: str) -> None:
            self._reports, self._model, self._backend = reports, model, backend

        def first_token(self, seconds: float) -> None:
            assert seconds >= 0
            self._reports.first_tokens.append((self._model, self._backend))

        def token_gap(self, seconds: float) -> None:
            self._reports.gaps += 1

    def engine_failed(self, code: str) -> None:
        self.failures.append(code)


async def test_the_observer_hears_of_first_tokens_gaps_failures_and_each_stretchs_usage(
    repository: Repository,
) -> None:
    reports = Reports()
    engine = ScriptedEngine(
        [TextDelta("a"), TextDelta("b"), TextDelta("c"), Finish("stop", Usage(7, 3))],
        later_turns=[[TextDelta("x"), EngineError("down", code="rate_limit_exceeded")]],
    )
    manager = RunManager(repository, engine, RunSettings(expiry_sweep_interval=60), observer=reports)
    assistant = repository.create_assistant(NewAssistant(model="m"))
    for _ in range(2):
        thread, _ = repository.create_thread({}, {}, [])
        _, channel = await manager.create_run(CALLER, thread.id, RunOptions(assistant_id=assistant.id))
        await _names(channel)
    # A failed stretch bills what it sent: the fitted prompt (of an empty thread, the template's
    # fixed share) and the fragment that came.
    assert reports.ended == [
        (DEFAULT_PROJECT_ID, "completed", Usage(7, 3)),
        (DEFAULT_PROJECT_ID, "failed", Usage(PROMPT_OVERHEAD, 1)),
    ]
    assert reports.first_tokens == [("m", "scripted"), ("m", "scripted")]
    assert reports.gaps == 2
    assert reports.failures == ["rate_limit_exceeded"]


async def test_the_reply_opens_with_the_run_and_is_removed_if_the_model_calls_a_tool_instead(
    repository: Repository,
) -> None:
    engine = ScriptedEngine([ToolCallDelta(0, "call_1", "f", "{}"), Finish("tool_calls", Usage(7, 1))], paced=True)
    _, run, channel = await _start(repository, engine)
    # Before any token the reply already exists, so the first token needs no write of its own.
    opened = [m for m in repository.thread_messages(run.thread_id) if m.run_id == run.id]
    assert [(m.role, m.status, m.content) for m in opened] == [("assistant", "in_progress", ())]
    engine.step.set()
    follower = channel.follow()
    seen = [event.name for event in await anext(follower)]
    while "thread.run.step.delta" not in seen:
        engine.step.set()
        seen += [event.name for event in await anext(follower)]
    engine.step.set()
    seen += [event.name async for batch in follower for event in batch]
    # Nothing ever named it, and it is gone: the run's only step is its tool calls.
    assert "thread.message.created" not in seen
    assert [m for m in repository.thread_messages(run.thread_id) if m.run_id == run.id] == []
    steps = repository.list_steps(run.thread_id, run.id, ALL_STEPS).items
    assert [step.type for step in steps] == ["tool_calls"]


async def test_a_run_cancelled_before_its_first_token_leaves_no_reply(repository: Repository) -> None:
    engine = ScriptedEngine([TextDelta("late"), Finish("stop")], paced=True)
    manager, run, channel = await _start(repository, engine)
    await manager.cancel_run(CALLER, run.thread_id, run.id)
    names = await _names(channel)
    assert names[-2:] == ["thread.run.cancelled", "done"]
    assert "thread.message.created" not in names
    assert [m for m in repository.thread_messages(run.thread_id) if m.run_id == run.id] == []
    assert repository.list_steps(run.thread_id, run.id, ALL_STEPS).items == []
