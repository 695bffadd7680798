"""Long threads against a real llama-server with a small context window: `truncation_strategy:
auto` fits them, `max_prompt_tokens` caps them, tool-call turns stay whole, token counts are made
once per stored message; and the supervised local model (SmolLM2) answers a thread far longer
than its window."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from sovereign_assistant.v1 import run_pb2
from sovereign_client import SovereignClient
from sovereign_server import ServerConfig
from sovereign_server.caller import Caller
from sovereign_server.engines import ChatMessage, ContextOverflowError, GenerationRequest, Tokenizer
from sovereign_server.engines.local import LocalEngine
from sovereign_server.engines.openai_compat import OpenAICompatibleEngine
from sovereign_server.engines.tokens import estimate_tokens
from sovereign_server.runs import EventChannel, RunManager, RunOptions, RunSettings, ToolOutput
from sovereign_storage import (
    DEFAULT_PROJECT_ID,
    NewAssistant,
    NewMessage,
    Repository,
    TextContent,
    migrate,
    open_database,
)
from tests.conftest import ServerThread, ServiceProcess
from tests.databases import Databases
from tests.llama.conftest import LlamaServer, start_llama_server
from tests.llama.tiny_model import TOOL, TinyModelAnswers

pytestmark = pytest.mark.llama

CALLER = Caller(DEFAULT_PROJECT_ID)
# The tiny model reads a byte as a token: a note is about 50 tokens, 58 with its template.
NOTE_TOKENS = 58


def note(index: int) -> str:
    return f"note {index:04d}: the desk saw steady flows in rates today"


@pytest.fixture(scope="module")
def small_server(
    tiny_model: tuple[Path, TinyModelAnswers], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """One slot of 1,024 tokens: a default run keeps 256 for the reply, so prompts get 768."""
    path, answers = tiny_model
    log = tmp_path_factory.mktemp("small-llama") / "llama-server.log"
    server = start_llama_server(path, log, answers, context_size=1024, parallel=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(small_server: LlamaServer, databases: Databases) -> Iterator[SovereignClient]:
    config = ServerConfig(
        grpc_port=0, metrics_port=0, database=databases.new(), engine="openai", engine_url=small_server.base_url
    )
    server = ServerThread(config).start()
    with SovereignClient(f"127.0.0.1:{server.port}") as client:
        yield client
    server.stop()


def prompt_tokens(run: run_pb2.Run) -> int:
    tokens = run.usage.struct_value["prompt_tokens"]
    assert isinstance(tokens, float)
    return int(tokens)


def long_thread(client: SovereignClient, notes: int, *extra: str) -> str:
    messages = [{"role": "user", "content": note(index)} for index in range(notes)]
    messages += [{"role": "user", "content": text} for text in extra]
    return client.threads.create(messages=messages).id


def test_a_thread_twenty_times_the_window_completes_with_auto(
    small_server: LlamaServer, client: SovereignClient
) -> None:
    assistant = client.assistants.create(model="tiny")
    thread_id = long_thread(client, 400)  # about 23,000 tokens
    run = client.threads.runs.create_and_poll(thread_id, assistant_id=assistant.id)
    assert run.status == "completed"
    reply = client.threads.messages.list(thread_id).data[0]
    assert reply.content[0].text.value == small_server.answers.plain_reply
    # What was sent, as llama-server counted it: the window less the reply's room, nearly filled.
    assert 768 - NOTE_TOKENS < prompt_tokens(run) <= 768


def test_max_prompt_tokens_caps_the_prompt(client: SovereignClient) -> None:
    assistant = client.assistants.create(model="tiny")
    thread_id = long_thread(client, 100)
    run = client.threads.runs.create_and_poll(thread_id, assistant_id=assistant.id, max_prompt_tokens=300)
    assert run.status == "completed"
    assert 300 - NOTE_TOKENS < prompt_tokens(run) <= 300


def test_last_messages_is_capped_to_fit_too(client: SovereignClient) -> None:
    assistant = client.assistants.create(model="tiny")
    thread_id = long_thread(client, 100)
    strategy = {"type": "last_messages", "last_messages": 50}
    run = client.threads.runs.create_and_poll(thread_id, assistant_id=assistant.id, truncation_strategy=strategy)
    assert run.status == "completed"
    assert prompt_tokens(run) <= 768


def test_a_newest_message_too_large_for_the_window_ends_the_run_incomplete(client: SovereignClient) -> None:
    assistant = client.assistants.create(model="tiny")
    thread_id = long_thread(client, 10, "word " * 400)  # 2,000 tokens alone
    run = client.threads.runs.create_and_poll(thread_id, assistant_id=assistant.id)
    assert run.status == "incomplete"
    assert run.incomplete_details.struct_value["reason"] == "max_prompt_tokens"
    assert prompt_tokens(run) == 0
    assert client.threads.messages.list(thread_id).data[0].role == "user"  # no reply was written


def test_a_window_configured_too_large_is_corrected_by_the_servers_refusal(
    small_server: LlamaServer, database: str
) -> None:
    config = ServerConfig(
        grpc_port=0,
        metrics_port=0,
        database=database,
        engine="openai",
        engine_url=small_server.base_url,
        context_window=32768,
    )
    server = ServerThread(config).start()
    try:
        with SovereignClient(f"127.0.0.1:{server.port}") as client:
            assistant = client.assistants.create(model="tiny")
            run = client.threads.runs.create_and_poll(long_thread(client, 400), assistant_id=assistant.id)
            assert run.status == "completed"
            assert prompt_tokens(run) <= 768
    finally:
        server.stop()


async def test_an_over_long_prompt_is_refused_with_the_servers_window(small_server: LlamaServer) -> None:
    engine = OpenAICompatibleEngine.for_url(small_server.base_url)
    request = GenerationRequest(
        model="tiny", messages=tuple(ChatMessage(role="user", content=note(index)) for index in range(40))
    )
    with pytest.raises(ContextOverflowError) as caught:
        async for _ in engine.generate(request):
            pass
    assert caught.value.window == 1024
    assert caught.value.code == "invalid_prompt"
    assert "exceeds the available context size (1024 tokens)" in caught.value.message
    await engine.aclose()


# ---------------------------------------------------------------- what the run layer sends


class CountingTokenizer:
    """The engine's own tokenizer, recording the texts it is asked to count."""

    def __init__(self, inner: Tokenizer) -> None:
        self._inner = inner
        self.key = inner.key
        self.image_tokens = inner.image_tokens
        self.texts: list[str] = []
        self.prompts = 0

    async def count(self, texts: Sequence[str]) -> list[int]:
        self.texts += texts
        return await self._inner.count(texts)

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        self.prompts += 1
        return await self._inner.count_prompt(request)


