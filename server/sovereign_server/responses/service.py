"""What callers ask of responses: create one, read it (or follow its events), cancel, delete, list
its input. It takes the plain values of `model` and hands back records and events; each response
executes as a background task (`ResponseExecution`), independent of any client connection, as runs do.

A response executes on the replica that created it, recorded with it. Another replica cancels it in
storage and asks every replica, through `Coordination`, to stop it; it follows it by reading storage
until it ends; and it fails it if that replica is gone (its lease ran out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import to_thread
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import replace
from typing import Any

from sovereign_server.caller import Caller
from sovereign_server.engines import Engine
from sovereign_server.errors import ConflictError, InvalidRequestError, NotFoundError
from sovereign_server.responses.context import (
    chain_items,
    conversation_item,
    image_file_references,
    new_item_id,
    record_item,
)
from sovereign_server.responses.execution import ResponseExecution, replay
from sovereign_server.responses.model import (
    RESPONSES,
    UNFINISHED,
    ItemReference,
    NoResponseObserver,
    ResponseEvent,
    ResponseObserver,
    ResponseOptions,
)
from sovereign_server.responses.tools import ResponseTools
from sovereign_server.runs.background import end_interrupted_responses
from sovereign_server.runs.coordination import Coordination, LocalCoordination
from sovereign_server.runs.images import ImageFiles, NoImageFiles, check_image_files
from sovereign_server.stored import stored
from sovereign_storage import (
    RESPONSE_PREFIX,
    AssistantRecord,
    InvalidCursorError,
    Item,
    Page,
    PageRequest,
    Repository,
    ResponseRecord,
    ResponseStatus,
    new_id,
)
from sovereign_storage import NotFoundError as StoredNotFoundError

logger = logging.getLogger("sovereign.responses")

# Ended background responses whose events stay in memory, so that a resumed stream gets the very
# events (and sequence numbers) of the live one; older ones are replayed from storage.
KEEP_FINISHED = 256
# Seconds a cancel waits for the execution to stop (it stops at once while the engine is silent).
CANCEL_WAIT = 10.0
# Seconds between reads of a response followed while it executes on another replica.
STORED_POLL = 0.5


def new_response(
    response_id: str, options: ResponseOptions, assistant: AssistantRecord | None, inputs: Sequence[Item]
) -> ResponseRecord:
    """The response to create: what the caller left out comes from the assistant, if one was named."""
    model = options.model or (assistant.model if assistant is not None else None)
    if not model:
        raise InvalidRequestError(
            "Missing required parameter: 'model'.", param="model", code="missing_required_parameter"
        )
    instructions = options.instructions
    tools = options.tools
    text_format = options.text_format
    temperature, top_p = options.temperature, options.top_p
    if assistant is not None:
        instructions = instructions if instructions is not None else assistant.instructions
        tools = tools if tools is not None else assistant_tools(assistant.tools)
        text_format = text_format if text_format is not None else assistant_text_format(assistant.response_format)
        temperature = temperature if temperature is not None else assistant.temperature
        top_p = top_p if top_p is not None else assistant.top_p
    return ResponseRecord(
        id=response_id,
        created_at=int(time.time()),
        status=ResponseStatus.QUEUED if options.background else ResponseStatus.IN_PROGRESS,
        background=options.background,
        store=options.store,
        model=model,
        instructions=instructions,
        input_items=tuple(inputs),
        output_items=(),
        previous_response_id=options.previous_response_id,
        conversation_id=options.conversation_id,
        prompt_id=options.prompt_id,
        tools=tools or [],
        tool_choice=options.tool_choice,
        parallel_tool_calls=options.parallel_tool_calls is not False,
        temperature=temperature,
        top_p=top_p,
        text_format=text_format,
        max_output_tokens=options.max_output_tokens,
        truncation=options.truncation,
        metadata=options.metadata,
        usage=None,
        error=None,
        incomplete_details=None,
        completed_at=None,
    )


def assistant_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """An assistant's function tools as the Responses API shapes them (its other tools have no
    engine here to run them, as in its runs)."""
    shaped = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        function = tool["function"]
        shaped.append(
            {
                "type": "function",
                **function,
                "parameters": function.get("parameters"),
                "strict": function.get("strict"),
            }
        )
    return shaped


def assistant_text_format(response_format: Any) -> dict[str, Any] | None:
    """An assistant's `response_format` as the Responses API's `text.format`."""
    if not isinstance(response_format, dict):
        return None  # "auto" or unset: text
    if response_format["type"] == "json_schema":
        return {"type": "json_schema", **response_format["json_schema"]}
    return {"type": response_format["type"]}


def page_of(items: Sequence[Item], page: PageRequest) -> Page[Item]:
    """A page of `items` (oldest first as given), as OpenAI's lists page: `after` / `before` ids."""
    ordered = list(items) if page.order == "asc" else list(reversed(items))
    positions = {item.id: index for index, item in enumerate(ordered)}
    start, end = 0, len(ordered)
    for param, cursor in (("after", page.after), ("before", page.before)):
        if cursor is None:
            continue
        if cursor not in positions:
            raise InvalidCursorError(param, cursor)
        if param == "after":
            start = positions[cursor] + 1
        else:
            end = positions[cursor]
    window = ordered[start:end]
    if page.before is not None and page.after is None:
        # The `limit` items closest to the cursor.
        return Page(window[-page.limit :], len(window) > page.limit)
    return Page(window[: page.limit], len(window) > page.limit)


