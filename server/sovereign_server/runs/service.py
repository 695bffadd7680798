"""What callers ask of runs: create one (on a thread, or with a new thread), submit tool outputs,
cancel. It takes the plain values of `model` and hands back the run with the channel of its events;
each stretch of execution is a `RunExecution` running as a background task, independent of any
client connection: a caller that disconnects does not stop it, and one that polls sees it finish.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sovereign_server import validation
from sovereign_server.caller import Caller
from sovereign_server.engines import Engine
from sovereign_server.errors import ConflictError
from sovereign_server.runs.background import GrowingReplies, Housekeeping
from sovereign_server.runs.channel import EventChannel
from sovereign_server.runs.coordination import Coordination, EventSource, LocalCoordination, settled
from sovereign_server.runs.execution import ALL_STEPS, RunExecution
from sovereign_server.runs.images import ImageFiles, NoImageFiles
from sovereign_server.runs.model import (
    RUNS,
    STEPS,
    Event,
    EventName,
    NewThread,
    NoObserver,
    RunObserver,
    RunOptions,
    ToolOutput,
)
from sovereign_server.runs.tools import ServerTools
from sovereign_server.stored import stored
from sovereign_storage import (
    AssistantRecord,
    FunctionCall,
    NewRun,
    Repository,
    RunRecord,
    RunStatus,
    StepStatus,
    ToolCalls,
    Transition,
)

logger = logging.getLogger("sovereign.runs")


@dataclass(frozen=True)
class RunSettings:
    # Seconds a run may wait (queued, or for tool outputs) before it expires, as OpenAI's 10 minutes.
    expires_in: int = 600
    # Seconds of silence on a stream before a `: keep-alive` comment.
    heartbeat: float = 15.0
    # Seconds between writes of the replies being generated, so `messages.retrieve` shows the text so far.
    flush_interval: float = 0.25
    # Seconds between sweeps for runs past `expires_at`.
    expiry_sweep_interval: float = 1.0


def new_run(options: RunOptions, assistant: AssistantRecord) -> NewRun:
    """The run to queue: what the caller left out comes from the assistant, as OpenAI does."""
    instructions = options.instructions if options.instructions is not None else assistant.instructions
    if options.additional_instructions:
        additional = options.additional_instructions
        instructions = f"{instructions}\n\n{additional}" if instructions else additional
    return NewRun(
        assistant_id=assistant.id,
        model=options.model or assistant.model,
        instructions=instructions,
        tools=options.tools if options.tools is not None else assistant.tools,
        metadata=options.metadata,
        temperature=options.temperature if options.temperature is not None else assistant.temperature,
        top_p=options.top_p if options.top_p is not None else assistant.top_p,
        max_prompt_tokens=options.max_prompt_tokens,
        max_completion_tokens=options.max_completion_tokens,
        truncation_strategy=options.truncation_strategy,
        tool_choice=options.tool_choice,
        parallel_tool_calls=options.parallel_tool_calls is not False,
        response_format=options.response_format if options.response_format is not None else assistant.response_format,
    )


class RunManager:
    def __init__(
        self,
        repository: Repository,
        engine: Engine,
        settings: RunSettings | None = None,
        *,
        observer: RunObserver | None = None,
        coordination: Coordination | None = None,
        tools: ServerTools | None = None,
        image_files: ImageFiles | None = None,
    ) -> None:
        self._repository = repository
        # Tools the server runs itself during runs (file_search); None: none.
        self._tools = tools
        # Where `image_file` parts are read from (the Files API); none by default.
        self.image_files: ImageFiles = image_files or NoImageFiles()
        self._observer: RunObserver = observer or NoObserver()
        self._coordination: Coordination = coordination or LocalCoordination(repository)
        self._engine = engine
        self.settings = settings or RunSettings()
        self._growing = GrowingReplies(repository)
        self._housekeeping = Housekeeping(
            repository,
            self._growing,
            flush_interval=self.settings.flush_interval,
            sweep_interval=self.settings.expiry_sweep_interval,
            once=self._coordination.once,
        )
        self._executions: dict[str, RunExecution] = {}

    # ------------------------------------------------------------------ life of the service

    async def start(self) -> None:
        """Ends the runs that replicas now gone left unfinished, then starts expiring and flushing."""
        ended = await self._coordination.start(self)
        if ended:
            logger.warning("ended %d run(s) interrupted by a shutdown: %s", len(ended), ", ".join(ended))
        await self._housekeeping.start(alone=self._coordination.alone())

    async def stop(self, grace: float = 5.0) -> None:
        """Lets running executions finish for `grace` seconds, then ends the rest as interrupted."""
        self._housekeeping.stop()
        tasks = [execution.cancellation.task for execution in self._executions.values()]
        running = [task for task in tasks if task is not None]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await self._coordination.stop()
        await self._engine.aclose()

    # ------------------------------------------------------------------ what callers ask for

    async def create_run(self, caller: Caller, thread_id: str, options: RunOptions) -> tuple[RunRecord, EventChannel]:
        """Queues a run on an idle thread of the caller's project and starts executing it; returns
        it as queued."""
        repository = self._repository.scoped(caller.project_id)

        def queue_and_begin() -> tuple[RunRecord, RunExecution, Any]:
            # One storage call and one transaction, from the request to a run in progress with its
            # context read: the time to the first token is mostly such calls.
            with repository.batch():
                repository.get_thread(thread_id)
                run_to_queue = new_run(options, repository.get_assistant(options.assistant_id))
                queued, _ = repository.create_run(
                    thread_id, run_to_queue, options.additional_messages, self.settings.expires_in
                )
                self._coordination.claim(queued.id)
                execution = self._execution(queued, repository, caller)
                return queued, execution, execution.begin(fresh=True)

        queued, execution, begun = await stored(repository, queue_and_begin)
        execution.publish(Event(EventName.RUN_CREATED, queued), Event(EventName.RUN_QUEUED, queued))
        # Started before the caller reads the channel: in_progress leaves with the first events.
        context = await execution.start(begun)
        self._launch(execution, execution.generate(context))
        return queued, execution.channel

    async def create_thread_and_run(
        self, caller: Caller, thread: NewThread, options: RunOptions
    ) -> tuple[RunRecord, EventChannel]:
        """Creates a thread with its messages in the caller's project, queues a run on it and starts it."""
        repository = self._repository.scoped(caller.project_id)

        def create_and_begin() -> tuple[Any, RunRecord, RunExecution, Any]:
            with repository.batch():
                run_to_queue = new_run(options, repository.get_assistant(options.assistant_id))
                created, queued = repository.create_thread_and_run(
                    thread.tool_resources, thread.metadata, thread.messages, run_to_queue, self.settings.expires_in
                )
                self._coordination.claim(queued.id)
                execution = self._execution(queued, repository, caller)
                return created, queued, execution, execution.begin(fresh=True)

        created, queued, execution, begun = await stored(repository, create_and_begin)
        execution.publish(
            Event(EventName.THREAD_CREATED, created),
            Event(EventName.RUN_CREATED, queued),
            Event(EventName.RUN_QUEUED, queued),
        )
        context = await execution.start(begun)
        self._launch(execution, execution.generate(context))
        return queued, execution.channel

    async def submit_tool_outputs(
        self, caller: Caller, thread_id: str, run_id: str, outputs: Sequence[ToolOutput]
    ) -> tuple[RunRecord, EventChannel]:
        """Records the outputs of the calls a run waits for, and resumes it."""
        repository = self._repository.scoped(caller.project_id)
        run = await stored(repository, repository.get_run, thread_id, run_id)
        if run.status is not RunStatus.REQUIRES_ACTION or run.required_action is None:
            raise _not_accepting_outputs(run.status)
        calls = run.required_action.tool_calls
        given = validation.check_tool_outputs(
            [(output.tool_call_id, output.output) for output in outputs], [call.id for call in calls]
        )

        def record_outputs() -> tuple[list[Event], RunRecord]:
            with repository.batch():
                to = RunStatus.QUEUED
                queued = repository.transition_run(run_id, to, RUNS.sources(to), {"required_action": None})
                if not queued.applied:
                    raise _not_accepting_outputs(queued.record.status)
                # Resumed here, whichever replica ran the stretch before.
                self._coordination.claim(run_id)
                answered = _answer_tool_calls(repository, thread_id, run_id, given)
                return [*answered, Event(RUNS.event(to), queued.record)], queued.record

        events, queued = await stored(repository, record_outputs)
        execution = self._execution(queued, repository, caller)
        execution.publish(*events)
        self._launch(execution, execution.resume())
        return queued, execution.channel

    async def cancel_run(self, caller: Caller, thread_id: str, run_id: str) -> RunRecord:
        """Moves an active run to `cancelling`; its execution stops the engine and ends it `cancelled`."""
        repository = self._repository.scoped(caller.project_id)
        run = await stored(repository, repository.get_run, thread_id, run_id)
        if run.status is RunStatus.CANCELLING:
            return run
        to = RunStatus.CANCELLING
        if not RUNS.allows(run.status, to):
            raise _not_cancellable(run.status)
        # A run waiting for tool outputs executes nowhere: it is ended here, so it is claimed here.
        waiting = run.status is RunStatus.REQUIRES_ACTION

        def move_to_cancelling() -> Transition[RunRecord]:
            with repository.batch():
                moved = repository.transition_run(run_id, to, RUNS.sources(to))
                if moved.applied and waiting:
                    self._coordination.claim(run_id)
                return moved

        cancelling = await stored(repository, move_to_cancelling)
        if not cancelling.applied:
            if cancelling.record.status is RunStatus.CANCELLING:
                return cancelling.record
            raise _not_cancellable(cancelling.record.status)
        event = Event(RUNS.event(to), cancelling.record)
        execution = self._executions.get(run_id)
        if execution is not None:
            execution.publish(event)
            execution.cancellation.request()
        elif waiting:
            execution = self._execution(cancelling.record, repository, caller)
            execution.publish(event)
            self._launch(execution, execution.end_cancelled())
        else:
            await self._coordination.cancel_elsewhere(cancelling.record)
        return cancelling.record

    async def follow_run(self, caller: Caller, thread_id: str, run_id: str) -> EventSource:
        """The events of the run's stretch executing now, on this replica or another, from its
        first; a run executing nowhere gives its status as it is, then `done`."""
        repository = self._repository.scoped(caller.project_id)
        run = await stored(repository, repository.get_run, thread_id, run_id)
        execution = self._executions.get(run_id)
        if execution is not None:
            return execution.channel
        return await self._coordination.follow(repository, run) or settled(run)

    # ------------------------------------------------------------------ what coordination asks of this replica

    def execution(self, run_id: str) -> RunExecution | None:
        return self._executions.get(run_id)

    async def cancelled_elsewhere(self, run_id: str) -> None:
        execution = self._executions.get(run_id)
        if execution is None or execution.cancellation.requested:
            return
        run = await stored(self._repository, self._repository.get_run, execution.run.thread_id, run_id)
        if run.status is RunStatus.CANCELLING and self._executions.get(run_id) is execution:
            execution.publish(Event(RUNS.event(RunStatus.CANCELLING), run))
            execution.cancellation.request()

    # ------------------------------------------------------------------ executions

    def _execution(self, run: RunRecord, repository: Repository, caller: Caller) -> RunExecution:
        return RunExecution(
            run,
            repository,
            self._engine,
            self._growing,
            self.settings.expires_in,
            caller,
            self._observer,
            self._tools,
            self.image_files,
        )

    def _launch(self, execution: RunExecution, work: Coroutine[Any, Any, None]) -> None:
        run_id = execution.run.id
        self._executions[run_id] = execution
        task = asyncio.create_task(self._guarded(execution, work), name=f"run-{run_id}")
        # The registry also keeps the task referenced (the event loop holds tasks weakly).
        execution.cancellation.task = task
        self._coordination.launched(execution)

    async def _guarded(self, execution: RunExecution, work: Coroutine[Any, Any, None]) -> None:
        try:
            await execution.guarded(work)
        finally:
            # Within the step that sends the stretch's `done`: whoever it wakes (a cancel, tool
            # outputs) finds no execution here any more.
            self._forget(execution)

    def _forget(self, execution: RunExecution) -> None:
        # A later stretch of the same run may already be registered.
        if self._executions.get(execution.run.id) is execution:
            del self._executions[execution.run.id]


