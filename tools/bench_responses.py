"""Benchmark section `responses`: time to first token through `responses.create(stream=True)` (what
the SDK sends: `POST /v1/responses` with `stream: true`, through Envoy), beside a run streamed the
same way (`POST /v1/threads/{id}/runs`) and llama-server streamed directly, at concurrency 1.

    .venv/bin/python tools/bench.py --sections responses [--quick]

Self-contained in what it measures; it borrows the benchmark's servers and clients (`bench`): a
llama-server on the tiny test GGUF (its 5-token answer: a sample takes milliseconds, not a
generation's seconds; the `llama` section has SmolLM2's figures for runs), one `sovereign serve
--engine openai` in front of it. The three paths send the model the same chat request (one user
message, no system message, temperature 0), one at a time, taking turns so that drift on a shared
machine touches each alike; each sample is timed from sending the request to its first text delta
(`response.output_text.delta`, `thread.message.delta`, or a chat chunk with content).
"""

from __future__ import annotations

import importlib
import json
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

SECTION = "responses"
SSE_TEXT_DELTA = b"event: response.output_text.delta"
SSE_FAILED = b"event: response.failed"
SSE_ENDED = (b"event: response.completed", b"event: response.incomplete")
# Samples per path (after the warm-up ones), and with --quick.
SAMPLES, QUICK_SAMPLES = 150, 30
WARMUP = 10
# The tiny model's plain answer (five tokens).
QUESTION = "Say hello"