class Recorded(OpenAICompatibleEngine):
    """The openai engine, keeping each request it sends and counting through a `CountingTokenizer`."""

    counting: CountingTokenizer | None = None

    def __init__(self, base_url: str) -> None:
        other = OpenAICompatibleEngine.for_url(base_url)
        super().__init__(other._routing)
        self.requests: list[GenerationRequest] = []

    async def tokenizer(self, model: str) -> Tokenizer:
        if self.counting is None:
            self.counting = CountingTokenizer(await super().tokenizer(model))
        return self.counting

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Any]:
        self.requests.append(request)
        async for chunk in super().generate(request):
            yield chunk


@pytest.fixture
async def recorded(llama_server_factory: Callable[..., LlamaServer]) -> AsyncIterator[Recorded]:
    # 2,048 tokens: the tiny model's template spends 600 of them on offering a tool.
    server = llama_server_factory(context_size=2048, parallel=1)
    engine = Recorded(server.base_url)
    yield engine
    await engine.aclose()


@pytest.fixture
def repository(database: str) -> Iterator[Repository]:
    opened = open_database(database)
    migrate(opened)
    yield Repository(opened)
    opened.close()


async def _events(channel: EventChannel) -> list[Any]:
    return [event async for batch in channel.follow() for event in batch]


