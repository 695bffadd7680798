"""Behaviour of the engine layer: the built-in deterministic engine and choosing engines by name."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import pytest

from sovereign_server.engines import (
    ChatMessage,
    Chunk,
    Engine,
    EngineError,
    Finish,
    FunctionTool,
    GenerationRequest,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    Usage,
    create_engine,
    engine_names,
)
from sovereign_server.engines.builtin import (
    BUILTIN_CONTEXT_WINDOW,
    FAILURE_MESSAGE,
    BuiltinEngine,
    split_arguments,
    split_tokens,
)

pytestmark = pytest.mark.unit

GET_PRICE = FunctionTool(name="get_price", parameters={"type": "object"})
GET_WEATHER = FunctionTool(name="get_weather")


def request(
    *texts: str,
    tools: tuple[FunctionTool, ...] = (),
    tool_choice: str | Mapping[str, Any] | None = None,
    parallel_tool_calls: bool = True,
    max_completion_tokens: int | None = None,
) -> GenerationRequest:
    """A conversation of user messages."""
    return GenerationRequest(
        model="test-model",
        messages=tuple(ChatMessage(role="user", content=text) for text in texts),
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=parallel_tool_calls,
        max_completion_tokens=max_completion_tokens,
    )


async def collect(engine: Engine, req: GenerationRequest) -> list[Chunk]:
    return [chunk async for chunk in engine.generate(req)]


def text_of(chunks: list[Chunk]) -> str:
    return "".join(chunk.text for chunk in chunks if isinstance(chunk, TextDelta))


def finish_of(chunks: list[Chunk]) -> Finish:
    last = chunks[-1]
    assert isinstance(last, Finish)
    assert not any(isinstance(chunk, Finish) for chunk in chunks[:-1])
    return last


def calls_of(chunks: list[Chunk]) -> list[ToolCall]:
    """Tool calls assembled from their fragments, as a chat-completions client would."""
    parts: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        if isinstance(chunk, ToolCallDelta):
            if chunk.id is not None:
                assert chunk.index not in parts, "id and name come only with a call's first fragment"
                assert chunk.name is not None
                parts[chunk.index] = {"id": chunk.id, "name": chunk.name, "arguments": ""}
            parts[chunk.index]["arguments"] += chunk.arguments
    return [ToolCall(**parts[index]) for index in sorted(parts)]


@pytest.fixture
def engine() -> BuiltinEngine:
    return BuiltinEngine()


def test_tokens_are_words_with_their_trailing_whitespace() -> None:
    assert split_tokens("You said: hello  world\n") == ["You ", "said: ", "hello  ", "world\n"]
    assert split_tokens("  leading") == ["  leading"]
    assert split_tokens("") == []
    assert split_tokens(" \n ") == []


def test_arguments_are_split_after_commas_and_colons_and_join_back() -> None:
    arguments = '{"ticker": "AAPL","n":2}'
    assert split_arguments(arguments) == ['{"ticker": ', '"AAPL",', '"n":', "2}"]
    assert split_arguments("{}") == ["{}"]
    assert "".join(split_arguments('{"a": "x, y", "b": [1, 2]}\n')) == '{"a": "x, y", "b": [1, 2]}\n'


async def test_replies_with_the_last_user_message_one_token_per_delta(engine: BuiltinEngine) -> None:
    chunks = await collect(engine, request("first", "hello there  world"))

    assert chunks[:-1] == [
        TextDelta("You "),
        TextDelta("said: "),
        TextDelta("hello "),
        TextDelta("there  "),
        TextDelta("world"),
    ]
    assert finish_of(chunks).reason == "stop"


async def test_same_request_gives_the_same_chunks(engine: BuiltinEngine) -> None:
    req = request('call get_price and get_weather {"ticker": "AAPL"}', tools=(GET_PRICE, GET_WEATHER))

    assert await collect(engine, req) == await collect(BuiltinEngine(), req)


async def test_usage_counts_prompt_and_completion_tokens(engine: BuiltinEngine) -> None:
    req = GenerationRequest(
        model="m",
        messages=(
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(
                role="assistant",
                content="",
                tool_calls=(ToolCall(id="call_1", name="get_price", arguments='{"ticker": "AAPL"}'),),
            ),
            ChatMessage(role="tool", content="187.2", tool_call_id="call_1"),
            ChatMessage(role="user", content="one two three"),
        ),
    )

    finish = finish_of(await collect(engine, req))

    # 2 (system) + 1 (name) + 2 (arguments) + 1 (tool output) + 3 (user); the reply "You said: one two three" is 5.
    assert finish.usage == Usage(prompt_tokens=9, completion_tokens=5)
    assert finish.usage.total_tokens == 14
    # Its tokenizer counts the whole prompt exactly as usage does.
    assert await (await engine.tokenizer("m")).count_prompt(req) == 9


async def test_calls_a_tool_the_user_names_with_arguments_from_the_json_in_the_text(engine: BuiltinEngine) -> None:
    text = 'please call get_price {"ticker": "AAPL"} now'
    chunks = await collect(engine, request(text, tools=(GET_WEATHER, GET_PRICE)))

    expected_id = "call_" + hashlib.sha256(f"get_price{text}0".encode()).hexdigest()[:24]
    assert calls_of(chunks) == [ToolCall(id=expected_id, name="get_price", arguments='{"ticker": "AAPL"}')]
    assert chunks[0] == ToolCallDelta(index=0, id=expected_id, name="get_price", arguments="")
    assert chunks[1:-1] == [
        ToolCallDelta(index=0, arguments='{"ticker": '),
        ToolCallDelta(index=0, arguments='"AAPL"}'),
    ]
    assert finish_of(chunks) == Finish("tool_calls", Usage(prompt_tokens=6, completion_tokens=2))


async def test_call_ids_are_stable_and_differ_per_call(engine: BuiltinEngine) -> None:
    req = request("use get_weather then get_price", tools=(GET_PRICE, GET_WEATHER))

    first = calls_of(await collect(engine, req))
    second = calls_of(await collect(engine, req))

    assert first == second
    assert [call.name for call in first] == ["get_weather", "get_price"]  # in the order the text names them
    assert [call.arguments for call in first] == ["{}", "{}"]
    assert len({call.id for call in first}) == 2
    assert all(call.id.startswith("call_") and len(call.id) == 29 for call in first)


async def test_a_name_must_appear_as_a_whole_word(engine: BuiltinEngine) -> None:
    chunks = await collect(engine, request("what does get_prices do? {not json}", tools=(GET_PRICE,)))

    assert calls_of(chunks) == []
    assert text_of(chunks) == "You said: what does get_prices do? {not json}"


async def test_tool_choice_none_never_calls(engine: BuiltinEngine) -> None:
    chunks = await collect(engine, request("call get_price", tools=(GET_PRICE,), tool_choice="none"))

    assert calls_of(chunks) == []
    assert text_of(chunks) == "You said: call get_price"
    assert finish_of(chunks).reason == "stop"


async def test_required_calls_the_first_tool_when_none_is_named(engine: BuiltinEngine) -> None:
    chunks = await collect(engine, request('hi {"x": 1}', tools=(GET_WEATHER, GET_PRICE), tool_choice="required"))

    assert [(call.name, call.arguments) for call in calls_of(chunks)] == [("get_weather", '{"x": 1}')]
    assert finish_of(chunks).reason == "tool_calls"


async def test_a_named_function_choice_forces_that_call(engine: BuiltinEngine) -> None:
    choice = {"type": "function", "function": {"name": "get_price"}}
    chunks = await collect(engine, request("call get_weather", tools=(GET_WEATHER, GET_PRICE), tool_choice=choice))

    assert [call.name for call in calls_of(chunks)] == ["get_price"]


async def test_without_parallel_tool_calls_only_the_first_is_made(engine: BuiltinEngine) -> None:
    req = request("get_price and get_weather", tools=(GET_PRICE, GET_WEATHER), parallel_tool_calls=False)

    assert [call.name for call in calls_of(await collect(engine, req))] == ["get_price"]


async def test_replies_with_each_tool_output_after_tool_results(engine: BuiltinEngine) -> None:
    calls = (
        ToolCall(id="call_a", name="get_price", arguments="{}"),
        ToolCall(id="call_b", name="get_weather", arguments="{}"),
    )
    req = GenerationRequest(
        model="m",
        messages=(
            ChatMessage(role="user", content="get_price and get_weather"),
            ChatMessage(role="assistant", content="", tool_calls=calls),
            ChatMessage(role="tool", content="187.2", tool_call_id="call_a"),
            ChatMessage(role="tool", content="sunny", tool_call_id="call_b"),
        ),
        tools=(GET_PRICE, GET_WEATHER),
        tool_choice="required",  # results are answered with text even when a call is required
    )

    chunks = await collect(engine, req)

    assert text_of(chunks) == "get_price returned: 187.2\nget_weather returned: sunny"
    assert finish_of(chunks).reason == "stop"


async def test_max_completion_tokens_stops_with_length(engine: BuiltinEngine) -> None:
    chunks = await collect(engine, request("a b c d e", max_completion_tokens=3))

    assert chunks[:-1] == [TextDelta("You "), TextDelta("said: "), TextDelta("a ")]
    assert finish_of(chunks) == Finish("length", Usage(prompt_tokens=5, completion_tokens=3))


async def test_a_limit_the_reply_fits_in_finishes_normally(engine: BuiltinEngine) -> None:
    chunks = await collect(engine, request("a", max_completion_tokens=3))

    assert text_of(chunks) == "You said: a"
    assert finish_of(chunks).reason == "stop"


async def test_max_completion_tokens_counts_argument_fragments(engine: BuiltinEngine) -> None:
    req = request('get_price {"a": 1, "b": 2}', tools=(GET_PRICE,), max_completion_tokens=2)

    chunks = await collect(engine, req)

    assert calls_of(chunks)[0].arguments == '{"a": 1, '
    assert finish_of(chunks) == Finish("length", Usage(prompt_tokens=5, completion_tokens=2))


async def test_token_delay_spaces_the_tokens() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()

    chunks = await collect(BuiltinEngine(token_delay=0.05), request("a b"))  # four tokens, three gaps

    assert len(chunks) == 5
    assert loop.time() - start >= 0.15


async def test_tokens_keep_the_engines_clock_whatever_the_consumer_takes() -> None:
    loop = asyncio.get_running_loop()
    stream = BuiltinEngine(token_delay=0.05).generate(request("a b c d"))  # six tokens, five gaps
    arrivals = []
    resumed = 0.0
    async for _ in stream:
        arrivals.append(loop.time())
        if len(arrivals) == 1:
            await asyncio.sleep(0.2)  # a consumer busy for four gaps: three more tokens fell due
            resumed = loop.time()
    assert len(arrivals) == 7  # six tokens and the finish
    assert arrivals[3] - resumed < 0.1  # at once, not 0.05, 0.1 and 0.15 s after the consumer is back
    assert arrivals[5] - arrivals[0] >= 0.25  # and no token before it is due


async def test_cancelling_the_consumer_stops_the_stream() -> None:
    stream = BuiltinEngine(token_delay=30).generate(request("a b c"))
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in stream:
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=5)

    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_aclose_stops_the_stream(engine: BuiltinEngine) -> None:
    stream = engine.generate(request("a b c"))
    assert isinstance(stream, AsyncGenerator)

    assert await stream.__anext__() == TextDelta("You ")
    await stream.aclose()

    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_zero_delay_still_lets_other_tasks_run(engine: BuiltinEngine) -> None:
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0)
    await collect(engine, request("one two three four five six"))
    ticker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await ticker

    assert ticks >= 5


async def test_the_error_marker_fails_after_the_first_token(engine: BuiltinEngine) -> None:
    received: list[Chunk] = []

    async def consume() -> None:
        async for chunk in engine.generate(request("please [[engine-error]] now")):
            received.append(chunk)

    with pytest.raises(EngineError) as raised:
        await consume()

    assert received == [TextDelta("You ")]
    assert raised.value.message == FAILURE_MESSAGE == "The built-in engine was asked to fail."
    assert raised.value.code == "server_error"


async def test_the_error_marker_can_choose_the_code(engine: BuiltinEngine) -> None:
    with pytest.raises(EngineError) as raised:
        await collect(engine, request("[[engine-error:rate_limit_exceeded]]"))

    assert raised.value.code == "rate_limit_exceeded"


async def test_create_engine_chooses_by_name() -> None:
    engine = create_engine("builtin", token_delay=0)

    assert isinstance(engine, BuiltinEngine)
    assert engine.name == "builtin"
    assert text_of(await collect(engine, request("hi"))) == "You said: hi"
    await engine.aclose()


def test_create_engine_rejects_unknown_names_and_options() -> None:
    assert engine_names() == ("builtin", "local", "openai")
    with pytest.raises(ValueError, match=r"Unknown engine 'nope'; known engines: builtin, local, openai\."):
        create_engine("nope")
    with pytest.raises(TypeError):
        create_engine("builtin", temperature=1)
    with pytest.raises(ValueError, match="token_delay"):
        create_engine("builtin", token_delay=-1)


async def test_its_tokenizer_counts_every_message_and_its_window_is_a_setting(engine: BuiltinEngine) -> None:
    tokenizer = await engine.tokenizer("m")
    assert await tokenizer.count_prompt(request()) == 0
    assert await tokenizer.count_prompt(request("one two", " three ")) == 3
    assert await tokenizer.count(["one two", ""]) == [2, 0]
    assert await engine.context_window("any") == BUILTIN_CONTEXT_WINDOW
    assert await BuiltinEngine(context_window=512).context_window("any") == 512
