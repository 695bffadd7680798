"""The tiny deterministic model behind a real llama-server: exact answers over /v1/chat/completions."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.llama.conftest import LlamaServer
from tests.llama.tiny_model import (
    AFTER_TOOL_PIECES,
    LONG_PIECES,
    PLAIN_PIECES,
    TOOL,
    TinyModelAnswers,
    write_tiny_model,
)

pytestmark = pytest.mark.llama

USER = {"role": "user", "content": "Hi"}
PREVIOUS_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_price", "arguments": '{"ticker": "AAPL"}'}}
    ],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call_1", "content": '{"price": 123.45}'}


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(trust_env=False, timeout=30.0) as client:
        yield client


def chat(http: httpx.Client, server: LlamaServer, **body: Any) -> dict[str, Any]:
    response = http.post(f"{server.base_url}/chat/completions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stream_chat(http: httpx.Client, server: LlamaServer, **body: Any) -> list[dict[str, Any]]:
    """All chunks of a streamed completion; asserts that the stream ended with [DONE]."""
    chunks: list[dict[str, Any]] = []
    with http.stream("POST", f"{server.base_url}/chat/completions", json={**body, "stream": True}) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line.removeprefix("data: ")
            if data == "[DONE]":
                return chunks
            chunks.append(json.loads(data))
    pytest.fail(f"the stream ended without [DONE] after {len(chunks)} chunks")


def streamed_text(chunks: list[dict[str, Any]]) -> list[str]:
    """The content deltas, one per chunk that has any."""
    return [
        choice["delta"]["content"] for chunk in chunks for choice in chunk["choices"] if choice["delta"].get("content")
    ]


def finish_reasons(chunks: list[dict[str, Any]]) -> list[str]:
    return [choice["finish_reason"] for chunk in chunks for choice in chunk["choices"] if choice["finish_reason"]]


# The model file


def test_the_model_file_is_small_and_byte_identical_every_time(tmp_path: Path) -> None:
    first = write_tiny_model(tmp_path / "first.gguf")
    second = write_tiny_model(tmp_path / "second.gguf")
    assert first == second
    data = (tmp_path / "first.gguf").read_bytes()
    assert data == (tmp_path / "second.gguf").read_bytes()
    assert len(data) < 5_000_000


def test_the_generator_runs_as_a_module(tmp_path: Path) -> None:
    out = tmp_path / "cli.gguf"
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-m", "tests.llama.tiny_model", str(out)], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    write_tiny_model(tmp_path / "direct.gguf")
    assert out.read_bytes() == (tmp_path / "direct.gguf").read_bytes()


def test_the_answers_are_distinct_token_chains(tiny_answers: TinyModelAnswers) -> None:
    assert tiny_answers.plain_reply == "Hello from the tiny model."
    assert tiny_answers.after_tool_reply == "The price is ready."
    assert tiny_answers.tool_call_text == (
        '<tool_call>\n{"name": "get_price", "arguments": {"ticker": "AAPL"}}\n</tool_call>'
    )
    assert tiny_answers.long_token_count == len(set(LONG_PIECES)) >= 40
    assert tiny_answers.long_prefix(3) == "Count: 1 2"
    assert tiny_answers.forever_prefix(4) == "tick tock tick tock"


# Plain replies


def test_plain_reply(http: httpx.Client, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    result = chat(http, llama_server, messages=[USER])
    choice = result["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == answers.plain_reply
    assert choice["finish_reason"] == "stop"
    assert result["usage"]["completion_tokens"] == answers.completion_tokens(answers.plain_token_count)
    assert result["usage"]["prompt_tokens"] == answers.prompt_tokens("Hi")


def test_plain_reply_streamed_one_token_a_chunk_with_usage_last(http: httpx.Client, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    chunks = stream_chat(http, llama_server, messages=[USER], stream_options={"include_usage": True})
    assert streamed_text(chunks) == list(PLAIN_PIECES)
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == answers.prompt_tokens("Hi")
    assert chunks[-1]["usage"]["completion_tokens"] == answers.completion_tokens(answers.plain_token_count)
    assert chunks[-1]["usage"]["total_tokens"] == answers.prompt_tokens("Hi") + answers.plain_token_count + 1
    assert all("usage" not in chunk for chunk in chunks[:-1])


@pytest.mark.parametrize(
    "sampling",
    [
        {"temperature": 0},
        {"temperature": 2.0, "top_p": 1.0},
        {"temperature": 1.5, "top_p": 0.1, "seed": 7, "presence_penalty": 2.0, "frequency_penalty": 2.0},
    ],
)
def test_sampling_settings_do_not_change_the_answer(
    http: httpx.Client, llama_server: LlamaServer, sampling: dict[str, Any]
) -> None:
    result = chat(http, llama_server, messages=[{"role": "system", "content": "Be brief."}, USER], **sampling)
    assert result["choices"][0]["message"]["content"] == llama_server.answers.plain_reply


def test_parallel_requests_get_the_same_answer(http: httpx.Client, llama_server: LlamaServer) -> None:
    url = f"{llama_server.base_url}/chat/completions"
    with (
        httpx.Client(trust_env=False, timeout=30.0) as other,
        http.stream("POST", url, json={"messages": [USER]}) as first,
        other.stream("POST", url, json={"messages": [USER]}) as second,
    ):
        bodies = [json.loads(first.read()), json.loads(second.read())]
    assert [body["choices"][0]["message"]["content"] for body in bodies] == [llama_server.answers.plain_reply] * 2


# Tool calls


def test_tool_call_when_tools_are_offered(http: httpx.Client, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    result = chat(http, llama_server, messages=[USER], tools=[TOOL])
    choice = result["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert not choice["message"].get("content")
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"]
    assert call["function"] == {"name": answers.tool_name, "arguments": answers.tool_arguments}
    assert json.loads(call["function"]["arguments"]) == {"ticker": "AAPL"}
    assert result["usage"]["completion_tokens"] == answers.completion_tokens(answers.tool_call_token_count)


@pytest.mark.parametrize("tool_choice", ["auto", "required", {"type": "function", "function": {"name": "get_price"}}])
def test_tool_call_streamed(http: httpx.Client, llama_server: LlamaServer, tool_choice: str | dict[str, Any]) -> None:
    answers = llama_server.answers
    chunks = stream_chat(
        http,
        llama_server,
        messages=[USER],
        tools=[TOOL],
        tool_choice=tool_choice,
        stream_options={"include_usage": True},
    )
    deltas = [
        delta for chunk in chunks for choice in chunk["choices"] for delta in choice["delta"].get("tool_calls") or []
    ]
    assert deltas, chunks
    assert {delta["index"] for delta in deltas} == {0}
    assert [delta["id"] for delta in deltas if delta.get("id")] == [deltas[0]["id"]]
    assert "".join(delta["function"].get("name") or "" for delta in deltas) == answers.tool_name
    assert "".join(delta["function"].get("arguments") or "" for delta in deltas) == answers.tool_arguments
    assert streamed_text(chunks) == []
    assert finish_reasons(chunks) == ["tool_calls"]
    assert chunks[-1]["usage"]["completion_tokens"] == answers.completion_tokens(answers.tool_call_token_count)


def test_tool_choice_none_leaves_the_call_as_text(http: httpx.Client, llama_server: LlamaServer) -> None:
    result = chat(http, llama_server, messages=[USER], tools=[TOOL], tool_choice="none")
    choice = result["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == llama_server.answers.tool_call_text
    assert not choice["message"].get("tool_calls")


@pytest.mark.parametrize("stream", [False, True])
def test_reply_after_a_tool_result(http: httpx.Client, llama_server: LlamaServer, stream: bool) -> None:
    answers = llama_server.answers
    messages = [USER, PREVIOUS_CALL, TOOL_RESULT]
    if stream:
        chunks = stream_chat(http, llama_server, messages=messages, tools=[TOOL])
        assert streamed_text(chunks) == list(AFTER_TOOL_PIECES)
        assert finish_reasons(chunks) == ["stop"]
    else:
        result = chat(http, llama_server, messages=messages, tools=[TOOL])
        assert result["choices"][0]["message"]["content"] == answers.after_tool_reply
        assert result["choices"][0]["finish_reason"] == "stop"
        assert not result["choices"][0]["message"].get("tool_calls")


# Long answers and limits


def test_long_reply(http: httpx.Client, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    result = chat(http, llama_server, messages=[{"role": "user", "content": f"Count {answers.long_marker}"}])
    assert result["choices"][0]["message"]["content"] == answers.long_reply
    assert result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"]["completion_tokens"] == answers.completion_tokens(answers.long_token_count)


@pytest.mark.parametrize("limit", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("stream", [False, True])
def test_token_limit_ends_with_length(http: httpx.Client, llama_server: LlamaServer, limit: str, stream: bool) -> None:
    answers = llama_server.answers
    body: dict[str, Any] = {"messages": [{"role": "user", "content": f"Count {answers.long_marker}"}], limit: 5}
    if stream:
        chunks = stream_chat(http, llama_server, **body, stream_options={"include_usage": True})
        assert streamed_text(chunks) == list(LONG_PIECES[:5])
        assert finish_reasons(chunks) == ["length"]
        usage = chunks[-1]["usage"]
    else:
        result = chat(http, llama_server, **body)
        assert result["choices"][0]["message"]["content"] == answers.long_prefix(5) == "Count: 1 2 3 4"
        assert result["choices"][0]["finish_reason"] == "length"
        usage = result["usage"]
    assert usage["completion_tokens"] == 5


def test_endless_reply_stops_at_the_limit(http: httpx.Client, llama_server: LlamaServer) -> None:
    answers = llama_server.answers
    messages = [{"role": "user", "content": f"Go {answers.forever_marker}"}]
    result = chat(http, llama_server, messages=messages, max_tokens=9)
    assert result["choices"][0]["message"]["content"] == answers.forever_prefix(9)
    assert result["choices"][0]["finish_reason"] == "length"


# Separate servers


def endless_stream(http: httpx.Client, server: LlamaServer) -> AbstractContextManager[httpx.Response]:
    body = {"messages": [{"role": "user", "content": f"Go {server.answers.forever_marker}"}], "stream": True}
    return http.stream("POST", f"{server.base_url}/chat/completions", json=body)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_closing_a_stream_cancels_generation(
    http: httpx.Client, llama_server_factory: Callable[..., LlamaServer]
) -> None:
    # With context shift the endless answer never ends by itself: only the client can stop it.
    server = llama_server_factory("--context-shift", context_size=256, parallel=1)
    with endless_stream(http, server) as response:
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data: "))

    def idle() -> bool:
        slots = http.get(f"{server.url}/slots").json()
        return not any(slot["is_processing"] for slot in slots)

    wait_for(idle)
    assert chat(http, server, messages=[USER])["choices"][0]["message"]["content"] == server.answers.plain_reply


def test_a_server_killed_mid_stream_ends_the_stream_without_done(
    http: httpx.Client, llama_server_factory: Callable[..., LlamaServer]
) -> None:
    server = llama_server_factory("--context-shift", context_size=256, parallel=1)
    seen: list[str] = []
    with pytest.raises(httpx.TransportError), endless_stream(http, server) as response:  # noqa: PT012
        for line in response.iter_lines():
            seen.append(line)
            if len(seen) == 3:
                server.kill()
    assert "data: [DONE]" not in seen
    assert server.process.returncode == -9
    with pytest.raises(httpx.ConnectError):
        http.get(f"{server.url}/health")