class ResponseManager:
    def __init__(
        self,
        repository: Repository,
        engine: Engine,
        *,
        heartbeat: float = 15.0,
        observer: ResponseObserver | None = None,
        image_files: ImageFiles | None = None,
        coordination: Coordination | None = None,
        tools: ResponseTools | None = None,
    ) -> None:
        self._repository = repository
        self._coordination: Coordination = coordination or LocalCoordination(repository)
        # Cancels received by other replicas come here.
        self._coordination.host_responses(self)
        # Tools the server runs itself (file_search); None: none (the server stores no files).
        self.tools = tools
        # Where `input_image` parts with a `file_id` are read from.
        self.image_files: ImageFiles = image_files or NoImageFiles()
        self._engine = engine
        self.heartbeat = heartbeat
        self._observer: ResponseObserver = observer or NoResponseObserver()
        self._executions: dict[str, ResponseExecution] = {}
        self._finished: OrderedDict[str, ResponseExecution] = OrderedDict()

    # ------------------------------------------------------------------ life of the service

    async def stop(self, grace: float = 5.0) -> None:
        """Lets running responses finish for `grace` seconds, then fails the rest as interrupted
        (start-up recovery, `runs.background.Housekeeping`, fails those a crash left)."""
        # Only those executing here: other replicas of the service may be executing theirs.
        executing = list(self._executions)
        running = [task for task in (e.cancellation.task for e in self._executions.values()) if task is not None]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        await to_thread(end_interrupted_responses, self._repository, executing)

    # ------------------------------------------------------------------ what callers ask for

    async def create(self, caller: Caller, options: ResponseOptions) -> ResponseExecution:
        """Creates a response in the caller's project (stored unless `store` is false) and starts
        executing it; its events start with `response.created`."""
        repository = self._repository.scoped(caller.project_id)
        response_id = new_id(RESPONSE_PREFIX)
        references = image_file_references(options.input, "input")
        await check_image_files(self.image_files, caller.project_id, references)
        if self.tools is not None:
            await self.tools.check(caller.project_id, options.tools or [])
        else:
            for index, tool in enumerate(options.tools or []):
                if tool["type"] != "function":
                    raise InvalidRequestError(
                        f"Invalid 'tools[{index}].type': this server does not store files to search.",
                        param=f"tools[{index}].type",
                        code="unsupported_value",
                    )

        def prepare() -> tuple[ResponseRecord, list[Item]]:
            # One transaction from the request to the stored response with its context read.
            with repository.batch() if options.store else contextlib.nullcontext():
                assistant = repository.get_assistant(options.prompt_id) if options.prompt_id else None
                history = chain_items(_chain(repository, options.previous_response_id))
                conversation = _conversation(repository, options.conversation_id)
                inputs, new = _resolve(options.input, history, conversation)
                response = new_response(response_id, options, assistant, inputs)
                if options.store:
                    # Recorded with the replica executing it: if that one is gone, another fails it.
                    repository.create_response(
                        response,
                        [conversation_item(item, response.prompt_id) for item in new],
                        replica_id=self._coordination.replica_id,
                    )
                if options.conversation_id is None:
                    return response, [*history, *inputs]
                return response, [*conversation, *new]

        response, context = await stored(repository, prepare)
        execution = ResponseExecution(
            response,
            repository if options.store else None,
            self._engine,
            caller,
            self._observer,
            context,
            self.image_files,
            self.tools,
        )
        execution.announce()
        self._launch(execution, execution.run_in_background() if response.background else execution.generate())
        return execution

    async def get(self, caller: Caller, response_id: str) -> ResponseRecord:
        """A stored response as it is now: with the output so far while it runs here."""
        execution = self._running(caller, response_id)
        if execution is not None:
            return execution.snapshot()
        return await stored(self._repository, self._repository.scoped(caller.project_id).get_response, response_id)

    async def follow(
        self, caller: Caller, response_id: str, starting_after: int | None, heartbeat: float | None
    ) -> AsyncIterator[list[ResponseEvent]]:
        """A stored response's events after `starting_after`, as they come: those of its execution
        (running, or a background one ended lately), else rebuilt from storage (until it ends, while
        it executes on another replica). An empty batch after `heartbeat` silent seconds."""
        repository = self._repository.scoped(caller.project_id)
        found = await stored(repository, repository.get_response, response_id)
        execution = self._running(caller, response_id) or self._finished.get(response_id)
        if execution is None or execution.caller.project_id != caller.project_id:
            async for batch in _follow_stored(repository, found, starting_after, heartbeat):
                yield batch
            return
        async for batch in execution.channel.follow(heartbeat):
            if batch and starting_after is not None:
                batch = [event for event in batch if event.sequence_number > starting_after]
                if not batch:
                    continue
            yield batch

    async def cancel(self, caller: Caller, response_id: str) -> ResponseRecord:
        """Stops a background response and returns it `cancelled`; one that has ended is returned
        as it is (cancelling twice is harmless)."""
        repository = self._repository.scoped(caller.project_id)
        response = await stored(repository, repository.get_response, response_id)
        if not response.background:
            raise ConflictError(
                "Only responses created with 'background' set to true can be cancelled.", code="invalid_state"
            )
        if response.status not in UNFINISHED:
            return response
        execution = self._running(caller, response_id)
        if execution is not None:
            return await self._stop(execution)
        # Nothing executes it here: end it in storage, then stop it on the replica executing it
        # (whose own end then finds it cancelled already: it ends once).
        to = ResponseStatus.CANCELLED
        cancelled = await stored(repository, repository.transition_response, response_id, to, RESPONSES.sources(to))
        if cancelled.applied:
            await self._coordination.cancel_response_elsewhere(response_id)
        return cancelled.record

    async def delete(self, caller: Caller, response_id: str) -> None:
        """Deletes a stored response, stopping it first if it runs; its conversation keeps its items."""
        execution = self._running(caller, response_id)
        if execution is not None:
            await self._stop(execution)
        await stored(self._repository, self._repository.scoped(caller.project_id).delete_response, response_id)
        self._finished.pop(response_id, None)
        if execution is None:
            # It may execute on another replica, which stops it once it finds it gone.
            await self._coordination.cancel_response_elsewhere(response_id)

    async def input_items(self, caller: Caller, response_id: str, page: PageRequest) -> Page[Item]:
        response = await stored(self._repository, self._repository.scoped(caller.project_id).get_response, response_id)
        return page_of(response.input_items, page)

    # ------------------------------------------------------------------ what coordination asks of this replica

    async def cancelled_elsewhere(self, response_id: str) -> None:
        execution = self._executions.get(response_id)
        if execution is None or execution.cancellation.requested:
            return
        repository = self._repository.scoped(execution.caller.project_id)
        try:
            found = await stored(repository, repository.get_response, response_id)
            stopping = found.status is ResponseStatus.CANCELLED
        except StoredNotFoundError:
            stopping = True  # deleted since: nothing is left to execute for
        if stopping and self._executions.get(response_id) is execution:
            execution.cancellation.request()

    # ------------------------------------------------------------------ executions

    def _running(self, caller: Caller, response_id: str) -> ResponseExecution | None:
        """The execution of a stored response of the caller's project running here, if any."""
        execution = self._executions.get(response_id)
        if execution is None or not execution.response.store or execution.caller.project_id != caller.project_id:
            return None
        return execution

    async def _stop(self, execution: ResponseExecution) -> ResponseRecord:
        execution.cancellation.request()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(execution.finished.wait(), CANCEL_WAIT)
        return execution.response

    def _launch(self, execution: ResponseExecution, work: Coroutine[Any, Any, None]) -> None:
        response_id = execution.response.id
        self._executions[response_id] = execution
        task = asyncio.create_task(execution.guarded(work), name=f"response-{response_id}")
        # The registry also keeps the task referenced (the event loop holds tasks weakly).
        task.add_done_callback(lambda _: self._forget(execution))
        execution.cancellation.task = task

    def _forget(self, execution: ResponseExecution) -> None:
        response = execution.response
        self._executions.pop(response.id, None)
        if response.background and response.store:
            self._finished[response.id] = execution
            while len(self._finished) > KEEP_FINISHED:
                self._finished.popitem(last=False)