def _answer_tool_calls(repository: Repository, thread_id: str, run_id: str, outputs: Mapping[str, str]) -> list[Event]:
    """Blocking: completes the tool-calls step that waited, with the outputs in its calls."""
    steps = repository.list_steps(thread_id, run_id, ALL_STEPS).items
    waiting = [step for step in steps if step.status is StepStatus.IN_PROGRESS]
    if not waiting or not isinstance(waiting[-1].step_details, ToolCalls):
        return []
    step = waiting[-1]
    calls = tuple(
        # Calls the server ran itself (file_search) already have their output.
        replace(call, output=outputs.get(call.id)) if isinstance(call, FunctionCall) else call
        for call in waiting[-1].step_details.tool_calls
    )
    done = StepStatus.COMPLETED
    completed = repository.transition_step(step.id, done, STEPS.sources(done), {"step_details": ToolCalls(calls)})
    return [Event(STEPS.event(done), completed.record)] if completed.applied else []


def _not_accepting_outputs(status: RunStatus) -> ConflictError:
    return ConflictError(f'Runs in status "{status}" do not accept tool outputs.', code="invalid_state")


def _not_cancellable(status: RunStatus) -> ConflictError:
    return ConflictError(f"Cannot cancel run with status '{status}'.", code="invalid_state")