async def response_stream(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float | None, bool, str]:
    """POST /responses with `stream: true`: when the first text delta arrived, whether the response
    ended, and its failure if it failed."""
    first: float | None = None
    ended, failure = False, ""
    async with http.stream("POST", "/responses", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise RuntimeError(f"responses.create: HTTP {response.status_code}: {text[:300]}")
        pending = b""
        async for chunk in response.aiter_raw():
            frames = (pending + chunk).split(b"\n\n")
            pending = frames.pop()
            for frame in frames:
                if first is None and frame.startswith(SSE_TEXT_DELTA):
                    first = time.perf_counter()
                elif frame.startswith(SSE_ENDED):
                    ended = True
                elif frame.startswith(SSE_FAILED):
                    failure = json.loads(frame.split(b"\ndata: ", 1)[1])["response"]["error"]["message"]
    return first, ended, failure


async def bench_model(bench: ModuleType, workdir: Path, model: Any, samples: int, raw: dict[str, Any]) -> list[Any]:
    llama = bench.LlamaServer(model, workdir / f"responses-llama-{model.name}.log")
    service = bench.Service(
        f"responses-{model.name}",
        workdir / f"responses-{model.name}.sqlite3",
        None,
        workdir / f"responses-sovereign-{model.name}.log",
    )
    timeout = httpx.Timeout(bench.LLAMA_REQUEST_TIMEOUT)
    ttfts: dict[str, list[float]] = {"direct": [], "runs": [], "responses": []}
    errors: dict[str, list[str]] = {name: [] for name in ttfts}
    try:
        await llama.start()
        service.engine_args = ("--engine", "openai", "--engine-url", f"{llama.url}/v1")
        await service.start()
        print(f"[responses {model.name}] llama-server {llama.url} and our server {service.base_url} ready", flush=True)
        async with (
            httpx.AsyncClient(base_url=llama.url, timeout=timeout, trust_env=False) as direct_http,
            httpx.AsyncClient(base_url=service.base_url, timeout=timeout, trust_env=False) as ours,
        ):
            created = await ours.post("/assistants", json={"model": model.name, "name": "bench-responses"})
            created.raise_for_status()
            chat = bench.direct_body(model)
            run_body = {
                "assistant_id": created.json()["id"],
                "stream": True,
                "max_completion_tokens": bench.LLAMA_MAX_COMPLETION_TOKENS,
                "temperature": 0,
            }
            response_body = {
                "model": model.name,
                "input": model.text,
                "stream": True,
                "max_output_tokens": bench.LLAMA_MAX_COMPLETION_TOKENS,
                "temperature": 0,
            }
            threads = await bench.create_threads(ours, model.text, WARMUP + samples)

            async def direct() -> float | None:
                result = await bench.direct_run(direct_http, chat)
                first: float | None = result.first_token
                return first if result.completed else None

            async def runs(index: int) -> float | None:
                result = await bench.sse_run(ours, threads[index], run_body)
                if result.failure or not result.completed:
                    raise RuntimeError(result.failure or "the run did not complete")
                first: float | None = result.first_token
                return first

            async def responses() -> float | None:
                first, ended, failure = await response_stream(ours, response_body)
                if failure or not ended:
                    raise RuntimeError(failure or "the response did not end")
                return first

            for index in range(WARMUP + samples):
                for name in ttfts:
                    sent = time.perf_counter()
                    try:
                        if name == "direct":
                            first = await direct()
                        elif name == "runs":
                            first = await runs(index)
                        else:
                            first = await responses()
                    except Exception as error:
                        errors[name].append(f"{type(error).__name__}: {error}"[:300])
                        continue
                    if first is None:
                        errors[name].append("no text delta")
                    elif index >= WARMUP:
                        ttfts[name].append(first - sent)
    except BaseException:
        print(f"[responses {model.name}] server log tail:\n{service.log_tail()}")
        print(f"[responses {model.name}] llama-server log tail:\n{llama.log_tail()}")
        raise
    finally:
        service.stop()
        llama.stop()
    paths = {"direct": "direct", "runs": "runs envoy-sse", "responses": "responses envoy-sse"}
    return ttft_rows(bench, SECTION, model.name, paths, ttfts, errors, raw)


def ttft_rows(
    bench: ModuleType,
    section: str,
    model: str,
    paths: dict[str, str],
    ttfts: dict[str, list[float]],
    errors: dict[str, list[str]],
    raw: dict[str, Any],
) -> list[Any]:
    """One row per path (`paths`: sample key -> shown path), each beside the `direct` path's figures."""
    rows = []
    direct_p50 = bench.percentile(ttfts["direct"], 50)
    direct_p99 = bench.percentile(ttfts["direct"], 99)
    for name, path in paths.items():
        p50, p99 = bench.percentile(ttfts[name], 50), bench.percentile(ttfts[name], 99)
        row: dict[str, Any] = {
            "section": section,
            "path": path,
            "model": model,
            "c": 1,
            "delay_ms": 0,
            "figure": "TTFT p50 / p99",
            "value": f"{bench.ms(p50):.1f} / {bench.ms(p99):.1f} ms",
            "vs": "",
            "target": "",
            "passed": None,
            "n": len(ttfts[name]),
            "errors": len(errors[name]),
            "cpu": "",
        }
        if name != "direct":
            row["vs"] = (
                f"{bench.ms(p50 - direct_p50):+.1f} ms p50 (x{p50 / direct_p50:.2f}),"
                f" {bench.ms(p99 - direct_p99):+.1f} ms p99 of direct"
            )
        if errors[name]:
            row["note"] = errors[name][0]
        raw.setdefault(section, []).append(
            {
                "path": path,
                "model": model,
                "ttft_ms": [bench.ms(value) for value in ttfts[name]],
                "errors": errors[name],
            }
        )
        rows.append(row)
        print(f"  {section} {model:<8} {path:<20} {row['value']}  {row['vs']}", flush=True)
    return rows


async def bench_responses(workdir: Path, raw: dict[str, Any], *, quick: bool = False) -> list[Any]:
    """TTFT through `responses.create(stream=True)`, a streamed run and llama-server direct."""
    # Imported here: `bench` runs as the script that imports this module.
    bench = importlib.import_module("bench")
    model = replace(bench.tiny_llama_model(workdir), text=QUESTION, reply_tokens=None)
    return await bench_model(bench, workdir, model, QUICK_SAMPLES if quick else SAMPLES, raw)