def _thread(repository: Repository, notes: int) -> str:
    messages = [NewMessage(role="user", content=(TextContent(note(index)),)) for index in range(notes)]
    thread, _ = repository.create_thread({}, {}, messages)
    return thread.id


async def test_tool_call_turns_are_sent_whole_after_the_fitted_thread(
    recorded: Recorded, repository: Repository
) -> None:
    manager = RunManager(repository, recorded, RunSettings(expiry_sweep_interval=60))
    assistant = repository.create_assistant(NewAssistant(model="tiny", tools=[TOOL]))
    thread_id = _thread(repository, 300)
    run, channel = await manager.create_run(CALLER, thread_id, RunOptions(assistant_id=assistant.id))
    await _events(channel)
    waiting = repository.get_run(thread_id, run.id)
    assert waiting.status == "requires_action"
    assert waiting.required_action is not None
    (call,) = waiting.required_action.tool_calls
    _, resumed = await manager.submit_tool_outputs(CALLER, thread_id, run.id, [ToolOutput(call.id, "187.2")])
    await _events(resumed)
    done = repository.get_run(thread_id, run.id)
    assert done.status == "completed"
    assert repository.thread_messages(thread_id)[-1].content == (TextContent("The price is ready."),)
    first, second = recorded.requests
    # The thread was cut to fit, both times; the second stretch ends with the call and its result, whole.
    assert 1 < len(first.messages) < 300
    assert [message.role for message in second.messages[-2:]] == ["assistant", "tool"]
    assert second.messages[-2].tool_calls[0].id == call.id
    assert second.messages[-1].content == "187.2"
    assert second.messages[-3].content == note(299)
    # Over the whole run, as llama-server counted: each stretch within the window less the reply's room.
    assert done.usage is not None
    assert done.usage.prompt_tokens <= 2 * 1536
    await manager.stop()


async def test_a_threads_messages_are_counted_once(recorded: Recorded, repository: Repository) -> None:
    manager = RunManager(repository, recorded, RunSettings(expiry_sweep_interval=60))
    assistant = repository.create_assistant(NewAssistant(model="tiny"))
    thread_id = _thread(repository, 300)
    _, channel = await manager.create_run(CALLER, thread_id, RunOptions(assistant_id=assistant.id))
    await _events(channel)
    counting = recorded.counting
    assert counting is not None
    assert counting.key is not None
    first = list(counting.texts)
    assert note(0) in first  # the opening
    assert len(first) < 100  # only as far back as the window reached
    stored = repository.thread_messages(thread_id)
    counted = [
        message for message in stored if message.content and message.content[0] in [TextContent(t) for t in first]
    ]
    assert counted
    assert all(counting.key in (message.token_counts or {}) for message in counted)

    repository.create_message(thread_id, NewMessage(role="user", content=(TextContent("and today?"),)))
    counting.texts.clear()
    counting.prompts = 0
    _, channel = await manager.create_run(CALLER, thread_id, RunOptions(assistant_id=assistant.id))
    await _events(channel)
    # The new messages (the first run's reply, the question) were counted, and none counted before;
    # the whole prompt is counted once more, through the template, to know what is sent.
    assert {"Hello from the tiny model.", "and today?"} <= set(counting.texts)
    assert not set(counting.texts) & set(first)
    assert counting.prompts == 1
    await manager.stop()


