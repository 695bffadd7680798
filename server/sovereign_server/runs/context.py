"""What a run sends its engine: instructions, the thread's messages (as many as its truncation
strategy and the model's context window allow), and the tool calls the run made with their outputs,
as plain engine dataclasses.

A run reads its thread from the newest message back (`read_context`, then `ThreadHistory` page by
page), only as far as the window reaches; `fit_run` chooses what is sent (`fitting`) and reads
the stored image files of what is sent (`images`). Each message's token count is kept in storage
under its tokenizer's key, so a long thread is counted once, not on every run.
"""

from __future__ import annotations

from asyncio import to_thread
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sovereign_server.engines import ChatMessage, Engine, FunctionTool, GenerationRequest, Tokenizer, ToolCall
from sovereign_server.runs.fitting import (
    TEMPLATE_MARGIN,
    Budget,
    ByteBound,
    Fitted,
    Turn,
    budget_for,
    fit,
    message_tokens,
)
from sovereign_server.runs.images import ImageFiles, NoImageFiles, engine_content, read_image_files
from sovereign_storage import (
    ContentPart,
    FileSearchCall,
    FunctionCallDetails,
    FunctionOutputDetails,
    ItemDetails,
    ItemRole,
    MessageRecord,
    MessageStatus,
    PageRequest,
    Repository,
    RunRecord,
    RunStepRecord,
    ToolCalls,
    search_results_text,
)

# Messages read with the run's start (one database trip), then in pages twice as large each time.
FIRST_PAGE = 32
MAX_PAGE = 1024
# Messages counted in one go (a request each to a model server's tokenizer, sent together).
COUNT_BATCH = 8


def search_context(call: FileSearchCall) -> ChatMessage:
    """A search's results as a system turn: how a search the model did not call itself reaches it
    (one made ahead of generating, or one of a conversation an Assistants run reads)."""
    return ChatMessage(
        role="system",
        content="Passages from the user's files that may answer the latest message; cite what you use "
        "with the marker above it.\n\n" + search_results_text(call),
    )


def search_turns(call: FileSearchCall) -> tuple[ChatMessage, ...]:
    """A search the model called, as its call and the result it read; one made ahead of
    generating, as the system turn that gave it."""
    if call.prefetched:
        return (search_context(call),)
    request = ToolCall(id=call.id, name=call.name, arguments=call.arguments)
    return (
        ChatMessage(role="assistant", content="", tool_calls=(request,)),
        ChatMessage(role="tool", content=call.output or "", tool_call_id=call.id),
    )


def tool_turns(steps: Sequence[RunStepRecord]) -> list[ChatMessage]:
    """Each tool_calls step with its outputs, as the assistant turn that called and the tool results."""
    turns: list[ChatMessage] = []
    for step in steps:
        details = step.step_details
        if not isinstance(details, ToolCalls) or not details.tool_calls:
            continue
        if any(call.output is None for call in details.tool_calls):
            continue
        calls = details.tool_calls
        turns.append(
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=tuple(ToolCall(id=call.id, name=call.name, arguments=call.arguments) for call in calls),
            )
        )
        turns.extend(ChatMessage(role="tool", content=call.output or "", tool_call_id=call.id) for call in calls)
    return turns


def generation_request(
    run: RunRecord, messages: Sequence[MessageRecord], steps: Sequence[RunStepRecord]
) -> GenerationRequest:
    """The whole request: `messages` are the thread's, oldest first, all sent."""
    conversation: list[ChatMessage] = []
    if run.instructions:
        conversation.append(ChatMessage(role="system", content=run.instructions))
    conversation.extend(chat_message(message) for message in messages if not _own_unfinished_reply(run, message))
    conversation.extend(tool_turns(steps))
    tools = tuple(
        FunctionTool(
            name=tool["function"]["name"],
            description=tool["function"].get("description"),
            parameters=tool["function"].get("parameters"),
            strict=tool["function"].get("strict"),
        )
        for tool in run.tools
        if tool.get("type") == "function"
    )
    return GenerationRequest(
        model=run.model,
        messages=tuple(conversation),
        tools=tools,
        tool_choice=run.tool_choice,
        parallel_tool_calls=run.parallel_tool_calls is not False,
        temperature=run.temperature,
        top_p=run.top_p,
        response_format=run.response_format,
        max_completion_tokens=run.max_completion_tokens,
    )


