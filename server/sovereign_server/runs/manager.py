"""Creating, executing, resuming and cancelling runs.

Each stretch of a run's execution (from `queued` until it ends or waits for tool outputs) is a
background task, independent of any client connection: a caller that disconnects does not stop
it, and one that polls sees it finish. The task publishes OpenAI's events on an `EventChannel`
that the transports render; the same task writes every state change to storage first, so what a
poller reads never runs behind what a stream has said.
"""

from __future__ import annotations

import asyncio
import logging
import time
from asyncio import to_thread
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sovereign_server import convert, validation
from sovereign_server.engines import Chunk, Engine, EngineError, Finish, TextDelta, ToolCallDelta
from sovereign_server.errors import ConflictError, InvalidRequestError, ServerError
from sovereign_server.runs.context import generation_request, last_messages
from sovereign_server.runs.events import DONE_EVENT, EventChannel, RunEvent
from sovereign_storage import (
    ACTIVE_RUN_STATUSES,
    AssistantRecord,
    MessageRecord,
    NewStep,
    PageRequest,
    Repository,
    RunRecord,
    RunStepRecord,
    ThreadRecord,
)

logger = logging.getLogger("sovereign.runs")

INTERRUPTED_MESSAGE = "The server stopped while the run was in progress."
ENGINE_FAILURE_MESSAGE = "The server had an error while processing the run."
# OpenAI lists at most 100 steps a page; a run with more tool rounds than that is not expected.
ALL_STEPS = PageRequest(limit=100, order="asc")


@dataclass(frozen=True)
class RunSettings:
    # Seconds a run may wait (queued, or for tool outputs) before it expires, as OpenAI's 10 minutes.
    expires_in: int = 600
    # Seconds of silence on a stream before a `: keep-alive` comment.
    heartbeat: float = 15.0
    # Seconds between writes of the replies being generated, so `messages.retrieve` shows the text
    # so far. One transaction writes them all: per-reply writes made SQLite's one writer the limit.
    flush_interval: float = 0.25
    # Seconds between sweeps for runs past `expires_at`.
    expiry_sweep_interval: float = 1.0


def _now() -> int:
    return int(time.time())


def run_event(name: str, run: RunRecord) -> RunEvent:
    return RunEvent(name, "run", convert.run_message(run))


def step_event(name: str, step: RunStepRecord) -> RunEvent:
    return RunEvent(name, "step", convert.step_message(step))


def message_event(name: str, message: MessageRecord) -> RunEvent:
    return RunEvent(name, "message", convert.message_message(message))


def thread_event(thread: ThreadRecord) -> RunEvent:
    return RunEvent("thread.created", "thread", convert.thread_message(thread))


