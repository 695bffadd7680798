"""Benchmark section `sdk`, the report's first row: time to first token through us, measured as an
application measures it, with the official `openai` SDK (`threads.runs.create(..., stream=True)`
to its first `thread.message.delta`), against llama-server streamed directly (`/v1/chat/completions`
with httpx), at concurrency 1.

Two more rows tell the parts apart: the SDK's own cost (its `chat.completions` stream straight to
llama-server, against httpx's) and ours without it (the same run streamed with httpx through us).

    .venv/bin/python tools/bench.py --sections sdk [--quick]

A llama-server on the tiny test GGUF and one `sovereign serve --engine openai` in front of it (the
benchmark's own servers). Both paths send the model the same chat request; they take turns, one
request at a time, so that drift on a shared machine touches each alike. The goal: at most 2 ms
added at p50, and a p99 within 1.2x of direct's.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
from bench_responses import ttft_rows
from openai import AsyncOpenAI
from openai.types.beta.assistant_stream_event import ThreadMessageDelta, ThreadRunCompleted, ThreadRunFailed

SECTION = "sdk"
SAMPLES, QUICK_SAMPLES = 200, 30
WARMUP = 10
ADDED_P50_TARGET_MS = 2.0
P99_TARGET_RATIO = 1.2
QUESTION = "Say hello"


async def sdk_run(client: AsyncOpenAI, thread_id: str, assistant_id: str, max_tokens: int) -> float | None:
    """A streamed run through the SDK: when its first text delta arrived (None if it had none)."""
    first: float | None = None
    stream = await client.beta.threads.runs.create(
        thread_id=thread_id, assistant_id=assistant_id, stream=True, max_completion_tokens=max_tokens, temperature=0
    )
    # Closed on leaving, read to its end or not: an open stream would hold its connection.
    async with stream:
        async for event in stream:
            if first is None and isinstance(event, ThreadMessageDelta):
                first = time.perf_counter()
            elif isinstance(event, ThreadRunFailed):
                raise RuntimeError(f"run failed: {event.data.last_error}")
            elif isinstance(event, ThreadRunCompleted):
                return first
    raise RuntimeError("the stream ended before the run did")


async def sdk_chat(client: AsyncOpenAI, chat: dict[str, Any]) -> float | None:
    """The same chat request streamed with the SDK straight to llama-server: when its first text came."""
    first: float | None = None
    parameters = {key: value for key, value in chat.items() if key not in ("stream", "stream_options")}
    stream = await client.chat.completions.create(**parameters, stream=True)
    async with stream:
        async for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter()
    return first


async def measure(
    bench: ModuleType, model: Any, base_url: str, llama_url: str, samples: int
) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """Interleaved samples of each path against a running service and llama-server."""
    timeout = httpx.Timeout(bench.LLAMA_REQUEST_TIMEOUT)
    ttfts: dict[str, list[float]] = {"direct": [], "sdk_direct": [], "httpx": [], "sdk": []}
    errors: dict[str, list[str]] = {name: [] for name in ttfts}
    async with (
        httpx.AsyncClient(base_url=llama_url, timeout=timeout, trust_env=False) as direct_http,
        httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as our_http,
        AsyncOpenAI(base_url=base_url, api_key="unused", timeout=bench.LLAMA_REQUEST_TIMEOUT, max_retries=0) as client,
        AsyncOpenAI(
            base_url=f"{llama_url}/v1", api_key="unused", timeout=bench.LLAMA_REQUEST_TIMEOUT, max_retries=0
        ) as direct_client,
    ):
        assistant = await client.beta.assistants.create(model=model.name, name="bench-sdk")
        threads = {
            name: [
                (await client.beta.threads.create(messages=[{"role": "user", "content": model.text}])).id
                for _ in range(WARMUP + samples)
            ]
            for name in ("httpx", "sdk")
        }
        chat = bench.direct_body(model)
        run_body = {
            "assistant_id": assistant.id,
            "stream": True,
            "temperature": 0,
            "max_completion_tokens": bench.LLAMA_MAX_COMPLETION_TOKENS,
        }
        for index in range(WARMUP + samples):
            for name in ttfts:
                sent = time.perf_counter()
                try:
                    if name == "direct":
                        result = await bench.direct_run(direct_http, chat)
                        first = result.first_token if result.completed else None
                    elif name == "sdk_direct":
                        first = await sdk_chat(direct_client, chat)
                    elif name == "httpx":
                        result = await bench.sse_run(our_http, threads[name][index], run_body)
                        first = result.first_token if result.completed else None
                    else:
                        first = await sdk_run(
                            client, threads[name][index], assistant.id, bench.LLAMA_MAX_COMPLETION_TOKENS
                        )
                except Exception as error:
                    errors[name].append(f"{type(error).__name__}: {error}"[:300])
                    continue
                if first is None:
                    errors[name].append("no text delta")
                elif index >= WARMUP:
                    ttfts[name].append(first - sent)
    return ttfts, errors


def rows_of(
    bench: ModuleType, model: str, ttfts: dict[str, list[float]], errors: dict[str, list[str]], raw: dict[str, Any]
) -> list[Any]:
    paths = {
        "direct": "direct (httpx)",
        "sdk_direct": "direct (openai SDK chat)",
        "httpx": "httpx run stream",
        "sdk": "openai SDK run stream",
    }
    rows = ttft_rows(bench, SECTION, model, paths, ttfts, errors, raw)
    added = bench.ms(bench.percentile(ttfts["sdk"], 50) - bench.percentile(ttfts["direct"], 50))
    p99_ratio = bench.percentile(ttfts["sdk"], 99) / bench.percentile(ttfts["direct"], 99)
    rows[-1]["target"] = f"<= +{ADDED_P50_TARGET_MS:g} ms p50, p99 <= x{P99_TARGET_RATIO:g}"
    rows[-1]["passed"] = added <= ADDED_P50_TARGET_MS and p99_ratio <= P99_TARGET_RATIO
    return rows


async def bench_sdk(workdir: Path, raw: dict[str, Any], *, quick: bool = False) -> list[Any]:
    """TTFT of a run streamed with the official SDK against llama-server direct."""
    # Imported here: `bench` runs as the script that imports this module.
    bench = importlib.import_module("bench")
    model = replace(bench.tiny_llama_model(workdir), text=QUESTION, reply_tokens=None)
    llama = bench.LlamaServer(model, workdir / "sdk-llama.log")
    service = bench.Service("sdk", workdir / "sdk.sqlite3", None, workdir / "sdk-sovereign.log")
    try:
        await llama.start()
        service.engine_args = ("--engine", "openai", "--engine-url", f"{llama.url}/v1")
        await service.start()
        print(f"[sdk] llama-server {llama.url} and our server {service.base_url} ready", flush=True)
        ttfts, errors = await measure(bench, model, service.base_url, llama.url, QUICK_SAMPLES if quick else SAMPLES)
    except BaseException:
        print(f"[sdk] server log tail:\n{service.log_tail()}")
        print(f"[sdk] llama-server log tail:\n{llama.log_tail()}")
        raise
    finally:
        service.stop()
        llama.stop()
    return rows_of(bench, model.name, ttfts, errors, raw)