async def _follow_stored(
    repository: Repository, response: ResponseRecord, starting_after: int | None, heartbeat: float | None
) -> AsyncIterator[list[ResponseEvent]]:
    """A response's events rebuilt from storage, after `starting_after`. One still unfinished executes
    on another replica: storage is read again until it ends (its output is stored when it ends, so
    its events come then), an empty batch after `heartbeat` silent seconds."""
    last = -1 if starting_after is None else starting_after
    spoke = time.monotonic()
    while True:
        # The replay of a response grows as it goes on: what is new is after what was sent.
        events = [event for event in replay(response) if event.sequence_number > last]
        if events:
            last = events[-1].sequence_number
            spoke = time.monotonic()
            yield events
        if response.status not in UNFINISHED:
            return
        await asyncio.sleep(STORED_POLL)
        if heartbeat is not None and time.monotonic() - spoke >= heartbeat:
            spoke = time.monotonic()
            yield []
        try:
            response = await stored(repository, repository.get_response, response.id)
        except StoredNotFoundError:
            return  # deleted meanwhile


def _chain(repository: Repository, previous_response_id: str | None) -> list[ResponseRecord]:
    if previous_response_id is None:
        return []
    try:
        return repository.response_chain(previous_response_id)
    except StoredNotFoundError:
        raise NotFoundError(
            f"Previous response with id '{previous_response_id}' not found.", param="previous_response_id"
        ) from None