async def test_a_short_thread_far_within_the_window_is_sent_uncounted(
    recorded: Recorded, repository: Repository
) -> None:
    manager = RunManager(repository, recorded, RunSettings(expiry_sweep_interval=60))
    assistant = repository.create_assistant(NewAssistant(model="tiny"))
    thread_id = _thread(repository, 3)
    run, channel = await manager.create_run(CALLER, thread_id, RunOptions(assistant_id=assistant.id))
    await _events(channel)
    counting = recorded.counting
    assert counting is not None
    # Its bytes bound its tokens within the window: no tokenizer round trip before the first token.
    assert (counting.texts, counting.prompts) == ([], 0)
    sent = recorded.requests[-1]
    assert [message.text for message in sent.messages] == [note(index) for index in range(3)]
    ended = repository.get_run(thread_id, run.id)
    assert ended.status == "completed"
    # The model server's own count of what it read.
    assert ended.usage is not None
    assert ended.usage.prompt_tokens == await counting.count_prompt(sent)
    await manager.stop()


# ---------------------------------------------------------------- the local model


QUESTION = "Given all these notes, what should the desk watch tomorrow?"


def trading_note(index: int) -> str:
    """About 90 words, as a trading desk's daily note."""
    return (
        f"Desk note {index}: Treasury yields drifted higher as traders priced fewer cuts, while the dollar "
        "firmed against the yen and euro. Equity futures slipped in early trading before recovering on "
        "strong earnings from large technology names. Credit spreads stayed tight, and issuance was heavy "
        "in investment grade. Oil rose on supply concerns after inventory data, and gold held near its "
        "record. Volatility remained subdued, though skew steepened in index options. Client flows were "
        "balanced, with real money buying duration and hedge funds adding to curve steepeners ahead of "
        "the auction."
    )


@pytest.mark.timeout(300)
def test_the_local_model_answers_a_thread_sixty_times_its_window(database: str) -> None:
    # Four slots of 256 tokens: SmolLM2 on two shared cores may read as few as 30 tokens a second
    # (the default 2,048-token slots behave the same, eight times slower).
    options = ("--engine", "local", "--ctx-size", "1024", "--parallel", "4")
    service = ServiceProcess(database, *options)
    try:
        with OpenAI(base_url=service.base_url, api_key="sk-local", max_retries=0, timeout=240) as sdk:
            assistant = sdk.beta.assistants.create(model="smollm2", instructions="You are a trading analyst.")
            messages: Any = [{"role": "user", "content": trading_note(index)} for index in range(120)]
            thread = sdk.beta.threads.create(messages=[*messages, {"role": "user", "content": QUESTION}])
            run = sdk.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, temperature=0, poll_interval_ms=100
            )
            # The model answered: to its end, or until the room kept for the reply (a quarter of the
            # window) ran out; the prompt was never refused.
            assert run.status in ("completed", "incomplete"), run.last_error
            if run.status == "incomplete":
                assert run.incomplete_details is not None
                assert run.incomplete_details.reason == "max_completion_tokens"
            assert run.usage is not None
            assert 256 - 64 - 150 < run.usage.prompt_tokens <= 256 - 64
            reply = sdk.beta.threads.messages.list(thread.id).data[0]
            assert reply.role == "assistant"
            assert reply.content[0].text.value.strip()  # type: ignore[union-attr]
    finally:
        service.stop()


async def test_the_local_engine_reports_one_slots_window_and_estimates_stay_above_its_counts() -> None:
    engine = LocalEngine(context_size=2048, parallel=2, threads=1)
    await engine.start()
    try:
        assert await engine.context_window("smollm2") == 1024
        tokenizer = await engine.tokenizer("smollm2")
        samples = [
            trading_note(1),
            QUESTION,
            "def fit(messages: Sequence[ChatMessage], budget: int) -> list[Turn]: ...",
            "Die Börse schloss gestern mit einem Plus von 1,2 Prozent.",
            "日経平均株価は上昇しました。",
            "AAPL 187.23 +1.45% vol 53,418,900",
        ]
        for sample, counted in zip(samples, await tokenizer.count(samples), strict=True):
            assert estimate_tokens(sample) >= counted, sample
    finally:
        await engine.aclose()
