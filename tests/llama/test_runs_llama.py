"""Runs on the OpenAI-compatible engine against a real llama.cpp `llama-server` serving the tiny
deterministic model: the official SDK through Envoy and our server, down to the model and back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta import Assistant
from openai.types.beta.threads import TextDelta

from sovereign_client import SovereignClient
from sovereign_server import ServerConfig
from sovereign_server.gateway import Gateway
from tests.conftest import ServerThread
from tests.databases import Databases
from tests.llama.conftest import LlamaServer

pytestmark = pytest.mark.llama

PRICE_TOOL: Any = {
    "type": "function",
    "function": {
        "name": "get_price",
        "parameters": {"type": "object", "properties": {"ticker": {"type": "string"}}, "required": ["ticker"]},
    },
}


@pytest.fixture(scope="module")
def server_options(llama_server: LlamaServer) -> dict[str, Any]:
    return {"engine": "openai", "engine_url": llama_server.base_url}


@pytest.fixture(scope="module")
def sdk(gateway: Gateway) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.base_url, api_key="sk-local", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def assistant(sdk: OpenAI) -> Assistant:
    return sdk.beta.assistants.create(model="tiny")


@pytest.fixture(scope="module")
def tool_assistant(sdk: OpenAI) -> Assistant:
    return sdk.beta.assistants.create(model="tiny", tools=[PRICE_TOOL])


def test_a_plain_reply_streams_as_it_comes_with_the_servers_usage(
    sdk: OpenAI, assistant: Assistant, llama_server: LlamaServer
) -> None:
    answers = llama_server.answers
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Say hello"}])
    tokens: list[str] = []

    class Collector(AssistantEventHandler):
        def on_text_delta(self, delta: TextDelta, snapshot: Any) -> None:
            tokens.append(delta.value or "")

    with sdk.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id, event_handler=Collector()) as s:
        s.until_done()
        run = s.get_final_run()
    assert "".join(tokens) == answers.plain_reply
    # A delta per token, or fewer when tokens queued up behind a busy client and left together.
    assert 1 <= len(tokens) <= answers.plain_token_count
    assert run.status == "completed"
    assert run.usage is not None
    assert run.usage.completion_tokens == answers.completion_tokens(answers.plain_token_count)
    assert run.usage.prompt_tokens == answers.prompt_tokens("Say hello")
    reply = sdk.beta.threads.messages.list(thread.id).data[0]
    assert reply.content[0].text.value == answers.plain_reply  # type: ignore[union-attr]


def test_a_tool_call_round_trip(sdk: OpenAI, tool_assistant: Assistant, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "What is the price of AAPL?"}])
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=tool_assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    assert run.required_action is not None
    (call,) = run.required_action.submit_tool_outputs.tool_calls
    assert (call.function.name, call.function.arguments) == (answers.tool_name, answers.tool_arguments)
    done = sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "187.2"}],
        poll_interval_ms=50,
    )
    assert done.status == "completed"
    reply = sdk.beta.threads.messages.list(thread.id).data[0]
    assert reply.content[0].text.value == answers.after_tool_reply  # type: ignore[union-attr]
    steps = sdk.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [step.type for step in steps] == ["tool_calls", "message_creation"]


def test_max_completion_tokens_ends_the_run_incomplete(
    sdk: OpenAI, assistant: Assistant, llama_server: LlamaServer
) -> None:
    thread = sdk.beta.threads.create(
        messages=[{"role": "user", "content": f"go {llama_server.answers.forever_marker}"}]
    )
    run = sdk.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=256, poll_interval_ms=50
    )
    assert run.status == "incomplete"
    assert run.incomplete_details is not None
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage is not None
    assert run.usage.completion_tokens == 256
    reply = sdk.beta.threads.messages.list(thread.id).data[0]
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None
    assert reply.incomplete_details.reason == "max_tokens"


@pytest.fixture
def stack(databases: Databases) -> Iterator[Callable[..., SovereignClient]]:
    """Starts a server (gRPC only) with the given engine options and returns a typed client to it."""
    started: list[tuple[ServerThread, SovereignClient]] = []

    def start(**options: Any) -> SovereignClient:
        config = ServerConfig(grpc_port=0, metrics_port=0, database=databases.new(), **options)
        server = ServerThread(config).start()
        client = SovereignClient(f"127.0.0.1:{server.port}")
        started.append((server, client))
        return client

    yield start
    for server, client in started:
        client.close()
        server.stop()


def failed_run(client: SovereignClient, text: str, model: str = "tiny") -> Any:
    assistant = client.assistants.create(model=model)
    return client.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": text}]}
    )


def slots_busy(llama_server: LlamaServer) -> int:
    slots = httpx.get(f"{llama_server.url}/slots", trust_env=False, timeout=5).json()
    return sum(1 for slot in slots if slot.get("is_processing"))


def endless_run(
    client: SovereignClient, server: LlamaServer, at_first_token: Callable[[str, str], None]
) -> tuple[str, str]:
    """Starts a run whose answer never ends by itself, calls `at_first_token(thread_id, run_id)` when
    its first token arrives, and returns (thread_id, run_id)."""
    assistant = client.assistants.create(model="tiny")
    thread = client.threads.create(messages=[{"role": "user", "content": f"go {server.answers.forever_marker}"}])
    run_id = ""
    for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id):
        if event.event == "thread.run.created":
            run_id = event.run.id
        if event.event == "thread.message.delta":
            at_first_token(thread.id, run_id)
            break
    return thread.id, run_id


def test_cancelling_mid_stream_stops_the_model(
    stack: Callable[..., SovereignClient], llama_server_factory: Callable[..., LlamaServer]
) -> None:
    # With context shifting the endless answer never stops by itself: only the cancel can end it.
    endless = llama_server_factory("--context-shift")
    client = stack(engine="openai", engine_url=endless.base_url)

    def cancel(thread_id: str, run_id: str) -> None:
        assert slots_busy(endless) == 1
        assert client.threads.runs.cancel(run_id, thread_id=thread_id).status == "cancelling"

    thread_id, run_id = endless_run(client, endless, cancel)
    run = client.threads.runs.poll(run_id, thread_id=thread_id)
    assert run.status == "cancelled"
    # The upstream request was closed: the model server is idle again.
    deadline = time.monotonic() + 5
    while slots_busy(endless) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slots_busy(endless) == 0
    reply = client.threads.messages.list(thread_id).data[0]
    assert reply.status == "incomplete"
    assert reply.content[0].text.value.startswith("tick")


def test_a_model_server_killed_mid_stream_fails_the_run(
    stack: Callable[..., SovereignClient], llama_server_factory: Callable[..., LlamaServer]
) -> None:
    doomed = llama_server_factory("--context-shift")
    client = stack(engine="openai", engine_url=doomed.base_url)
    thread_id, run_id = endless_run(client, doomed, lambda thread_id, run_id: doomed.kill())
    run = client.threads.runs.poll(run_id, thread_id=thread_id)
    assert run.status == "failed"
    assert run.last_error.struct_value["code"] == "server_error"
    assert "broke off" in str(run.last_error.struct_value["message"])
    reply = client.threads.messages.list(thread_id).data[0]
    assert reply.status == "incomplete"


def test_a_4xx_from_the_model_server_fails_the_run_with_its_message(
    stack: Callable[..., SovereignClient], llama_server: LlamaServer
) -> None:
    # A prompt too long for the window never reaches the server (tests/llama/test_context_llama.py);
    # a schema it cannot compile does, and it answers 400.
    client = stack(engine="openai", engine_url=llama_server.base_url)
    schema = {"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}
    assistant = client.assistants.create(
        model="tiny", response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    )
    run = client.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hello"}]}
    )
    assert run.status == "failed"
    assert "answered HTTP 400" in str(run.last_error.struct_value["message"])


def test_an_unreachable_model_server_fails_the_run_without_hanging(
    stack: Callable[..., SovereignClient], llama_server_factory: Callable[..., LlamaServer]
) -> None:
    gone = llama_server_factory()
    gone.stop()
    client = stack(engine="openai", engine_url=gone.base_url)
    run = failed_run(client, "hello")
    assert run.status == "failed"
    assert "Could not connect to the model server" in str(run.last_error.struct_value["message"])


def test_models_route_to_their_backend_and_an_unrouted_model_fails_clearly(
    stack: Callable[..., SovereignClient], llama_server: LlamaServer, tmp_path: Path
) -> None:
    config = tmp_path / "backends.toml"
    config.write_text(f'[backends.tiny]\nbase_url = "{llama_server.base_url}"\n[models]\n"tiny" = "tiny"\n')
    client = stack(engine="openai", engine_config=str(config))
    assert failed_run(client, "Say hello").status == "completed"
    run = failed_run(client, "Say hello", model="gpt-4o")
    assert run.status == "failed"
    assert run.last_error.struct_value["message"] == "No backend is configured for model 'gpt-4o'."
