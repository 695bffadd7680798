"""One stretch of a run's execution, read top to bottom: from `queued` until the run ends or waits
for tool outputs.

    begin      queued -> in_progress, and the newest of the thread's messages and the run's steps read
    generate   the context fitted to the model's window; the engine's chunks -> a reply message or
               a tool-calls step -> events
    end        completed | incomplete | requires_action, or failed | cancelled with what was
               half-written closed (a partial reply is kept `incomplete`)

Every run status change goes through `_transition`: the write comes first and the event after, so
a poller never runs behind a stream, and a change that lost to a concurrent one (a cancel landing
between two writes) is settled there, in one place.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from typing import Any

from sovereign_server.caller import Caller
from sovereign_server.engines import ContextOverflowError, Engine, EngineError
from sovereign_server.engines import ToolCallDelta as EngineToolCallDelta
from sovereign_server.runs.background import GrowingReplies
from sovereign_server.runs.channel import EventChannel
from sovereign_server.runs.context import Context, RunPrompt, fit_run, read_context
from sovereign_server.runs.generation import Cancellation, Generation, Reply
from sovereign_server.runs.images import ImageFiles, NoImageFiles
from sovereign_server.runs.model import (
    DONE,
    MESSAGES,
    RUNS,
    STEPS,
    Event,
    EventName,
    MessageDelta,
    RunObserver,
    StreamError,
    ToolCallDelta,
)
from sovereign_server.runs.tools import Citation, ServerTools
from sovereign_server.stored import stored
from sovereign_storage import (
    IncompleteDetails,
    LastError,
    MessageRecord,
    MessageStatus,
    NewStep,
    PageRequest,
    Repository,
    RunRecord,
    RunStatus,
    RunStepRecord,
    StepStatus,
    SubmitToolOutputs,
    TextContent,
    ToolCalls,
    Transition,
    Usage,
)

logger = logging.getLogger("sovereign.runs")

ENGINE_FAILURE_MESSAGE = "The server had an error while processing the run."
# OpenAI lists at most 100 steps a page; a run with more tool rounds than that is not expected.
ALL_STEPS = PageRequest(limit=100, order="asc")
# Model turns that may call server tools (file_search) in one stretch before it must answer.
MAX_SERVER_TOOL_ROUNDS = 8


# The start of a stretch: the queued -> in_progress change, and the context if it applied.
Begun = tuple[Transition[RunRecord], Context | None]


class RunExecution:
    """One stretch of one run, publishing its events on `channel`."""

    def __init__(
        self,
        run: RunRecord,
        repository: Repository,
        engine: Engine,
        growing: GrowingReplies,
        expires_in: int,
        caller: Caller,
        observer: RunObserver,
        tools: ServerTools | None = None,
        image_files: ImageFiles | None = None,
    ) -> None:
        self.run = run
        self._caller = caller
        self._observer = observer
        self.channel = EventChannel()
        self.cancellation = Cancellation()
        self._repository = repository
        self._engine = engine
        self._growing = growing
        self._expires_in = expires_in
        self._image_files = image_files or NoImageFiles()
        self._generation: Generation | None = None
        # What this stretch has opened and not yet closed.
        self._message: MessageRecord | None = None
        self._message_step: RunStepRecord | None = None
        # Whether the reply's opening events went out: a reply opened with the run's start is
        # announced by its first text (and removed again if the model answers with a tool call).
        self._announced = False
        self._tool_step: RunStepRecord | None = None
        # The usage of the run's earlier stretches (from its steps); None until read.
        self._earlier_usage: Usage | None = None
        # Token counts of messages counted for this stretch, kept with its next status change.
        self._counted: dict[str, int] = {}
        self._tokenizer_key: str | None = None
        # Tools the server runs itself: the calls of the current turn that are theirs (by index),
        # the rounds of them so far, and the reply's citations once it is complete.
        self._tools = tools
        self._server_calls: set[int] = set()
        self._server_rounds = 0
        self._citation: Citation | None = None

    @property
    def repository(self) -> Repository:
        return self._repository

    def publish(self, *events: Event) -> None:
        for event in events:
            self.channel.publish(event)

    async def guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` to the end of the stretch: an engine failure fails the run, an unexpected one
        also sends an `error` event; the stream always ends with `done`."""
        try:
            await work
        except EngineError as error:
            self._observer.engine_failed(error.code)
            await self._fail(LastError(error.code, error.message))
        except asyncio.CancelledError:
            raise  # the server is stopping: the run is ended as interrupted
        except Exception:
            logger.exception("run %s failed", self.run.id)
            self.publish(Event(EventName.ERROR, StreamError(ENGINE_FAILURE_MESSAGE)))
            try:
                await self._fail(LastError("server_error", ENGINE_FAILURE_MESSAGE))
            except Exception:
                logger.exception("run %s could not be marked failed", self.run.id)
        finally:
            usage = self._generation.usage if self._generation is not None else Usage()
            self._observer.stretch_ended(self._caller, self.run, usage)
            self.publish(DONE)
            self.channel.close()

    # ------------------------------------------------------------------ begin

    def begin(self, *, fresh: bool = False) -> Begun:
        """Blocking: marks the run in_progress and reads its context (a `fresh` run has no steps)."""
        started = self._repository.transition_run(
            self.run.id, RunStatus.IN_PROGRESS, RUNS.sources(RunStatus.IN_PROGRESS)
        )
        if not started.applied:
            return started, None
        run = started.record
        steps = [] if fresh else self._repository.list_steps(run.thread_id, run.id, ALL_STEPS).items
        context = read_context(self._repository, run, steps)
        if self._tools is None or not self._tools.used_by(run):
            # The reply is opened in the same transaction, so the first token needs no write of its
            # own. (Server tools may write steps first, which must come before the reply's.)
            self._message, self._message_step = self._repository.open_reply(run)
        return started, context

    async def start(self, begun: Begun) -> Context | None:
        """Publishes the start of the run; None if it could not start (cancelled or expired meanwhile)."""
        started, context = begun
        return context if await self._settle(RunStatus.IN_PROGRESS, started) else None

    async def resume(self) -> None:
        """The stretch after tool outputs: begin, then generate."""
        begun = await stored(self._repository, self.begin)
        await self.generate(await self.start(begun))

    # ------------------------------------------------------------------ generate

    async def generate(self, context: Context | None) -> None:
        if context is None:
            return
        self._earlier_usage = sum((step.usage for step in context.steps if step.usage), Usage())
        prompt = await self._fit(context)
        if prompt.fitted is None:
            # Not even the newest message fits: nothing is sent, as OpenAI ends such runs.
            details = IncompleteDetails("max_prompt_tokens")
            changes = {"incomplete_details": details, "usage": self._earlier_usage, "expires_at": None}
            await self._transition(RunStatus.INCOMPLETE, changes, also=self._discard_unannounced_reply)
            return
        request = prompt.fitted.request
        if self._tools is not None:
            # Server tools (file_search) join the fitted request, or put what they found in it.
            oldest_first = list(reversed(context.recent))
            request = await self._tools.prepare(self, request, oldest_first, context.steps)
            self._server_calls = set()
        timing = self._observer.token_timing(self.run.model, self._engine.backend_name(self.run.model))
        self._generation = Generation(self._engine, request, prompt.fitted.prompt_tokens, timing)
        try:
            reply = await self._generation.run(self, self.cancellation)
        except ContextOverflowError as overflow:
            # The server's window is smaller than the one fitted to (it said so): fit again, once,
            # if nothing was generated yet.
            smaller = overflow.window is not None and overflow.window < prompt.budget.window
            if not smaller or self._announced or self._tool_step is not None:
                raise
            logger.warning("run %s: %s; fitting its context again", self.run.id, overflow.message)
            await self.generate(context)
            return
        if reply is None:
            await self.end_cancelled()
        elif reply.finish_reason == "tool_calls" and reply.tool_calls:
            if not await self._run_server_tools(reply):
                await self._require_action(reply)
        elif reply.finish_reason == "length":
            await self._cite()
            await self._end(
                RunStatus.INCOMPLETE,
                reply,
                MessageStatus.INCOMPLETE,
                message_details=IncompleteDetails("max_tokens"),
                run_details=IncompleteDetails("max_completion_tokens"),
            )
        else:
            await self._cite()
            await self._end(RunStatus.COMPLETED, reply, MessageStatus.COMPLETED)

    async def _fit(self, context: Context) -> RunPrompt:
        used = self._earlier_usage.prompt_tokens if self._earlier_usage is not None else 0
        prompt = await fit_run(
            self.run,
            context,
            self._engine,
            self._repository,
            self._counted,
            prompt_tokens_used=used,
            image_files=self._image_files,
        )
        self._tokenizer_key = prompt.tokenizer_key
        if prompt.fitted is not None:
            fitted = prompt.fitted
            logger.debug(
                "run %s: %d turns of its thread sent, %d prompt tokens (%s) of %d, window %d",
                self.run.id,
                fitted.turns,
                fitted.prompt_tokens,
                "exact" if fitted.exact else "estimated",
                prompt.budget.prompt,
                prompt.budget.window,
            )
        return prompt

    async def _run_server_tools(self, reply: Reply) -> bool:
        """Runs the calls the server handles itself (file_search) and generates again with their
        results; the model's other calls then wait for the caller's outputs. False if it made none."""
        tools = self._tools
        if tools is None or self._server_rounds >= MAX_SERVER_TOOL_ROUNDS:
            return False
        server = [call for call in reply.tool_calls if tools.handles(call.name)]
        if not server:
            return False
        self._server_rounds += 1
        client = tuple(call for call in reply.tool_calls if not tools.handles(call.name))
        # Text before the calls is a finished message; the next turn writes a new one.
        self.publish(*await stored(self._repository, self._end_message, MessageStatus.COMPLETED, None, None))
        self._message, self._announced = None, False
        # The turn's usage goes with the step that waits for the caller, if any.
        await tools.execute(self, server, None if client else reply.usage)
        if client:
            await self._require_action(replace(reply, tool_calls=client))
        else:
            await self.generate(await stored(self._repository, self._read_context))
        return True

    def _read_context(self) -> Context:
        steps = self._repository.list_steps(self.run.thread_id, self.run.id, ALL_STEPS).items
        return read_context(self._repository, self.run, steps)

    async def _cite(self) -> None:
        """Annotates the reply with the files it cites (`file_citation`), in one last delta."""
        if self._tools is None or not self._tools.used_by(self.run):
            return  # nothing searched, nothing to cite: no trip to the database
        citation = await self._tools.cite(self, self._generation.text if self._generation else "")
        if citation is None:
            return
        if not self._announced:
            await self._open_message()
        assert self._message is not None
        self._citation = citation
        delta = MessageDelta(self._message.id, citation.suffix, annotations=citation.annotations)
        self.channel.publish(Event(EventName.MESSAGE_DELTA, delta))

    async def on_text(self, text: str) -> None:
        if not self._announced:
            await self._open_message()
        assert self._message is not None
        assert self._generation is not None
        self.channel.publish(Event(EventName.MESSAGE_DELTA, MessageDelta(self._message.id, text)))
        self._growing.grew(self._message.id, self._generation)

    async def on_tool_call(self, fragment: EngineToolCallDelta) -> None:
        if self._tools is not None and (
            fragment.index in self._server_calls or (fragment.name and self._tools.handles(fragment.name))
        ):
            # The server's own call: recorded as its own step when it runs, not streamed as a function.
            self._server_calls.add(fragment.index)
            return
        if self._tool_step is None:
            new_step = NewStep(self.run.id, self.run.thread_id, self.run.assistant_id, "tool_calls", ToolCalls())

            def start_tool_step() -> RunStepRecord:
                with self._repository.batch():
                    self._discard_unannounced_reply()
                    return self._repository.create_step(new_step)

            self._tool_step = await stored(self._repository, start_tool_step)
            self.publish(
                Event(EventName.STEP_CREATED, self._tool_step), Event(EventName.STEP_IN_PROGRESS, self._tool_step)
            )
        delta = ToolCallDelta(self._tool_step.id, fragment.index, fragment.id, fragment.name, fragment.arguments)
        self.channel.publish(Event(EventName.STEP_DELTA, delta))

    async def _open_message(self) -> None:
        """Announces the reply: the one opened with the run, else a new one (a later turn's)."""
        if self._message is None or self._message_step is None:
            self._message, self._message_step = await stored(self._repository, self._repository.open_reply, self.run)
        self._announced = True
        self.publish(
            Event(EventName.STEP_CREATED, self._message_step),
            Event(EventName.STEP_IN_PROGRESS, self._message_step),
            Event(EventName.MESSAGE_CREATED, self._message),
            Event(EventName.MESSAGE_IN_PROGRESS, self._message),
        )

    # ------------------------------------------------------------------ end

    async def _end(
        self,
        to: RunStatus,
        reply: Reply,
        message_to: MessageStatus,
        *,
        message_details: IncompleteDetails | None = None,
        run_details: IncompleteDetails | None = None,
    ) -> None:
        """Ends the run and its reply in one write, so a poller never sees one ended without the other."""
        if not self._announced and to is RunStatus.COMPLETED:
            await self._open_message()  # even an empty answer is a message
        changes: dict[str, Any] = {"usage": self._usage_so_far(), "expires_at": None}
        if run_details is not None:
            changes["incomplete_details"] = run_details
        await self._transition(to, changes, also=lambda: self._end_message(message_to, message_details, reply.usage))

    async def _require_action(self, reply: Reply) -> None:
        assert self._tool_step is not None
        tool_step = self._tool_step

        def write_calls() -> list[Event]:
            # Text before the calls is a finished message; the calls' usage is the tool step's.
            events = self._end_message(MessageStatus.COMPLETED, None, None)
            self._repository.update_step(
                tool_step.id, {"step_details": ToolCalls(reply.tool_calls), "usage": reply.usage}
            )
            return events

        action = SubmitToolOutputs(reply.tool_calls)
        changes = {"required_action": action, "expires_at": int(time.time()) + self._expires_in}
        await self._transition(RunStatus.REQUIRES_ACTION, changes, also=write_calls)

    async def _fail(self, error: LastError) -> None:
        await self._end_early(RunStatus.FAILED, StepStatus.FAILED, "run_failed", error)

    async def end_cancelled(self) -> None:
        await self._end_early(RunStatus.CANCELLED, StepStatus.CANCELLED, "run_cancelled", None)

    async def _end_early(self, to: RunStatus, step_to: StepStatus, reason: str, error: LastError | None) -> None:
        """Ends the run `to` with what it consumed, closing what it left half-written."""

        def changes() -> dict[str, Any]:
            values: dict[str, Any] = {"usage": self._usage_so_far(), "expires_at": None, "required_action": None}
            if error is not None:
                values["last_error"] = error
            return values

        await self._transition(to, changes, also=lambda: self._close_open_parts(step_to, reason, error))

    # ------------------------------------------------------------------ writes (blocking: made through `stored`)

    def _end_message(self, to: MessageStatus, details: IncompleteDetails | None, usage: Usage | None) -> list[Event]:
        """Writes the reply's final text and status and completes its step."""
        if self._message is None or self._message_step is None or not self._announced:
            self._discard_unannounced_reply()
            return []
        message = self._repository.transition_message(
            self._message.id, to, MESSAGES.sources(to), content=self._final_text(), incomplete_details=details
        )
        step = self._repository.transition_step(
            self._message_step.id, StepStatus.COMPLETED, STEPS.sources(StepStatus.COMPLETED), {"usage": usage}
        )
        self._message, self._message_step = message.record, None
        return _applied(MESSAGES.event(to), message) + _applied(STEPS.event(StepStatus.COMPLETED), step)

    def _discard_unannounced_reply(self) -> list[Event]:
        """Removes the reply opened with the run while nothing was said of it (the model called a
        tool instead, or nothing was generated): no event ever named it."""
        if self._message is not None and self._message_step is not None and not self._announced:
            self._repository.discard_reply(self._message.id, self._message_step.id)
            self._message, self._message_step = None, None
        return []

    def _close_open_parts(self, step_to: StepStatus, reason: str, error: LastError | None) -> list[Event]:
        """Marks the reply in progress `incomplete` (its text kept) and ends the open steps `step_to`."""
        events = self._discard_unannounced_reply()
        if self._message is not None and self._message.status is MessageStatus.IN_PROGRESS:
            to = MessageStatus.INCOMPLETE
            message = self._repository.transition_message(
                self._message.id,
                to,
                MESSAGES.sources(to),
                content=self._final_text(),
                incomplete_details=IncompleteDetails(reason),
            )
            self._message = message.record
            events += _applied(MESSAGES.event(to), message)
        open_steps = [step for step in (self._message_step, self._tool_step) if step is not None]
        if not open_steps or self._earlier_usage is None:
            # Nothing generated in this stretch (a cancel while waiting for tool outputs): the
            # stored steps tell what is open and what was consumed.
            steps = self._repository.list_steps(self.run.thread_id, self.run.id, ALL_STEPS).items
            if self._earlier_usage is None:
                self._earlier_usage = sum((step.usage for step in steps if step.usage), Usage())
            if not open_steps:
                open_steps = [step for step in steps if step.status is StepStatus.IN_PROGRESS]
        changes = {"last_error": error} if error is not None else {}
        for step in open_steps:
            events += _applied(
                STEPS.event(step_to),
                self._repository.transition_step(step.id, step_to, STEPS.sources(step_to), changes),
            )
        return events

    def _keep_counts(self) -> None:
        """Stores the token counts made for this stretch, with the status change that follows them
        (no write of their own)."""
        if self._counted and self._tokenizer_key is not None:
            self._repository.save_token_counts(self._tokenizer_key, self._counted)
        self._counted = {}

    def _final_text(self) -> tuple[TextContent, ...]:
        text = self._generation.text if self._generation else ""
        if self._citation is not None:
            return (TextContent(text + self._citation.suffix, self._citation.annotations),)
        return (TextContent(text),)

    def _usage_so_far(self) -> Usage:
        current = self._generation.usage if self._generation is not None else Usage()
        return (self._earlier_usage or Usage()) + current

    # ------------------------------------------------------------------ status changes

    async def _transition(
        self,
        to: RunStatus,
        changes: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        *,
        also: Callable[[], list[Event]] | None = None,
    ) -> bool:
        """Moves the run to `to`, with `changes`, and in the same transaction what `also` writes
        (whose events go out first); `changes` may be computed after `also`."""

        def write() -> tuple[list[Event], Transition[RunRecord]]:
            with self._repository.batch():
                events = also() if also is not None else []
                self._keep_counts()
                values = changes() if callable(changes) else changes
                return events, self._repository.transition_run(self.run.id, to, RUNS.sources(to), values)

        if self._message is not None:
            # Its final text may be written now: the flusher must not write a snapshot after it.
            self._growing.forget(self._message.id)
        events, result = await stored(self._repository, write)
        self.publish(*events)
        return await self._settle(to, result)

    async def _settle(self, to: RunStatus, result: Transition[RunRecord]) -> bool:
        """Publishes a change that applied. One that lost went to a concurrent change: a cancel still
        ends the run, here; any other (the run expired or ended) stands."""
        self.run = result.record
        if result.applied:
            self.channel.publish(Event(RUNS.event(to), result.record))
            return True
        if result.record.status is RunStatus.CANCELLING and to is not RunStatus.CANCELLED:
            await self.end_cancelled()
        return False


def _applied(name: EventName, transition: Transition[Any]) -> list[Event]:
    return [Event(name, transition.record)] if transition.applied else []
