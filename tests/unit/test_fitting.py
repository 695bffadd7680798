"""Fitting a conversation into a context window (`truncation_strategy: auto`), on plain engine
messages: what is kept, what is dropped, and that the result fits however the template counts."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sovereign_server.engines import ChatMessage, FunctionTool, GenerationRequest, ToolCall
from sovereign_server.engines.tokens import estimate_tokens
from sovereign_server.runs.fitting import (
    MESSAGE_OVERHEAD,
    PROMPT_OVERHEAD,
    Budget,
    budget_for,
    fit_messages,
)

pytestmark = pytest.mark.unit


class Words:
    """A token per word; a whole prompt costs what `template` adds per message, when set."""

    key: str | None = None

    def __init__(self, template: int | None = None, image_tokens: int = 0) -> None:
        self.template = template
        self.image_tokens = image_tokens
        self.prompts: list[int] = []

    async def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        if self.template is None:
            return None
        words = sum(len(message.text.split()) for message in request.messages)
        exact = words + self.template * len(request.messages)
        self.prompts.append(exact)
        return exact


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def note(index: int) -> str:
    return f"n{index} " + "w " * 9  # 10 words: 18 tokens with the message overhead


def conversation(count: int) -> list[ChatMessage]:
    return [(user if index % 2 == 0 else assistant)(note(index)) for index in range(count)]


def request(*messages: ChatMessage, tools: tuple[FunctionTool, ...] = ()) -> GenerationRequest:
    return GenerationRequest(model="m", messages=messages, tools=tools)


def contents(fitted_request: GenerationRequest) -> list[str]:
    return [message.text for message in fitted_request.messages]


def test_the_reply_keeps_a_quarter_of_the_window_or_what_max_completion_tokens_asks() -> None:
    assert budget_for(2048) == Budget(2048, 512, 1536)
    assert budget_for(131072).reply == 4096
    assert budget_for(2048, max_completion_tokens=256) == Budget(2048, 256, 1792)
    # A limit beyond half the window leaves the prompt half of it.
    assert budget_for(2048, max_completion_tokens=100_000).prompt == 1024
    assert budget_for(2048, max_prompt_tokens=300).prompt == 300


async def test_a_conversation_that_fits_is_sent_whole() -> None:
    messages = [ChatMessage(role="system", content="Be brief."), *conversation(5)]
    fitted = await fit_messages(request(*messages), Words(), 1000)
    assert fitted is not None
    assert fitted.request.messages == tuple(messages)
    words = 2 + 5 * 10
    assert fitted.prompt_tokens == words + 6 * MESSAGE_OVERHEAD + PROMPT_OVERHEAD
    assert not fitted.exact


async def test_the_middle_is_dropped_keeping_instructions_the_opening_and_the_newest() -> None:
    messages = [ChatMessage(role="system", content="Be brief."), *conversation(100)]
    fitted = await fit_messages(request(*messages), Words(), 300)
    assert fitted is not None
    sent = contents(fitted.request)
    assert sent[:2] == ["Be brief.", note(0)]
    kept = len(sent) - 2
    assert sent[2:] == [note(index) for index in range(100 - kept, 100)]
    assert 300 - 18 < fitted.prompt_tokens <= 300


async def test_messages_before_the_first_user_message_go_with_the_middle() -> None:
    messages = [assistant("Welcome, how can I help?"), *conversation(100)]
    fitted = await fit_messages(request(*messages), Words(), 300)
    assert fitted is not None
    assert contents(fitted.request)[0] == note(0)


async def test_an_opening_that_does_not_fit_beside_the_newest_is_dropped_too() -> None:
    messages = [user("w " * 200), *conversation(20)]
    fitted = await fit_messages(request(*messages), Words(), 150)
    assert fitted is not None
    assert contents(fitted.request)[-1] == note(19)
    assert "w " * 200 not in contents(fitted.request)


async def test_nothing_fits_when_the_newest_message_alone_is_too_large() -> None:
    assert await fit_messages(request(*conversation(3), user("w " * 500)), Words(), 300) is None


async def test_an_assistant_turn_that_called_tools_stays_whole_with_its_results() -> None:
    call = ChatMessage(
        role="assistant",
        content="",
        tool_calls=(ToolCall("c1", "get_price", '{"ticker": "AAPL"}'), ToolCall("c2", "get_price", "{}")),
    )
    results = [ChatMessage(role="tool", content="w " * 30, tool_call_id=f"c{i}") for i in (1, 2)]
    for budget in range(60, 400, 7):
        messages = [*conversation(10), call, *results, *conversation(4)]
        fitted = await fit_messages(request(*messages), Words(), budget)
        if fitted is None:
            continue
        sent = fitted.request.messages
        kept = [message for message in sent if message.role == "tool" or message.tool_calls]
        assert kept in ([], [call, *results]), f"split at budget {budget}"


async def test_pinned_messages_are_kept_whole_after_the_conversation() -> None:
    call = ChatMessage(role="assistant", content="", tool_calls=(ToolCall("c1", "f", "{}"),))
    result = ChatMessage(role="tool", content="42", tool_call_id="c1")
    fitted = await fit_messages(request(*conversation(100), call, result), Words(), 200, pinned=2)
    assert fitted is not None
    assert fitted.request.messages[-2:] == (call, result)
    assert fitted.request.messages[-3].content == note(99)


async def test_tools_and_instructions_count_against_the_budget() -> None:
    tool = FunctionTool("get_price", "The latest price of a stock " * 20, {"type": "object"})
    plain = await fit_messages(request(*conversation(100)), Words(), 400)
    with_tool = await fit_messages(request(*conversation(100), tools=(tool,)), Words(), 400)
    assert plain is not None
    assert with_tool is not None
    assert len(with_tool.request.messages) < len(plain.request.messages)
    assert with_tool.request.tools == (tool,)


async def test_an_exact_count_above_the_estimate_narrows_the_choice_until_it_fits() -> None:
    tokenizer = Words(template=30)  # the template costs far more than estimated
    fitted = await fit_messages(request(*conversation(100)), tokenizer, 600)
    assert fitted is not None
    assert fitted.exact
    assert fitted.prompt_tokens == tokenizer.prompts[-1] <= 600
    assert len(tokenizer.prompts) > 1
    assert contents(fitted.request)[-1] == note(99)


async def test_an_exact_count_says_when_even_the_newest_message_cannot_fit() -> None:
    assert await fit_messages(request(*conversation(4)), Words(template=1000), 600) is None


def test_the_estimate_counts_generously() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("RSI") == 1
    assert estimate_tokens("internationalization") == 7  # a token per three letters
    assert estimate_tokens("13714") == 5  # digits one by one
    assert estimate_tokens("a, b.") == 4
    assert estimate_tokens("at 1.5") == 5  # the space before a figure stands alone
    assert estimate_tokens("株価") == 4  # each character's extra UTF-8 bytes
