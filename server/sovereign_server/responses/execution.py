"""One response's execution, read top to bottom, from its creation until it ends.

    begin      queued -> in_progress (a background response; the others are created in progress)
    generate   the engine messages assembled (`_request`, the one place); the engine's chunks ->
               output items (a message and its text, function calls and their arguments) -> events;
               the calls of tools the server runs (file_search, `responses.tools`) run here, each a
               `file_search_call` item, and the model generates again with their results; the
               reply's citations close it
    end        completed | incomplete, or failed | cancelled with what was half-written closed
               `incomplete`; the output joins the response's conversation in the same write

The engine turn is `runs/generation.py`'s `Generation`, stopped by its `Cancellation`, with this
execution as its `ReplySink`. Every status change goes through `_transition`: the write comes first
and the event after, so a poller never runs behind a stream. A response that is not stored
(`store: false`) changes in memory only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sovereign_server.caller import Caller
from sovereign_server.engines import Engine, EngineError
from sovereign_server.engines import ToolCallDelta as EngineToolCallDelta
from sovereign_server.responses.context import conversation_item, engine_messages, generation_request
from sovereign_server.responses.model import (
    RESPONSES,
    ArgumentsEvent,
    ContentPartEvent,
    ItemEvent,
    OutputItemEvent,
    ResponseEvent,
    ResponseEventData,
    ResponseEventType,
    ResponseObserver,
)
from sovereign_server.responses.tools import ResponseTools
from sovereign_server.runs.channel import Channel
from sovereign_server.runs.fitting import Fitted, budget_for, fit_by_bytes, fit_messages
from sovereign_server.runs.generation import Cancellation, Generation, Reply
from sovereign_server.runs.images import ImageFiles, NoImageFiles, read_image_files
from sovereign_server.runs.model import StreamError
from sovereign_server.stored import stored
from sovereign_storage import (
    FILE_SEARCH,
    FILE_SEARCH_CALL_PREFIX,
    FUNCTION_CALL_PREFIX,
    MESSAGE_PREFIX,
    FileCitation,
    FileSearchCall,
    FunctionCall,
    FunctionCallDetails,
    IncompleteDetails,
    Item,
    LastError,
    MessageStatus,
    Repository,
    ResponseRecord,
    ResponseStatus,
    TextContent,
    Usage,
    new_id,
    search_query,
)
from sovereign_storage import NotFoundError as StoredNotFoundError

logger = logging.getLogger("sovereign.responses")

FAILURE_MESSAGE = "The server had an error while processing your request."
CONTEXT_TOO_LONG = (
    "The input is longer than the model's context window allows; "
    "set 'truncation' to 'auto' to leave out the oldest of it."
)

# Model turns that may call server tools (file_search) in one response before it must answer.
MAX_SERVER_TOOL_ROUNDS = 8

Publish = Callable[[ResponseEventType, ResponseEventData], None]


@dataclass
class _Output:
    """One output item as it grows: a message's text, a function call's arguments, or a file
    search the server runs."""

    index: int
    id: str
    call: FunctionCallDetails | None = None
    pieces: list[str] = field(default_factory=list)
    status: MessageStatus = MessageStatus.IN_PROGRESS
    # A message's text part exists once `response.content_part.added` announced it.
    has_part: bool = False
    annotations: tuple[FileCitation, ...] = ()
    search: FileSearchCall | None = None

    def item(self) -> Item:
        if self.search is not None:
            return Item(self.id, "assistant", self.status, details=self.search)
        if self.call is not None:
            details = replace(self.call, arguments="".join(self.pieces))
            return Item(self.id, "assistant", self.status, details=details)
        content = (TextContent("".join(self.pieces), self.annotations),) if self.has_part else ()
        return Item(self.id, "assistant", self.status, content)


class OutputItems:
    """A response's output as the model produces it: text opens a message, a new tool call opens
    a function call item (closing the item before), and each step goes out as OpenAI's events."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish
        self._outputs: list[_Output] = []
        self._calls: dict[int, _Output] = {}
        self._open: _Output | None = None

    def items(self) -> tuple[Item, ...]:
        return tuple(output.item() for output in self._outputs)

    @property
    def empty(self) -> bool:
        return not self._outputs

    @property
    def open_text(self) -> str:
        """The text of the message being written ("" when none is)."""
        output = self._open
        return "".join(output.pieces) if output is not None and output.call is None else ""

    def searches(self) -> list[FileSearchCall]:
        return [output.search for output in self._outputs if output.search is not None]

    def annotate(self, annotations: tuple[FileCitation, ...]) -> None:
        """Sets the citations of the message being written (it closes with them)."""
        if self._open is not None and self._open.call is None:
            self._open.annotations = annotations

    def search(self, call: FileSearchCall, item_id: str | None = None) -> int:
        """Opens a `file_search_call` item, in progress and then searching; returns its index."""
        output = self._add(item_id or new_id(FILE_SEARCH_CALL_PREFIX), None, call)
        self._open = None  # nothing streams into a search: `searched` ends it
        at = ItemEvent(output.id, output.index)
        self._publish(ResponseEventType.FILE_SEARCH_CALL_IN_PROGRESS, at)
        self._publish(ResponseEventType.FILE_SEARCH_CALL_SEARCHING, at)
        return output.index

    def searched(self, index: int, call: FileSearchCall, status: MessageStatus = MessageStatus.COMPLETED) -> None:
        """Ends the search item at `index` with what it found."""
        output = self._outputs[index]
        output.search, output.status = call, status
        if status is MessageStatus.COMPLETED:
            self._publish(ResponseEventType.FILE_SEARCH_CALL_COMPLETED, ItemEvent(output.id, output.index))
        self._publish(ResponseEventType.OUTPUT_ITEM_DONE, OutputItemEvent(output.index, output.item()))

    def text(self, text: str, item_id: str | None = None) -> None:
        output = self._open
        if output is None or output.call is not None:
            output = self._add(item_id or new_id(MESSAGE_PREFIX), None)
            output.has_part = True
            self._publish(ResponseEventType.CONTENT_PART_ADDED, ContentPartEvent(output.id, output.index, 0, ""))
        if text:
            output.pieces.append(text)
            self._publish(ResponseEventType.OUTPUT_TEXT_DELTA, ContentPartEvent(output.id, output.index, 0, text))

    def call(
        self, index: int, call_id: str | None, name: str | None, arguments: str, item_id: str | None = None
    ) -> None:
        output = self._calls.get(index)
        if output is None:
            call = FunctionCallDetails(call_id or new_id("call"), name or "", "")
            output = self._calls[index] = self._add(item_id or new_id(FUNCTION_CALL_PREFIX), call)
        elif output.call is not None and (name and not output.call.name):
            output.call = replace(output.call, name=name)
        if arguments:
            output.pieces.append(arguments)
            delta = ArgumentsEvent(output.id, output.index, arguments)
            self._publish(ResponseEventType.FUNCTION_CALL_ARGUMENTS_DELTA, delta)

    def close(self, status: MessageStatus) -> None:
        """Ends the item being produced, `status` (`completed`, or `incomplete` when cut short)."""
        output, self._open = self._open, None
        if output is None:
            return
        output.status = status
        text = "".join(output.pieces)
        if output.call is None:
            ended = ContentPartEvent(output.id, output.index, 0, text, output.annotations)
            self._publish(ResponseEventType.OUTPUT_TEXT_DONE, ended)
            self._publish(ResponseEventType.CONTENT_PART_DONE, ended)
        else:
            done = ArgumentsEvent(output.id, output.index, text, output.call.name)
            self._publish(ResponseEventType.FUNCTION_CALL_ARGUMENTS_DONE, done)
        self._publish(ResponseEventType.OUTPUT_ITEM_DONE, OutputItemEvent(output.index, output.item()))

    def _add(self, item_id: str, call: FunctionCallDetails | None, search: FileSearchCall | None = None) -> _Output:
        self.close(MessageStatus.COMPLETED)
        output = _Output(len(self._outputs), item_id, call, search=search)
        self._outputs.append(output)
        self._open = output
        self._publish(ResponseEventType.OUTPUT_ITEM_ADDED, OutputItemEvent(output.index, output.item()))
        return output