@dataclass(frozen=True)
class Context:
    """What a run reads when it starts: the thread's newest messages (newest first), whether older
    ones remain unread, the thread's first user message (None under `last_messages`, which reads
    only that many), and the run's own steps (earlier tool rounds)."""

    recent: list[MessageRecord]
    more: bool
    opening: MessageRecord | None
    steps: list[RunStepRecord]


def read_context(repository: Repository, run: RunRecord, steps: list[RunStepRecord]) -> Context:
    """Blocking: the start of the run's context, as its truncation strategy allows."""
    limit = last_messages(run)
    if limit is not None:
        return Context(repository.newest_items(run.thread_id, limit), False, None, steps)
    # Every item of the thread: a conversation's function calls and outputs, and its system messages, too.
    newest = repository.newest_items(run.thread_id, FIRST_PAGE + 1)
    recent, more = newest[:FIRST_PAGE], len(newest) > FIRST_PAGE
    if more:
        opening = repository.first_message(run.thread_id, "user")
    else:
        opening = next((m for m in reversed(recent) if m.role == "user" and m.item_details is None), None)
    return Context(recent, more, opening, steps)


class ThreadHistory:
    """A run's thread as a `fitting.History`: the messages of its `Context`, then older ones read
    page by page. A message's count is the one kept under the tokenizer's key, else counted now and
    added to `counted`, for the caller to keep (a second fitting of the same stretch reuses it)."""

    def __init__(
        self,
        run: RunRecord,
        context: Context,
        repository: Repository,
        tokenizer: Tokenizer,
        counted: dict[str, int],
    ) -> None:
        self._run = run
        self._repository = repository
        self._tokenizer = tokenizer
        self._opening = context.opening
        self._unread: list[MessageRecord] = list(context.recent)
        self._more = context.more
        self._oldest = context.recent[-1].id if context.recent else None
        self._page_size = FIRST_PAGE
        self.counted = counted
        self._uncounted: dict[str, int] = {}

    async def opening(self) -> Turn | None:
        if self._opening is None:
            return None
        return next(iter(await self._turns([self._opening])), None)

    async def older(self) -> Sequence[Turn]:
        # A batch may hold nothing to send (the run's own unfinished reply): read on.
        while (batch := await self._next_batch()) is not None:
            turns = await self._turns(batch)
            if turns:
                return turns
        return ()

    async def _next_batch(self) -> list[MessageRecord] | None:
        """Up to COUNT_BATCH messages still to count, and those already counted between them: the
        walk back stops where the window is full, so a thread's first run counts little more than
        what it sends. None once the thread's start is reached."""
        if not self._unread:
            if not self._more or self._oldest is None:
                return None
            self._page_size = min(self._page_size * 2, MAX_PAGE)
            request = PageRequest(limit=self._page_size, order="desc", after=self._oldest)
            read = await to_thread(lambda: self._repository.list_messages(self._run.thread_id, request, all_items=True))
            self._unread, self._more = read.items, read.has_more
            if not self._unread:
                return None
            self._oldest = self._unread[-1].id
        taken, missing = 0, 0
        while taken < len(self._unread) and missing < COUNT_BATCH:
            missing += self._known(self._unread[taken]) is None
            taken += 1
        batch, self._unread = self._unread[:taken], self._unread[taken:]
        return batch

    async def _turns(self, messages: Sequence[MessageRecord]) -> list[Turn]:
        sent = [message for message in messages if not _own_unfinished_reply(self._run, message)]
        chats = [chat_message(message) for message in sent]
        missing = [(message, chat) for message, chat in zip(sent, chats, strict=True) if self._known(message) is None]
        if missing:
            counts = await self._tokenizer.count([chat.text for _, chat in missing])
            for (message, _), count in zip(missing, counts, strict=True):
                # Only the final content of a message is worth keeping a count of.
                keep = self._tokenizer.key is not None and message.status is not MessageStatus.IN_PROGRESS
                (self.counted if keep else self._uncounted)[message.id] = count
        turns = []
        for message, chat in zip(sent, chats, strict=True):
            known = self._known(message)
            assert known is not None, "counted above"
            turns.append(Turn((chat,), message_tokens(chat, known, self._tokenizer.image_tokens), message.id))
        return turns

    def _known(self, message: MessageRecord) -> int | None:
        key = self._tokenizer.key
        known = self.counted.get(message.id, self._uncounted.get(message.id))
        if known is None and key is not None and message.token_counts is not None:
            known = message.token_counts.get(key)
        return known