def _text_content(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": text, "annotations": []}}]


# A run marked in progress (None if it was no longer queued), with its thread's messages and its steps.
_Begun = tuple[RunRecord | None, list[MessageRecord], list[RunStepRecord]]


@dataclass
class _Execution:
    """A running stretch of a run, and whether a caller asked to cancel it."""

    channel: EventChannel
    task: asyncio.Task[None] | None = None
    cancel_requested: bool = False
    # True while the task waits for the engine's next chunk: only then may a cancel interrupt it
    # (elsewhere it may be mid-write, and a write cut off would leave records half-updated).
    waiting_for_engine: bool = False

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self.waiting_for_engine and self.task is not None:
            # The engine stops at once, closing its upstream request, even if no token comes.
            self.task.cancel()


@dataclass
class _Reply:
    """What one generation has produced so far."""

    message: MessageRecord | None = None
    message_step: RunStepRecord | None = None
    text: list[str] = field(default_factory=list)
    tool_step: RunStepRecord | None = None
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Usage of the run's earlier generations (from its steps) and of this one so far, so that a run
    # ended early (failed, cancelled) still reports what it consumed.
    earlier_usage: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def usage(self) -> dict[str, int]:
        return _usage_sum([*self.earlier_usage, convert.usage_dict(self.prompt_tokens, self.completion_tokens)])

    def open_steps(self) -> list[RunStepRecord]:
        return [step for step in (self.message_step, self.tool_step) if step is not None]


class RunManager:
    def __init__(self, repository: Repository, engine: Engine, settings: RunSettings | None = None) -> None:
        self._repository = repository
        self._engine = engine
        self.settings = settings or RunSettings()
        self._executions: dict[str, _Execution] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        # Replies with text not yet written, by message id.
        self._growing: dict[str, _Reply] = {}
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life of the manager

    async def start(self) -> None:
        """Ends the runs a previous process left unfinished, then starts the expiry sweeper."""
        ended = await to_thread(self._repository.fail_interrupted_runs, INTERRUPTED_MESSAGE)
        if ended:
            logger.warning("ended %d run(s) interrupted by the previous shutdown: %s", len(ended), ", ".join(ended))
        self._sweeper = asyncio.create_task(self._sweep_expired(), name="run-expiry")
        self._flusher = asyncio.create_task(self._flush_growing(), name="reply-flusher")

    async def stop(self, grace: float = 5.0) -> None:
        """Lets running executions finish for `grace` seconds, then ends the rest as interrupted."""
        for background in (self._sweeper, self._flusher):
            if background is not None:
                background.cancel()
        tasks = [execution.task for execution in self._executions.values() if execution.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await to_thread(self._repository.fail_interrupted_runs, INTERRUPTED_MESSAGE)
        await self._engine.aclose()

    async def _sweep_expired(self) -> None:
        while True:
            await asyncio.sleep(self.settings.expiry_sweep_interval)
            try:
                expired = await to_thread(self._repository.expire_runs, _now())
            except Exception:
                logger.exception("expiry sweep failed")
                continue
            for run in expired:
                logger.info("run %s expired", run.id)

    async def _flush_growing(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            if not self._growing:
                continue
            texts = {message_id: _text_content("".join(reply.text)) for message_id, reply in self._growing.items()}
            self._growing.clear()
            try:
                await to_thread(self._repository.update_growing_messages, texts)
            except Exception:
                logger.exception("writing replies in progress failed")

    # ------------------------------------------------------------------ what callers ask for

    async def create_run(self, request: Any) -> tuple[RunRecord, EventChannel]:
        """Queues a run from a CreateRunRequest and starts executing it."""

        def queue_and_begin() -> tuple[RunRecord, _Begun]:
            # One trip to the database thread, from the request to a run in progress with its
            # context read: the time to the first token is mostly such trips.
            self._repository.get_thread(request.thread_id)
            new_run = convert.new_run(request, self._assistant(request.assistant_id))
            additional = convert.new_messages(request.additional_messages, "additional_messages")
            with self._repository.batch():
                run = self._repository.create_run(request.thread_id, new_run, additional, self.settings.expires_in)[0]
                return run, self._begin(run, fresh=True)

        run, begun = await to_thread(queue_and_begin)
        events = [run_event("thread.run.created", run), run_event("thread.run.queued", run)]
        if begun[0] is not None:
            # Already started: the three events leave together, one write to the stream fewer.
            events.append(run_event("thread.run.in_progress", begun[0]))
        return run, self._launch(run, events, begun)

    async def create_thread_and_run(self, request: Any) -> tuple[RunRecord, EventChannel]:
        """Creates a thread from a CreateThreadAndRunRequest, queues a run on it and starts it."""
        assistant = await to_thread(self._assistant, request.assistant_id)
        new_run = convert.new_run(request, assistant)
        thread_request = request.thread
        messages = convert.new_messages(thread_request.messages, "thread.messages")
        tool_resources = validation.check_tool_resources(convert.from_value(thread_request, "tool_resources"))
        metadata = validation.check_metadata(dict(thread_request.metadata), "thread.metadata")
        thread, run = await to_thread(
            self._repository.create_thread_and_run,
            tool_resources,
            metadata,
            messages,
            new_run,
            self.settings.expires_in,
        )
        events = [thread_event(thread), run_event("thread.run.created", run), run_event("thread.run.queued", run)]
        return run, self._launch(run, events)

    async def submit_tool_outputs(
        self, thread_id: str, run_id: str, outputs: Sequence[tuple[str, str]]
    ) -> tuple[RunRecord, EventChannel]:
        """Records the outputs of the calls a run waits for, and resumes it."""
        run = await to_thread(self._repository.get_run, thread_id, run_id)
        if run.status != "requires_action" or run.required_action is None:
            raise ConflictError(f'Runs in status "{run.status}" do not accept tool outputs.', code="invalid_state")
        calls = run.required_action["submit_tool_outputs"]["tool_calls"]
        given = validation.check_tool_outputs(outputs, [call["id"] for call in calls])
        step = await self._waiting_tool_step(thread_id, run_id)
        queued = await to_thread(
            self._repository.update_run,
            run_id,
            {"status": "queued", "required_action": None},
            expected_statuses=("requires_action",),
        )
        if queued is None:
            current = await to_thread(self._repository.get_run, thread_id, run_id)
            raise ConflictError(f'Runs in status "{current.status}" do not accept tool outputs.', code="invalid_state")
        events = [run_event("thread.run.queued", queued)]
        if step is not None:
            details = dict(step.step_details)
            details["tool_calls"] = [
                {**call, "function": {**call["function"], "output": given.get(call["id"])}}
                for call in details.get("tool_calls", [])
            ]
            completed = await to_thread(
                self._repository.update_step,
                step.id,
                {"step_details": details, "status": "completed", "completed_at": _now()},
            )
            events.insert(0, step_event("thread.run.step.completed", completed))
        return queued, self._launch(queued, events)

    async def cancel_run(self, thread_id: str, run_id: str) -> RunRecord:
        """Moves an active run to `cancelling`; its execution stops the engine and ends it `cancelled`."""
        run = await to_thread(self._repository.get_run, thread_id, run_id)
        if run.status not in ACTIVE_RUN_STATUSES:
            raise ConflictError(f"Cannot cancel run with status '{run.status}'.", code="invalid_state")
        if run.status == "cancelling":
            return run
        cancelling = await to_thread(
            self._repository.update_run,
            run_id,
            {"status": "cancelling"},
            expected_statuses=tuple(status for status in ACTIVE_RUN_STATUSES if status != "cancelling"),
        )
        if cancelling is None:
            current = await to_thread(self._repository.get_run, thread_id, run_id)
            if current.status == "cancelling":
                return current
            raise ConflictError(f"Cannot cancel run with status '{current.status}'.", code="invalid_state")
        execution = self._executions.get(run_id)
        if execution is not None:
            execution.request_cancel()
            execution.channel.publish(run_event("thread.run.cancelling", cancelling))
        else:
            # Nothing is executing (the run waits for tool outputs): end it here.
            self._keep(asyncio.create_task(self._end_cancelled(cancelling, _Reply())))
        return cancelling

    def _assistant(self, assistant_id: str) -> AssistantRecord:
        if not assistant_id:
            raise InvalidRequestError(
                "Missing required parameter: 'assistant_id'.", param="assistant_id", code="missing_required_parameter"
            )
        return self._repository.get_assistant(assistant_id)

    async def _waiting_tool_step(self, thread_id: str, run_id: str) -> RunStepRecord | None:
        steps = (await to_thread(self._repository.list_steps, thread_id, run_id, ALL_STEPS)).items
        waiting = [step for step in steps if step.type == "tool_calls" and step.status == "in_progress"]
        return waiting[-1] if waiting else None

    def _keep(self, task: asyncio.Task[None]) -> None:
        # The event loop keeps only weak references to tasks.
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _launch(self, run: RunRecord, events: list[RunEvent], begun: _Begun | None = None) -> EventChannel:
        channel = EventChannel()
        for event in events:
            channel.publish(event)
        execution = _Execution(channel)
        self._executions[run.id] = execution
        execution.task = asyncio.create_task(self._execute(run, execution, begun), name=f"run-{run.id}")
        return channel

    # ------------------------------------------------------------------ execution

    async def _execute(self, run: RunRecord, execution: _Execution, begun: _Begun | None) -> None:
        channel = execution.channel
        reply = _Reply()
        try:
            if begun is None:
                begun = await to_thread(self._begin, run)
                if begun[0] is not None:
                    channel.publish(run_event("thread.run.in_progress", begun[0]))
            started, messages, steps = begun
            if started is None:
                current = await to_thread(self._repository.get_run, run.thread_id, run.id)
                if current.status == "cancelling":
                    await self._end_cancelled(current, reply, channel)
                return
            await self._generate(started, execution, reply, messages, steps)
        except EngineError as error:
            await self._end_failed(run, reply, channel, error.code, error.message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("run %s failed", run.id)
            channel.publish(
                RunEvent("error", "error", convert.error_object(ServerError(ENGINE_FAILURE_MESSAGE).body()["error"]))
            )
            try:
                await self._end_failed(run, reply, channel, "server_error", ENGINE_FAILURE_MESSAGE)
            except Exception:
                logger.exception("run %s could not be marked failed", run.id)
        finally:
            channel.publish(DONE_EVENT)
            channel.close()
            self._executions.pop(run.id, None)

    def _begin(self, run: RunRecord, *, fresh: bool = False) -> _Begun:
        """Marks a queued run `in_progress` and reads its context (a `fresh` run has no steps yet)."""
        started = self._repository.update_run(
            run.id, {"status": "in_progress", "started_at": run.started_at or _now()}, expected_statuses=("queued",)
        )
        if started is None:
            return None, [], []
        messages = self._repository.thread_messages(run.thread_id, last_messages(run))
        steps = [] if fresh else self._repository.list_steps(run.thread_id, run.id, ALL_STEPS).items
        return started, messages, steps

    async def _generate(
        self,
        run: RunRecord,
        execution: _Execution,
        reply: _Reply,
        messages: list[MessageRecord],
        steps: list[RunStepRecord],
    ) -> None:
        channel = execution.channel
        request = generation_request(run, messages, steps)
        reply.earlier_usage = [step.usage for step in steps if step.usage]
        prompt_tokens = self._engine.count_prompt_tokens(request)
        if run.max_prompt_tokens is not None and prompt_tokens > run.max_prompt_tokens:
            await self._end_run(
                run,
                channel,
                "incomplete",
                incomplete_details={"reason": "max_prompt_tokens"},
                usage=reply.usage(),
            )
            return
        reply.prompt_tokens = prompt_tokens

        finish: Finish | None = None
        stream = self._engine.generate(request)
        try:
            while not execution.cancel_requested:
                chunk = await self._next_chunk(stream, execution)
                if chunk is None:
                    break
                if isinstance(chunk, TextDelta):
                    reply.completion_tokens += 1
                    await self._on_text(run, reply, channel, chunk.text)
                elif isinstance(chunk, ToolCallDelta):
                    reply.completion_tokens += 1
                    await self._on_tool_call(run, reply, channel, chunk)
                else:
                    finish = chunk
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if execution.cancel_requested:
            current = await to_thread(self._repository.get_run, run.thread_id, run.id)
            await self._end_cancelled(current, reply, channel)
            return
        if finish is None:
            raise EngineError("The engine ended without finishing its reply.")
        if finish.usage is not None:
            # The engine's own count wins over ours.
            reply.prompt_tokens, reply.completion_tokens = finish.usage.prompt_tokens, finish.usage.completion_tokens
        usage = convert.usage_dict(reply.prompt_tokens, reply.completion_tokens)
        total = reply.usage()
        if finish.reason == "tool_calls" and reply.tool_calls:
            await self._finish_message(reply, channel, "completed", None, usage=None)
            await self._require_action(run, reply, channel, usage)
        elif finish.reason == "length":
            await self._end_run(
                run,
                channel,
                "incomplete",
                incomplete_details={"reason": "max_completion_tokens"},
                usage=total,
                reply=(reply, "incomplete", {"reason": "max_tokens"}, usage),
            )
        else:
            if reply.message is None:
                await self._open_message(run, reply, channel)
            await self._end_run(run, channel, "completed", usage=total, reply=(reply, "completed", None, usage))

    @staticmethod
    async def _next_chunk(stream: AsyncIterator[Chunk], execution: _Execution) -> Chunk | None:
        """The engine's next chunk; None at its end, or when a cancel interrupted the wait."""
        execution.waiting_for_engine = True
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not execution.cancel_requested or task is None:
                raise  # the server is stopping
            task.uncancel()
            return None
        finally:
            execution.waiting_for_engine = False

    async def _open_message(self, run: RunRecord, reply: _Reply, channel: EventChannel) -> None:
        message, step = await to_thread(self._repository.open_reply, run)
        reply.message, reply.message_step = message, step
        channel.publish(step_event("thread.run.step.created", step))
        channel.publish(step_event("thread.run.step.in_progress", step))
        channel.publish(message_event("thread.message.created", message))
        channel.publish(message_event("thread.message.in_progress", message))

    async def _on_text(self, run: RunRecord, reply: _Reply, channel: EventChannel, text: str) -> None:
        if reply.message is None:
            await self._open_message(run, reply, channel)
        assert reply.message is not None
        reply.text.append(text)
        channel.publish(
            RunEvent("thread.message.delta", "message_delta", convert.message_delta(reply.message.id, text))
        )
        # Written by the flusher with every other growing reply, in one transaction.
        self._growing[reply.message.id] = reply

    async def _on_tool_call(self, run: RunRecord, reply: _Reply, channel: EventChannel, delta: ToolCallDelta) -> None:
        if reply.tool_step is None:
            reply.tool_step = await to_thread(
                self._repository.create_step,
                NewStep(
                    run_id=run.id,
                    thread_id=run.thread_id,
                    assistant_id=run.assistant_id,
                    type="tool_calls",
                    step_details={"type": "tool_calls", "tool_calls": []},
                ),
            )
            channel.publish(step_event("thread.run.step.created", reply.tool_step))
            channel.publish(step_event("thread.run.step.in_progress", reply.tool_step))
        call = reply.tool_calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
        call["id"] = delta.id or call["id"]
        call["name"] = delta.name or call["name"]
        call["arguments"] += delta.arguments
        function: dict[str, Any] = {"arguments": delta.arguments}
        if delta.name:
            function["name"] = delta.name
        if delta.id is not None:
            function["output"] = None
        fragment: dict[str, Any] = {"index": delta.index, "type": "function", "function": function}
        if delta.id is not None:
            fragment["id"] = delta.id
        channel.publish(
            RunEvent(
                "thread.run.step.delta",
                "step_delta",
                convert.step_delta(
                    reply.tool_step.id, {"step_details": {"type": "tool_calls", "tool_calls": [fragment]}}
                ),
            )
        )

    def _write_reply_end(
        self, reply: _Reply, status: str, incomplete_details: dict[str, Any] | None, usage: dict[str, int] | None
    ) -> tuple[MessageRecord, RunStepRecord] | None:
        """Writes a reply's final text and status and completes its step (in the caller's thread)."""
        if reply.message is None or reply.message_step is None:
            return None
        message = self._repository.update_message_content(
            reply.message.id, _text_content("".join(reply.text)), status=status, incomplete_details=incomplete_details
        )
        changes = {"status": "completed", "completed_at": _now(), "usage": usage}
        return message, self._repository.update_step(reply.message_step.id, changes)

    def _publish_reply_end(
        self, reply: _Reply, channel: EventChannel, ended: tuple[MessageRecord, RunStepRecord]
    ) -> None:
        message, step = ended
        reply.message, reply.message_step = message, None
        channel.publish(message_event(f"thread.message.{message.status}", message))
        channel.publish(step_event("thread.run.step.completed", step))

    async def _finish_message(
        self,
        reply: _Reply,
        channel: EventChannel,
        status: str,
        incomplete_details: dict[str, Any] | None,
        usage: dict[str, int] | None,
    ) -> None:
        if reply.message is not None:
            self._growing.pop(reply.message.id, None)
        ended = await to_thread(self._write_reply_end, reply, status, incomplete_details, usage)
        if ended is not None:
            self._publish_reply_end(reply, channel, ended)

    async def _require_action(
        self, run: RunRecord, reply: _Reply, channel: EventChannel, usage: dict[str, int]
    ) -> None:
        assert reply.tool_step is not None
        calls = [
            {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": call["arguments"]}}
            for _, call in sorted(reply.tool_calls.items())
        ]
        step_calls = [{**call, "function": {**call["function"], "output": None}} for call in calls]
        await to_thread(
            self._repository.update_step,
            reply.tool_step.id,
            {"step_details": {"type": "tool_calls", "tool_calls": step_calls}, "usage": usage},
        )
        waiting = await to_thread(
            self._repository.update_run,
            run.id,
            {
                "status": "requires_action",
                "required_action": {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": calls}},
                "expires_at": _now() + self.settings.expires_in,
            },
            expected_statuses=("in_progress",),
        )
        if waiting is not None:
            channel.publish(run_event("thread.run.requires_action", waiting))

    async def _end_run(
        self,
        run: RunRecord,
        channel: EventChannel,
        status: str,
        *,
        usage: dict[str, int] | None,
        incomplete_details: dict[str, Any] | None = None,
        reply: tuple[_Reply, str, dict[str, Any] | None, dict[str, int] | None] | None = None,
    ) -> None:
        """Ends the run `status`; with `reply` (the reply, its status, details and usage), the reply
        ends in the same write, so a poller never sees the run ended with its reply unfinished."""
        changes: dict[str, Any] = {"status": status, "usage": usage, "expires_at": None}
        if status == "completed":
            changes["completed_at"] = _now()
        else:
            changes["incomplete_details"] = incomplete_details
        if reply is not None and reply[0].message is not None:
            self._growing.pop(reply[0].message.id, None)

        def write() -> tuple[tuple[MessageRecord, RunStepRecord] | None, RunRecord | None]:
            with self._repository.batch():
                reply_end = self._write_reply_end(*reply) if reply is not None else None
                return reply_end, self._repository.update_run(run.id, changes, expected_statuses=("in_progress",))

        reply_end, ended = await to_thread(write)
        if reply is not None and reply_end is not None:
            self._publish_reply_end(reply[0], channel, reply_end)
        if ended is None:
            # A cancel arrived after the last token: the run still ends cancelled.
            current = await to_thread(self._repository.get_run, run.thread_id, run.id)
            if current.status == "cancelling":
                await self._end_cancelled(current, _Reply(), channel)
            return
        channel.publish(run_event(f"thread.run.{status}", ended))

    async def _close_open_parts(
        self, run: RunRecord, reply: _Reply, channel: EventChannel | None, step_status: str, reason: str, error: Any
    ) -> None:
        """Marks what the run left half-written: its reply `incomplete`, its open steps ended."""
        now = _now()
        if reply.message is not None and reply.message.status == "in_progress":
            self._growing.pop(reply.message.id, None)
            message = await to_thread(
                self._repository.update_message_content,
                reply.message.id,
                _text_content("".join(reply.text)),
                status="incomplete",
                incomplete_details={"reason": reason},
            )
            if channel is not None:
                channel.publish(message_event("thread.message.incomplete", message))
        open_steps = reply.open_steps()
        if not open_steps:
            steps = (await to_thread(self._repository.list_steps, run.thread_id, run.id, ALL_STEPS)).items
            open_steps = [step for step in steps if step.status == "in_progress"]
        for step in open_steps:
            changes: dict[str, Any] = {"status": step_status, f"{step_status}_at": now}
            if error is not None:
                changes["last_error"] = error
            ended = await to_thread(self._repository.update_step, step.id, changes)
            if channel is not None:
                channel.publish(step_event(f"thread.run.step.{step_status}", ended))

    async def _usage_so_far(self, run: RunRecord, reply: _Reply) -> dict[str, int]:
        """What a run ended early consumed: its earlier generations, and the current one so far."""
        if not reply.earlier_usage and not reply.prompt_tokens:
            steps = (await to_thread(self._repository.list_steps, run.thread_id, run.id, ALL_STEPS)).items
            reply.earlier_usage = [step.usage for step in steps if step.usage]
        return reply.usage()

    async def _end_cancelled(self, run: RunRecord, reply: _Reply, channel: EventChannel | None = None) -> None:
        await self._close_open_parts(run, reply, channel, "cancelled", "run_cancelled", None)
        usage = await self._usage_so_far(run, reply)
        cancelled = await to_thread(
            self._repository.update_run,
            run.id,
            {
                "status": "cancelled",
                "cancelled_at": _now(),
                "required_action": None,
                "expires_at": None,
                "usage": usage,
            },
            expected_statuses=("cancelling",),
        )
        if cancelled is not None and channel is not None:
            channel.publish(run_event("thread.run.cancelled", cancelled))

    async def _end_failed(self, run: RunRecord, reply: _Reply, channel: EventChannel, code: str, message: str) -> None:
        error = {"code": code, "message": message}
        await self._close_open_parts(run, reply, channel, "failed", "run_failed", error)
        usage = await self._usage_so_far(run, reply)
        failed = await to_thread(
            self._repository.update_run,
            run.id,
            {"status": "failed", "failed_at": _now(), "last_error": error, "expires_at": None, "usage": usage},
            expected_statuses=("queued", "in_progress"),
        )
        if failed is not None:
            channel.publish(run_event("thread.run.failed", failed))
        else:
            current = await to_thread(self._repository.get_run, run.thread_id, run.id)
            if current.status == "cancelling":
                await self._end_cancelled(current, _Reply(), channel)


def _usage_sum(usages: Sequence[dict[str, Any]]) -> dict[str, int]:
    prompt = sum(int(usage.get("prompt_tokens", 0)) for usage in usages)
    completion = sum(int(usage.get("completion_tokens", 0)) for usage in usages)
    return convert.usage_dict(prompt, completion)