class ResponseExecution:
    """One response, from its start to its end, publishing its events on `channel`."""

    def __init__(
        self,
        response: ResponseRecord,
        repository: Repository | None,
        engine: Engine,
        caller: Caller,
        observer: ResponseObserver,
        context: Sequence[Item],
        image_files: ImageFiles | None = None,
        tools: ResponseTools | None = None,
    ) -> None:
        self.response = response
        self.caller = caller
        self.channel: Channel[ResponseEvent] = Channel()
        self.cancellation = Cancellation()
        # Set once the execution has ended and its last event is out.
        self.finished = asyncio.Event()
        self._repository = repository
        self._engine = engine
        self._observer = observer
        self._context = list(context)
        self._image_files: ImageFiles = image_files or NoImageFiles()
        self._sequence = 0
        self._output = OutputItems(self.publish)
        self._generation: Generation | None = None
        # The usage of the model turns before the current one (those that called server tools).
        self._spent = Usage()
        # Tools the server runs itself, if the response has any; the indexes of the current turn's
        # calls that are theirs (not output as function calls), and the rounds of them so far.
        self._tools = tools if tools is not None and tools.used_by(response) else None
        self._server_calls: set[int] = set()
        self._server_rounds = 0

    def publish(self, event_type: ResponseEventType, data: ResponseEventData) -> None:
        self.channel.publish(ResponseEvent(event_type, self._sequence, data))
        self._sequence += 1

    def announce(self) -> None:
        """The events of the response as created: `created` (and `queued` in the background, else
        `in_progress`)."""
        self.publish(ResponseEventType.CREATED, self.response)
        self.publish(RESPONSES.event(self.response.status), self.response)

    def snapshot(self) -> ResponseRecord:
        """The response as it is now, with its output so far."""
        if self.response.status is ResponseStatus.IN_PROGRESS:
            return replace(self.response, output_items=self._output.items())
        return self.response

    async def guarded(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs `work` to the response's end: an engine failure or an unexpected one fails the
        response, after an `error` event; the channel always closes."""
        try:
            await work
        except EngineError as error:
            self._observer.engine_failed(error.code)
            await self._fail(LastError(error.code, error.message))
        except asyncio.CancelledError:
            raise  # the server is stopping: the response is ended as interrupted
        except StoredNotFoundError:
            # Deleted while it executed (through another replica, say): nothing is left to end.
            logger.info("response %s was deleted while it executed", self.response.id)
        except Exception:
            logger.exception("response %s failed", self.response.id)
            try:
                await self._fail(LastError("server_error", FAILURE_MESSAGE))
            except Exception:
                logger.exception("response %s could not be marked failed", self.response.id)
        finally:
            self._observer.response_ended(self.caller, self.response)
            self.channel.close()
            self.finished.set()

    # ------------------------------------------------------------------ begin

    async def run_in_background(self) -> None:
        """A background response: queued -> in_progress, then generate."""
        if await self._transition(ResponseStatus.IN_PROGRESS):
            await self.generate()

    # ------------------------------------------------------------------ generate

    async def generate(self) -> None:
        if self.response.status is not ResponseStatus.IN_PROGRESS:
            return
        if self._tools is not None and self._tools.prefetch:
            # A model that cannot call tools gets the search of the latest user message up front.
            await self._search([FunctionCall(new_id("call"), FILE_SEARCH, "")], prefetched=True)
        while True:
            fitted = await self._request()
            if fitted is None:
                await self._fail(LastError("invalid_prompt", CONTEXT_TOO_LONG))
                return
            request = fitted.request
            if self._tools is not None:
                request = self._tools.offer(self.response, request)
            self._server_calls = set()
            timing = self._observer.token_timing(self.response.model, self._engine.backend_name(self.response.model))
            self._generation = Generation(self._engine, request, fitted.prompt_tokens, timing)
            reply = await self._generation.run(self, self.cancellation)
            if reply is None:
                await self._end(ResponseStatus.CANCELLED)
                return
            if not await self._run_server_tools(reply):
                break
        await self._cite()
        if reply.finish_reason == "length":
            await self._end(ResponseStatus.INCOMPLETE, details=IncompleteDetails("max_output_tokens"))
        else:
            await self._end(ResponseStatus.COMPLETED)

    async def _run_server_tools(self, reply: Reply) -> bool:
        """Runs the calls of the server's tools (file_search) the turn made: True when the model
        should generate again with their results. The turn's other calls end the response, waiting
        for the caller's outputs, as any function call does."""
        tools = self._tools
        if tools is None or reply.finish_reason != "tool_calls" or self._server_rounds >= MAX_SERVER_TOOL_ROUNDS:
            return False
        server = [call for call in reply.tool_calls if tools.handles(call.name)]
        if not server:
            return False
        self._server_rounds += 1
        self._spent += reply.usage
        self._generation = None
        await self._search(server)
        return len(server) == len(reply.tool_calls)

    async def _search(self, calls: Sequence[FunctionCall], *, prefetched: bool = False) -> None:
        """Each call as a `file_search_call` item: opened, searched, ended with its results. A search
        is numbered among those the model has seen (its context's and this response's), as its
        results' markers are."""
        assert self._tools is not None
        for call in calls:
            query = search_query(call.arguments) or _last_user_text([*self._context, *self._output.items()])
            number = len(self._searches())
            pending = FileSearchCall(call.id, query, number=number, prefetched=prefetched)
            index = self._output.search(pending)
            try:
                found = await self._tools.search(self.caller.project_id, self.response, pending)
            except BaseException:
                self._output.searched(index, pending, MessageStatus.INCOMPLETE)
                raise
            self._output.searched(index, found)

    def _searches(self) -> list[FileSearchCall]:
        earlier = [item.details for item in self._context if isinstance(item.details, FileSearchCall)]
        return [*earlier, *self._output.searches()]

    async def _cite(self) -> None:
        """Annotates the reply with the files it cites (`file_citation`); a reply that cites nothing
        gets the files of the last search appended, as one more delta."""
        if self._tools is None:
            return
        citation = self._tools.cite(self._output.open_text, self._searches())
        if citation is None or (citation.suffix and not self._output.searches()):
            return  # files are appended only to the answer of a response that searched
        if citation.suffix:
            self._output.text(citation.suffix)
        self._output.annotate(citation.annotations)

    async def _request(self) -> Fitted | None:
        """What the engine is sent. The one place its messages are assembled: the response's
        instructions, then the items of its context (earlier responses or its conversation, and
        its own input, then its output so far), oldest first; fitted to the model's window (`runs.fitting`). With
        `truncation: auto` the oldest turns are left out until it fits, room kept for the reply;
        else (and when not even the newest turn fits) None: the window cannot hold the input."""
        response = self.response
        # The output so far: what the model wrote before calling a server tool, and the tool's results.
        items = [*self._context, *self._output.items()]
        request = generation_request(response, engine_messages(response.instructions, items))
        window = await self._engine.context_window(response.model)
        if response.truncation == "auto":
            # As a run's: room is kept for the reply, and the oldest turns go first.
            prompt_budget = budget_for(window, max_completion_tokens=response.max_output_tokens).prompt
        else:
            # As OpenAI's: only an input the window cannot hold fails.
            prompt_budget = window - 1
        images = any(message.images for message in request.messages)
        tokenizer = await self._engine.tokenizer(response.model)
        # Surely within the window is sent as it is, uncounted (the engine reports the usage);
        # not when a server tool joins it after fitting, whose description a template may spend much on.
        fitted = None if self._tools is not None else await fit_by_bytes(request, tokenizer.image_tokens, prompt_budget)
        if fitted is None:
            fitted = await fit_messages(request, tokenizer, prompt_budget)
        if fitted is None or (response.truncation != "auto" and fitted.request.messages != request.messages):
            return None
        if response.max_output_tokens is not None:
            # No more than the window still holds: some servers refuse a request that asks for more.
            room = min(response.max_output_tokens, window - fitted.prompt_tokens)
            fitted = replace(fitted, request=replace(fitted.request, max_completion_tokens=max(room, 1)))
        if images:
            # Stored image files are read (into data: URLs) only for the messages that are sent.
            read = await read_image_files(fitted.request, self._image_files, self.caller.project_id)
            fitted = replace(fitted, request=read)
        return fitted

    async def on_text(self, text: str) -> None:
        self._output.text(text)

    async def on_tool_call(self, fragment: EngineToolCallDelta) -> None:
        if fragment.index in self._server_calls:
            return
        if self._tools is not None and fragment.name and self._tools.handles(fragment.name):
            # The server runs it after the turn (`_run_server_tools`): no function call item.
            self._server_calls.add(fragment.index)
            return
        self._output.call(fragment.index, fragment.id, fragment.name, fragment.arguments)

    # ------------------------------------------------------------------ end

    async def _fail(self, error: LastError) -> None:
        await self._end(ResponseStatus.FAILED, error=error)

    async def _end(
        self, to: ResponseStatus, *, details: IncompleteDetails | None = None, error: LastError | None = None
    ) -> None:
        """Ends the response `to`, with its output (the item in progress closed) and usage."""
        if to is ResponseStatus.COMPLETED and self._output.empty:
            self._output.text("")  # even an empty answer is a message
        self._output.close(MessageStatus.COMPLETED if to is ResponseStatus.COMPLETED else MessageStatus.INCOMPLETE)
        if error is not None and RESPONSES.allows(self.response.status, to):
            # After the stream began, the failure is an `error` event, then `response.failed`.
            self.publish(ResponseEventType.ERROR, StreamError(error.message, code=error.code))
        usage = self._spent + (self._generation.usage if self._generation is not None else Usage())
        changes = {"output_items": self._output.items(), "usage": usage, "incomplete_details": details, "error": error}
        await self._transition(to, changes)

    # ------------------------------------------------------------------ status changes

    async def _transition(self, to: ResponseStatus, changes: Mapping[str, Any] | None = None) -> bool:
        """Moves the response to `to` with `changes`, adding its output to its conversation in the
        same transaction; then publishes the change (a cancelled response's stream just ends)."""
        values: dict[str, Any] = dict(changes or {})
        repository = self._repository
        if repository is None:
            applied = RESPONSES.allows(self.response.status, to)
            if applied:
                if to is ResponseStatus.COMPLETED:
                    values["completed_at"] = int(time.time())
                self.response = replace(self.response, status=to, **values)
        else:
            response = self.response

            def write() -> tuple[ResponseRecord, bool]:
                with repository.batch():
                    result = repository.transition_response(response.id, to, RESPONSES.sources(to), values)
                    output = values.get("output_items", ())
                    if result.applied and response.conversation_id is not None and output:
                        repository.append_items(
                            response.conversation_id, [conversation_item(i, response.prompt_id) for i in output]
                        )
                    return result.record, result.applied

            self.response, applied = await stored(repository, write)
        if applied and to is not ResponseStatus.CANCELLED:
            self.publish(RESPONSES.event(to), self.response)
        return applied


def replay(response: ResponseRecord) -> list[ResponseEvent]:
    """The events a stored response's stream had, rebuilt from the response: what a stream asked
    for after its execution has gone (another process, or long ago) shows. Text arrives in one delta."""
    events: list[ResponseEvent] = []

    def publish(event_type: ResponseEventType, data: ResponseEventData) -> None:
        events.append(ResponseEvent(event_type, len(events), data))

    def at_start(status: ResponseStatus) -> ResponseRecord:
        return replace(
            response,
            status=status,
            output_items=(),
            usage=None,
            error=None,
            incomplete_details=None,
            completed_at=None,
        )

    first = ResponseStatus.QUEUED if response.background else ResponseStatus.IN_PROGRESS
    publish(ResponseEventType.CREATED, at_start(first))
    publish(RESPONSES.event(first), at_start(first))
    if response.status is ResponseStatus.QUEUED:
        return events
    if response.background:
        publish(ResponseEventType.IN_PROGRESS, at_start(ResponseStatus.IN_PROGRESS))
    output = OutputItems(publish)
    for index, item in enumerate(response.output_items):
        if isinstance(item.details, FileSearchCall):
            output.searched(output.search(item.details, item_id=item.id), item.details, item.status)
            continue
        if isinstance(item.details, FunctionCallDetails):
            call = item.details
            output.call(index, call.call_id, call.name, call.arguments, item_id=item.id)
        else:
            parts = [part for part in item.content if isinstance(part, TextContent)]
            output.text("".join(part.value for part in parts), item_id=item.id)
            output.annotate(tuple(citation for part in parts for citation in part.annotations))
        output.close(item.status)
    if response.status is ResponseStatus.FAILED and response.error is not None:
        publish(ResponseEventType.ERROR, StreamError(response.error.message, code=response.error.code))
    if response.status in (ResponseStatus.COMPLETED, ResponseStatus.INCOMPLETE, ResponseStatus.FAILED):
        publish(RESPONSES.event(response.status), response)
    return events


def _last_user_text(items: Sequence[Item]) -> str:
    """What a search without a query looks for: the latest user message's text."""
    for item in reversed(items):
        if item.type == "message" and item.role == "user":
            return "\n".join(part.value for part in item.content if isinstance(part, TextContent))
    return ""