@dataclass(frozen=True)
class RunPrompt:
    """What a stretch of a run sends: the fitted request, or None when not even the newest message
    fits (the run ends incomplete), with the budget it was fitted to."""

    fitted: Fitted | None
    budget: Budget
    tokenizer_key: str | None


async def fit_run(
    run: RunRecord,
    context: Context,
    engine: Engine,
    repository: Repository,
    counted: dict[str, int],
    *,
    prompt_tokens_used: int = 0,
    image_files: ImageFiles | None = None,
) -> RunPrompt:
    """The run's request fitted to its model's window, less the reply's room, and to what is left
    of `max_prompt_tokens` after the run's earlier stretches (`prompt_tokens_used`): OpenAI counts
    that limit over the whole run. The stored image files it shows are read from `image_files`."""
    window = await engine.context_window(run.model)
    tokenizer = await engine.tokenizer(run.model)
    remaining = None if run.max_prompt_tokens is None else run.max_prompt_tokens - prompt_tokens_used
    budget = budget_for(window, max_completion_tokens=run.max_completion_tokens, max_prompt_tokens=remaining)
    frame = generation_request(run, [], [])
    pinned = tool_turns(context.steps)
    fitted = None
    if not context.more and not run.tools:
        # A thread read whole whose bytes bound its tokens within the budget goes uncounted.
        bound = ByteBound(tokenizer.image_tokens)
        history = ThreadHistory(run, context, repository, bound, {})
        quick = await fit(frame, history, bound, budget.prompt - TEMPLATE_MARGIN, pinned=pinned)
        fitted = quick if quick is not None and quick.whole else None
    if fitted is None:
        history = ThreadHistory(run, context, repository, tokenizer, counted)
        fitted = await fit(frame, history, tokenizer, budget.prompt, pinned=pinned)
    if fitted is not None and run.max_completion_tokens is not None:
        # No more than the window still holds: some servers refuse a request that asks for more.
        room = min(run.max_completion_tokens, window - fitted.prompt_tokens)
        fitted = replace(fitted, request=replace(fitted.request, max_completion_tokens=max(room, 1)))
    if fitted is not None:
        files = image_files or NoImageFiles()
        fitted = replace(fitted, request=await read_image_files(fitted.request, files, repository.project_id))
    return RunPrompt(fitted, budget, tokenizer.key)


def chat_message(message: MessageRecord) -> ChatMessage:
    return item_message(message.role, message.content, message.item_details)


def item_message(role: ItemRole, content: Sequence[ContentPart], details: ItemDetails | None) -> ChatMessage:
    """One item of a thread (a conversation) as one engine message: a function call the Responses
    API added is an assistant turn that calls, its output a tool result, a system or developer
    message a system turn."""
    if isinstance(details, FunctionCallDetails):
        call = ToolCall(id=details.call_id, name=details.name, arguments=details.arguments)
        return ChatMessage(role="assistant", content="", tool_calls=(call,))
    if isinstance(details, FunctionOutputDetails):
        return ChatMessage(role="tool", content=details.output, tool_call_id=details.call_id)
    if isinstance(details, FileSearchCall):
        # A run reads a conversation's search as the passages it found: its call was another turn's.
        return search_context(details)
    if role in ("system", "developer"):
        return ChatMessage(role="system", content=engine_content(content))
    return ChatMessage(role="user" if role == "user" else "assistant", content=engine_content(content))


def _own_unfinished_reply(run: RunRecord, message: MessageRecord) -> bool:
    return message.run_id == run.id and message.status is MessageStatus.IN_PROGRESS


def last_messages(run: RunRecord) -> int | None:
    """How many of the thread's newest messages the run reads (None: all)."""
    strategy = run.truncation_strategy
    if strategy is not None and strategy.type == "last_messages":
        return strategy.last_messages
    return None
