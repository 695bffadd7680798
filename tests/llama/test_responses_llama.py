"""The Responses API on the OpenAI-compatible engine against a real llama.cpp `llama-server`
serving the tiny deterministic model: the official SDK through Envoy and our server, down to the
model and back."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from openai.types.responses import ResponseFunctionToolCall

from sovereign_client import SovereignClient
from sovereign_server import ServerConfig
from sovereign_server.gateway import Gateway
from tests.conftest import ServerThread
from tests.grpc.test_responses_grpc import text_of
from tests.llama.conftest import LlamaServer
from tests.llama.test_runs_llama import slots_busy
from tests.llama.tiny_model import TOOL

pytestmark = pytest.mark.llama

PRICE_TOOL: Any = {"type": "function", **TOOL["function"], "strict": False}


@pytest.fixture(scope="module")
def server_options(llama_server: LlamaServer) -> dict[str, Any]:
    return {"engine": "openai", "engine_url": llama_server.base_url}


@pytest.fixture(scope="module")
def sdk(gateway: Gateway) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.base_url, api_key="sk-local", max_retries=0, timeout=60) as client:
        yield client


def test_a_plain_reply_with_the_servers_usage(sdk: OpenAI, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    response = sdk.responses.create(model="tiny", input="Say hello")
    assert response.status == "completed"
    assert response.output_text == answers.plain_reply
    assert response.usage is not None
    assert response.usage.input_tokens == answers.prompt_tokens("Say hello")
    assert response.usage.output_tokens == answers.completion_tokens(answers.plain_token_count)


def test_a_reply_streams_token_by_token(sdk: OpenAI, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    with sdk.responses.stream(model="tiny", input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == answers.plain_reply
    # A delta per token (the server sends each as it comes; Envoy passes them through).
    assert len(deltas) == answers.plain_token_count
    assert final.output_text == answers.plain_reply


def test_a_function_call_round_trip(sdk: OpenAI, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    first = sdk.responses.create(model="tiny", input="What is the price of AAPL?", tools=[PRICE_TOOL])
    [call] = first.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.arguments) == (answers.tool_name, answers.tool_arguments)
    second = sdk.responses.create(
        model="tiny",
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "187.2"}],
        tools=[PRICE_TOOL],
    )
    assert second.output_text == answers.after_tool_reply


def test_the_output_limit_ends_a_response_incomplete(sdk: OpenAI, llama_server: LlamaServer) -> None:
    response = sdk.responses.create(
        model="tiny", input=f"go {llama_server.answers.forever_marker}", max_output_tokens=32
    )
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.usage is not None
    assert response.usage.output_tokens == 32
    assert response.output_text == llama_server.answers.forever_prefix(32)


def test_a_conversation_continued_across_both_apis(sdk: OpenAI, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    assistant = sdk.beta.assistants.create(model="tiny")
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "Say hello"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed"
    response = sdk.responses.create(model="tiny", input="Again", conversation=thread.id)
    assert response.output_text == answers.plain_reply
    items = list(sdk.conversations.items.list(thread.id, order="asc"))
    assert [item.role for item in items] == ["user", "assistant", "user", "assistant"]  # type: ignore[union-attr]


def test_a_background_response_is_cancelled_and_the_model_stops(
    tmp_path: Path, llama_server_factory: Callable[..., LlamaServer]
) -> None:
    # With context shifting the endless answer never stops by itself: only the cancel can end it.
    endless = llama_server_factory("--context-shift")
    config = ServerConfig(
        grpc_port=0, metrics_port=0, database=str(tmp_path / "db.sqlite3"), engine="openai", engine_url=endless.base_url
    )
    server = ServerThread(config).start()
    try:
        with SovereignClient(f"127.0.0.1:{server.port}") as client:
            response = client.responses.create(
                model="tiny", input=f"go {endless.answers.forever_marker}", background=True
            )
            for event in client.responses.events(response.id):
                if event.type == "response.output_text.delta":
                    assert slots_busy(endless) == 1
                    break
            cancelled = client.responses.cancel(response.id)
            assert cancelled.status == "cancelled"
            assert text_of(cancelled.output[0]).startswith("tick")
            # The upstream request was closed: the model server is idle again.
            deadline = time.monotonic() + 5
            while slots_busy(endless) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert slots_busy(endless) == 0
    finally:
        server.stop()