def _conversation(repository: Repository, conversation_id: str | None) -> list[Item]:
    """The conversation's items, oldest first (none without a conversation)."""
    if conversation_id is None:
        return []
    try:
        return [record_item(message) for message in repository.thread_messages(conversation_id)]
    except StoredNotFoundError:
        raise NotFoundError(f"Conversation with id '{conversation_id}' not found.", param="conversation") from None


def _resolve(
    given: Sequence[Item | ItemReference], history: Sequence[Item], conversation: Sequence[Item]
) -> tuple[list[Item], list[Item]]:
    """The response's input items, references replaced by the items they name (in the chain of
    earlier responses or the conversation); and those of them the conversation does not hold yet."""
    in_conversation = {item.id: item for item in conversation}
    known = {item.id: item for item in history} | in_conversation
    inputs: list[Item] = []
    new: list[Item] = []
    for index, item in enumerate(given):
        if isinstance(item, ItemReference):
            found = known.get(item.id)
            if found is None:
                raise InvalidRequestError(
                    f"Item with id '{item.id}' not found.", param=f"input[{index}].id", code="invalid_value"
                )
            if found.id in in_conversation:
                inputs.append(found)
            else:
                # A copy: an item keeps one id in one place.
                copy = replace(found, id=new_item_id(found.type))
                inputs.append(copy)
                new.append(copy)
        else:
            inputs.append(item)
            new.append(item)
    return inputs, new
