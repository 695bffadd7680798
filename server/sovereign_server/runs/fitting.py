"""Fitting a conversation into a model's context window: OpenAI's `truncation_strategy: auto`,
where "messages in the middle of the thread will be dropped to fit the context length of the model".

What a prompt keeps, by priority:

1. the frame: the leading system messages (instructions) and the tools offered, and the pinned
   messages after the conversation (the tool-call turns of the current run), all whole;
2. the conversation's newest turn;
3. its opening, the first user message, if it fits beside them;
4. as many turns before the newest as fit, going back in time.

The middle, between the opening and the oldest recent turn kept, is what gets dropped. A turn is
one message, or an assistant message that called tools together with the results answering it:
kept or dropped whole, never split. When the frame and the newest turn alone exceed the budget,
nothing is sent (`fit` returns None): a run then ends `incomplete` for `max_prompt_tokens`, as
OpenAI's do.

Counting: a message costs its content's tokens, as the model's tokenizer counts them (the content as
text: `ChatMessage.text`, each image as its placeholder), plus `MESSAGE_OVERHEAD` for its chat
template's role markers, plus the tokenizer's `image_tokens` for each image; a tool costs its JSON's
tokens plus `TOOL_OVERHEAD`. Where the tokenizer counts a whole rendered prompt exactly (llama.cpp,
vLLM), the choice is checked against that count and narrowed until it fits, and that count is the
prompt's size; elsewhere the generous sum stands. No server counts an image before it reads it, so a
prompt with images is counted with their placeholders, plus their `image_tokens` (not exact).

The conversation comes through `History`, newest turn first, so a thread of any length is read
only as far back as the window reaches. Nothing here reads storage or speaks HTTP: runs supply a
thread read page by page with counts kept per message (`context.ThreadHistory`), and any API with
its messages in memory calls `fit_messages`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from sovereign_server.engines import ChatMessage, GenerationRequest, Tokenizer

__all__ = [
    "MESSAGE_OVERHEAD",
    "TEMPLATE_MARGIN",
    "Budget",
    "ByteBound",
    "Fitted",
    "History",
    "Turn",
    "budget_for",
    "count_texts",
    "fit",
    "fit_by_bytes",
    "fit_messages",
    "message_texts",
    "message_tokens",
]

# Tokens a chat template adds around one message (ChatML's `<|im_start|>role\n ... <|im_end|>\n`
# is 5 to 8; Llama 3's header tokens 5), and around one offered tool.
MESSAGE_OVERHEAD = 8
TOOL_OVERHEAD = 16
# The generation prompt and whatever the template adds once (a default system line, say).
PROMPT_OVERHEAD = 32
# What a chat template may add beyond these allowances when no tool is offered (a default system
# prompt, say): kept free when a prompt is bounded by its bytes instead of counted (`ByteBound`).
# Templates that offer tools spend hundreds of tokens describing them: such prompts are counted.
TEMPLATE_MARGIN = 128
# Room kept for the reply when the run sets no max_completion_tokens: a quarter of the window, at
# most 4,096 tokens; a max_completion_tokens beyond half the window keeps half.
DEFAULT_REPLY_SHARE = 4
MAX_DEFAULT_REPLY = 4096
# Exact counts (and narrower choices) tried before giving up on a prompt that keeps overflowing.
MAX_CHECKS = 6


@dataclass(frozen=True)
class Budget:
    """A context window shared out: `reply` tokens kept free, `prompt` tokens for the prompt."""

    window: int
    reply: int
    prompt: int


def budget_for(
    window: int, *, max_completion_tokens: int | None = None, max_prompt_tokens: int | None = None
) -> Budget:
    """The prompt may take the window less the reply's room, and at most `max_prompt_tokens`."""
    if max_completion_tokens is not None:
        reply = min(max_completion_tokens, window // 2)
    else:
        reply = min(window // DEFAULT_REPLY_SHARE, MAX_DEFAULT_REPLY)
    prompt = window - reply
    if max_prompt_tokens is not None:
        prompt = min(prompt, max_prompt_tokens)
    return Budget(window, reply, max(prompt, 0))


@dataclass(frozen=True)
class Turn:
    """Messages kept or dropped together, their cost in tokens, and a name (a stored message's
    id) by which the opening is recognised when the walk back reaches it."""

    messages: tuple[ChatMessage, ...]
    tokens: int
    id: str


class History(Protocol):
    """A conversation, walked from its newest turn back."""

    async def opening(self) -> Turn | None:
        """The conversation's first user turn, if it has one."""
        ...

    async def older(self) -> Sequence[Turn]:
        """The next turns back in time, newest first; empty once the start is reached."""
        ...


@dataclass(frozen=True)
class Fitted:
    """The request to send, and its prompt tokens (`exact`: as the model will count them)."""

    request: GenerationRequest
    prompt_tokens: int
    exact: bool
    turns: int
    # Every turn of the conversation was kept: nothing was dropped.
    whole: bool = False


def message_texts(message: ChatMessage) -> list[str]:
    """The texts of a message that the model reads: its content (images as their placeholders), and
    its tool calls' names and arguments."""
    return [message.text, *(part for call in message.tool_calls for part in (call.name, call.arguments))]


def message_tokens(message: ChatMessage, text_tokens: int, image_tokens: int) -> int:
    """A message's cost, from the tokens of its texts and what one of its images costs."""
    return text_tokens + MESSAGE_OVERHEAD * (1 + len(message.tool_calls)) + image_tokens * len(message.images)


async def fit(
    frame: GenerationRequest,
    history: History,
    tokenizer: Tokenizer,
    budget: int,
    *,
    pinned: Sequence[ChatMessage] = (),
) -> Fitted | None:
    """The request made of `frame` (its messages are the leading system ones; its tools and
    options are sent as they are), the turns of `history` that fit, and `pinned`; None when the
    frame, `pinned` and the newest turn alone exceed `budget` tokens."""
    fixed = await _frame_tokens(frame, pinned, tokenizer)
    walk = _Walk(history)
    opening = await history.opening()
    allowance = budget - fixed
    for _ in range(MAX_CHECKS):
        chosen = await _choose(walk, opening, allowance)
        if chosen is None:
            return None
        turns, estimate, whole = chosen
        conversation = tuple(message for turn in turns for message in turn.messages)
        request = replace(frame, messages=(*frame.messages, *conversation, *pinned))
        images = sum(len(message.images) for message in request.messages)
        exact = await tokenizer.count_prompt(_as_text(request) if images else request)
        if exact is None:
            return Fitted(request, fixed + estimate, exact=False, turns=len(turns), whole=whole)
        exact += images * tokenizer.image_tokens
        if exact <= budget:
            return Fitted(request, exact, exact=not images, turns=len(turns), whole=whole)
        # The template costs more than estimated: shrink the estimate in the proportion it was
        # short (right for a cost per message; a fixed cost converges in a few rounds), by a turn at least.
        allowance = min((fixed + estimate) * budget // exact - fixed, estimate - 1)
    return None


async def fit_messages(
    request: GenerationRequest, tokenizer: Tokenizer, budget: int, *, pinned: int = 0
) -> Fitted | None:
    """`fit` for a conversation held in memory (a chain of responses, say): `request.messages` are
    the leading system messages, the conversation, then `pinned` messages kept whole."""
    messages = request.messages
    lead = next((index for index, message in enumerate(messages) if message.role != "system"), len(messages))
    end = max(lead, len(messages) - pinned)
    groups = _turns(messages[lead:end])
    counts = iter(await count_texts(tokenizer, [message_texts(message) for group in groups for message in group]))
    turns = [
        Turn(group, sum(message_tokens(message, next(counts), tokenizer.image_tokens) for message in group), str(index))
        for index, group in enumerate(groups)
    ]
    frame = replace(request, messages=messages[:lead])
    return await fit(frame, _ListHistory(turns), tokenizer, budget, pinned=messages[end:])


async def fit_by_bytes(request: GenerationRequest, image_tokens: int, budget: int) -> Fitted | None:
    """`request` whole and uncounted, when its bytes bound its tokens within `budget` (less
    `TEMPLATE_MARGIN`); else None, and it is to be counted. A request that offers tools is always
    counted (templates spend hundreds of tokens describing them)."""
    if request.tools:
        return None
    bound = ByteBound(image_tokens)
    fitted = await fit_messages(request, bound, budget - TEMPLATE_MARGIN)
    return fitted if fitted is not None and fitted.whole else None


def _as_text(request: GenerationRequest) -> GenerationRequest:
    """`request` with every image as its placeholder text: what a tokenizer can count."""
    messages = request.messages
    return replace(request, messages=tuple(replace(m, content=m.text) if m.images else m for m in messages))


def _turns(messages: Sequence[ChatMessage]) -> list[tuple[ChatMessage, ...]]:
    """Messages in turns: tool results join the assistant message whose calls they answer."""
    groups: list[list[ChatMessage]] = []
    for message in messages:
        if message.role == "tool" and groups and groups[-1][0].tool_calls:
            groups[-1].append(message)
        else:
            groups.append([message])
    return [tuple(group) for group in groups]


class _ListHistory:
    def __init__(self, turns: Sequence[Turn]) -> None:
        self._turns = turns
        self._given = False

    async def opening(self) -> Turn | None:
        return next((turn for turn in self._turns if turn.messages[0].role == "user"), None)

    async def older(self) -> Sequence[Turn]:
        if self._given:
            return ()
        self._given = True
        return list(reversed(self._turns))


class _Walk:
    """The turns of a history read so far, newest first, read further on demand: a narrower
    second choice goes over the same turns without reading them again."""

    def __init__(self, history: History) -> None:
        self._history = history
        self._turns: list[Turn] = []
        self._ended = False

    async def at(self, index: int) -> Turn | None:
        while index >= len(self._turns) and not self._ended:
            older = await self._history.older()
            self._turns.extend(older)
            self._ended = not older
        return self._turns[index] if index < len(self._turns) else None


async def _choose(walk: _Walk, opening: Turn | None, allowance: int) -> tuple[list[Turn], int, bool] | None:
    """The turns to send, oldest first, their tokens, and whether they are all the history's; None
    if not even the newest fits."""
    newest = await walk.at(0)
    if newest is None:
        return [], 0, True
    used = newest.tokens
    if used > allowance:
        return None
    with_opening = opening is not None and opening.id != newest.id and used + opening.tokens <= allowance
    if opening is not None and with_opening:
        used += opening.tokens
    recent = [newest]
    reached_opening = False
    whole = True
    index = 1
    while (turn := await walk.at(index)) is not None:
        if opening is not None and turn.id == opening.id:
            if not with_opening:
                whole = False
                break  # it did not fit, and older turns would leave a gap before it
            reached_opening = True  # already counted
        elif used + turn.tokens > allowance:
            whole = False
            break
        else:
            used += turn.tokens
        recent.append(turn)
        index += 1
    turns = recent[::-1]
    if opening is not None and with_opening and not reached_opening:
        turns.insert(0, opening)
    return turns, used, whole


class ByteBound:
    """More tokens than any text has, counted without a model server: no token of a byte-level
    tokenizer is shorter than a byte. A prompt within its budget by this bound (less
    `TEMPLATE_MARGIN`) needs no counting, which costs a model server's tokenizer round trips before
    the first token. Not worth keeping (no `key`); images cost what the model's tokenizer says."""

    key: str | None = None

    def __init__(self, image_tokens: int) -> None:
        self.image_tokens = image_tokens

    async def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.encode()) for text in texts]

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        return None


async def count_texts(tokenizer: Tokenizer, items: Sequence[Sequence[str]]) -> list[int]:
    """The tokens of each item's texts together; empty texts are not sent to the tokenizer."""
    texts = [text for item in items for text in item if text]
    counts = iter(await tokenizer.count(texts) if texts else [])
    return [sum(next(counts) for text in item if text) for item in items]


async def _frame_tokens(frame: GenerationRequest, pinned: Sequence[ChatMessage], tokenizer: Tokenizer) -> int:
    messages = [*frame.messages, *pinned]
    tools = [
        json.dumps({"name": tool.name, "description": tool.description, "parameters": tool.parameters})
        for tool in frame.tools
    ]
    counts = await count_texts(
        tokenizer, [*(message_texts(message) for message in messages), *([tool] for tool in tools)]
    )
    costs = [
        message_tokens(message, count, tokenizer.image_tokens) for message, count in zip(messages, counts, strict=False)
    ]
    return sum(costs) + sum(counts[len(messages) :]) + TOOL_OVERHEAD * len(tools) + PROMPT_OVERHEAD
