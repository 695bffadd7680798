"""Benchmark section `context`: time to first token on a 10,000-message thread with
`truncation_strategy: auto`, against a 10-message thread (aim: within 1.5x).

    .venv/bin/python tools/bench.py --sections context [--quick]

Self-contained (its own database fixture, servers and SSE client), so that the rest of the
benchmark can change shape around it. Two setups, each a `sovereign serve` on its own SQLite file
prepared in bulk before it starts:

- builtin: the built-in engine with a 2,048-token window (`--context-window 2048`), notes of
  about 90 words: what the server itself spends on a long thread (reading it back from the newest
  message, counting, fitting), with no model time at all;
- tiny: llama-server on the tiny test GGUF (one 2,048-token slot) behind the openai engine, notes
  of about 100 bytes (the tiny model reads a byte as a token): counts come from llama-server's
  /tokenize and the fitted prompt is counted exactly through /apply-template.

Both fill about the same window: a 10-message thread is a prompt of about 1,000 tokens, a
10,000-message one is cut to the ~1,500 that fit. Each sample is a run streamed through Envoy (SSE)
at concurrency 1, timed from the request to its first `thread.message.delta`:

- `10 msgs`: the first run on a fresh 10-message thread;
- `10k msgs, first run`: the first run on a fresh 10,000-message thread (its newest messages and
  its first one are counted now);
- `10k msgs, next run`: a later run on such a thread after one more question (only the new
  messages are counted; the rest were kept with the messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sovereign_server.children import with_parent_death_signal
from sovereign_server.engines.local import find_llama_server, free_port
from sovereign_storage import NewAssistant, Repository, TextContent, migrate, open_database, write_transaction
from sovereign_storage.database import connection_scope
from sovereign_storage.models import Message, Thread

ROOT = Path(__file__).resolve().parents[1]
SECTION = "context"
WINDOW = 2048
LONG_THREAD = 10_000
SHORT_THREAD = 10
TARGET_RATIO = 1.5
QUESTION = "What should the desk watch tomorrow?"
BUILTIN_NOTE = (
    "Desk note {index}: Treasury yields drifted higher as traders priced fewer cuts, while the dollar firmed "
    "against the yen and euro. Equity futures slipped early before recovering on strong earnings from large "
    "technology names. Credit spreads stayed tight and issuance was heavy in investment grade. Oil rose on "
    "supply concerns after inventory data, and gold held near its record. Volatility remained subdued, though "
    "skew steepened in index options. Client flows were balanced, with real money buying duration and hedge "
    "funds adding to curve steepeners ahead of the auction."
)
TINY_NOTE = "note {index}: yields drifted higher, the dollar firmed, credit stayed tight and oil rose on supply"
REQUEST_TIMEOUT = 120.0
STARTUP_SECONDS = 120.0


@dataclass(frozen=True)
class Setup:
    name: str  # "" for the built-in engine, as the benchmark table names models
    note: str
    samples: int
    warmup: int


@dataclass
class Fixture:
    assistant_id: str
    short: list[str] = field(default_factory=list)
    long: list[str] = field(default_factory=list)


@dataclass
class Sample:
    ttft: float
    prompt_tokens: int


# ----------------------------------------------------------------------------------------- fixture


def _bulk_id(prefix: str) -> str:
    return prefix + "_" + secrets.token_hex(12)


def prepare(path: Path, setup: Setup, model: str) -> Fixture:
    """An assistant, fresh 10-message threads and fresh 10,000-message threads, inserted in bulk."""
    count = setup.samples + setup.warmup
    db = open_database(str(path))
    migrate(db)
    fixture = Fixture(Repository(db).create_assistant(NewAssistant(model=model, name="bench-context")).id)
    now = int(time.time())
    threads: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    def thread(size: int) -> str:
        thread_id = _bulk_id("thread")
        threads.append({"id": thread_id, "created_at": now, "tool_resources": {}, "metadata": {}})
        for index in range(size):
            text = setup.note.format(index=index) if index < size - 1 else QUESTION
            messages.append(
                {
                    "id": _bulk_id("msg"),
                    "thread": thread_id,
                    # Weeks of notes: a second apart, and old.
                    "created_at": now - size + index,
                    "status": "completed",
                    "completed_at": now,
                    "role": "user",
                    "content": (TextContent(text),),
                    "attachments": [],
                    "metadata": {},
                }
            )
        return thread_id

    fixture.short = [thread(SHORT_THREAD) for _ in range(count)]
    fixture.long = [thread(LONG_THREAD) for _ in range(count)]
    try:
        with connection_scope(db), write_transaction(db):
            for start in range(0, len(threads), 1000):
                Thread.insert_many(threads[start : start + 1000]).execute()
            for start in range(0, len(messages), 1000):
                Message.insert_many(messages[start : start + 1000]).execute()
    finally:
        db.close()
    return fixture


# ----------------------------------------------------------------------------------------- servers


class Child:
    """A server process of this section, killed by the kernel if the benchmark dies."""

    def __init__(self, argv: list[str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                with_parent_death_signal(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True,
            )

    def wait_for(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            found = re.search(pattern, self.log_path.read_text(errors="replace"))
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.log_path.name}: not ready:\n{self.tail()}")

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_llama(model: Path, log_path: Path) -> tuple[Child, str]:
    port = free_port()
    argv = [
        str(find_llama_server()),
        "-m", str(model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--jinja",
        "-c", str(WINDOW),
        "--parallel", "1",
        "--threads", "2",
        "--no-webui",
    ]  # fmt: skip
    llama = Child(argv, log_path)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_SECONDS
    with httpx.Client(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if http.get(f"{url}/health").status_code == 200:
                    return llama, url
            if llama.process.poll() is not None:
                break
            time.sleep(0.1)
    llama.stop()
    raise RuntimeError(f"llama-server did not become healthy:\n{llama.tail()}")


def start_service(database: Path, log_path: Path, engine_args: Sequence[str]) -> tuple[Child, str]:
    executable = Path(sys.executable).parent / "sovereign"
    argv = [
        str(executable if executable.is_file() else ROOT / ".venv" / "bin" / "sovereign"),
        "serve",
        "--grpc-host", "127.0.0.1", "--grpc-port", "0",
        "--http-host", "127.0.0.1", "--http-port", "0",
        "--db", str(database),
        "--log-level", "warning",
        *engine_args,
    ]  # fmt: skip
    service = Child(argv, log_path)
    found = service.wait_for(r"JSON API \(openai SDK base_url\):\s*(\S+)")
    return service, found.group(1)


# ----------------------------------------------------------------------------------------- runs


async def streamed_run(http: httpx.AsyncClient, thread_id: str, assistant_id: str) -> Sample:
    """One run through Envoy's SSE: the time to its first delta, and the prompt tokens it reports."""
    body = {"assistant_id": assistant_id, "stream": True, "temperature": 0}
    started = time.perf_counter()
    first: float | None = None
    prompt_tokens = -1
    async with http.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"run: HTTP {response.status_code}: {(await response.aread())[:300]!r}")
        pending = b""
        async for chunk in response.aiter_raw():
            frames = (pending + chunk).split(b"\n\n")
            pending = frames.pop()
            for frame in frames:
                if frame.startswith(b"event: thread.message.delta") and first is None:
                    first = time.perf_counter()
                elif frame.startswith((b"event: thread.run.completed", b"event: thread.run.incomplete")):
                    data = json.loads(frame.split(b"data: ", 1)[1])
                    prompt_tokens = int((data.get("usage") or {}).get("prompt_tokens", -1))
                elif frame.startswith(b"event: thread.run.failed"):
                    raise RuntimeError(f"run failed: {frame[:400]!r}")
    if first is None:
        raise RuntimeError(f"run on {thread_id} streamed no text")
    return Sample(first - started, prompt_tokens)


async def measure(http: httpx.AsyncClient, setup: Setup, fixture: Fixture) -> dict[str, list[Sample]]:
    """Samples interleaved across the three kinds, so drift affects them alike; warm-up runs dropped."""
    kinds: dict[str, list[Sample]] = {"10 msgs": [], "10k msgs, first run": [], "10k msgs, next run": []}
    for index in range(setup.warmup + setup.samples):
        short = await streamed_run(http, fixture.short[index], fixture.assistant_id)
        first = await streamed_run(http, fixture.long[index], fixture.assistant_id)
        added = await http.post(f"/threads/{fixture.long[index]}/messages", json={"role": "user", "content": QUESTION})
        added.raise_for_status()
        later = await streamed_run(http, fixture.long[index], fixture.assistant_id)
        if index >= setup.warmup:
            for kind, sample in zip(kinds, (short, first, later), strict=True):
                kinds[kind].append(sample)
    return kinds


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def rows_of(setup: Setup, kinds: dict[str, list[Sample]], raw: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    base = _percentile([sample.ttft for sample in kinds["10 msgs"]], 50)
    for kind, samples in kinds.items():
        ttfts = [sample.ttft for sample in samples]
        p50, p99 = _percentile(ttfts, 50), _percentile(ttfts, 99)
        prompt = sorted(sample.prompt_tokens for sample in samples)[len(samples) // 2] if samples else -1
        ratio = p50 / base if base > 0 else math.nan
        row: dict[str, Any] = {
            "section": SECTION,
            "path": kind,
            "model": setup.name,
            "c": 1,
            "delay_ms": 0,
            "figure": "TTFT p50 / p99 (prompt tokens)",
            "value": f"{p50 * 1000:.1f} / {p99 * 1000:.1f} ms ({prompt})",
            "vs": "" if kind == "10 msgs" else f"x{ratio:.2f} of 10 msgs",
            "target": "" if kind == "10 msgs" else f"p50 <= {TARGET_RATIO:g}x 10 msgs",
            "passed": None if kind == "10 msgs" else ratio <= TARGET_RATIO,
            "n": len(samples),
            "errors": 0,
            "cpu": "",
        }
        rows.append(row)
        raw.setdefault(SECTION, []).append(
            {
                "engine": setup.name or "builtin",
                "thread": kind,
                "ttft_p50_ms": p50 * 1000,
                "ttft_p99_ms": p99 * 1000,
                "ratio_to_10_msgs": ratio,
                "prompt_tokens_median": prompt,
                "samples": len(samples),
            }
        )
        print(f"  context {setup.name or 'builtin':<8} {kind:<20} {row['value']}  {row['vs']}", flush=True)
    return rows


async def bench_setup(workdir: Path, setup: Setup, raw: dict[str, Any]) -> list[dict[str, Any]]:
    label = setup.name or "builtin"
    started = time.perf_counter()
    database = workdir / f"context-{label}.sqlite3"
    children: list[Child] = []
    try:
        if setup.name == "tiny":
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            from tests.llama.tiny_model import write_tiny_model

            model = workdir / "context-tiny.gguf"
            write_tiny_model(model)
            llama, url = await asyncio.to_thread(start_llama, model, workdir / "context-llama.log")
            children.append(llama)
            engine = ["--engine", "openai", "--engine-url", f"{url}/v1"]
        else:
            engine = ["--engine", "builtin", "--context-window", str(WINDOW)]
        fixture = await asyncio.to_thread(prepare, database, setup, "tiny" if setup.name else "bench")
        service, base_url = await asyncio.to_thread(start_service, database, workdir / f"context-{label}.log", engine)
        children.append(service)
        print(
            f"[context {label}] {len(fixture.long)} threads of {LONG_THREAD:,} messages and {len(fixture.short)} of"
            f" {SHORT_THREAD}, servers ready in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        timeout = httpx.Timeout(REQUEST_TIMEOUT)
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as http:
            kinds = await measure(http, setup, fixture)
        return rows_of(setup, kinds, raw)
    except BaseException:
        for child in children:
            print(f"[context {label}] {child.log_path.name}:\n{child.tail()}", file=sys.stderr)
        raise
    finally:
        for child in reversed(children):
            child.stop()


async def bench_context(workdir: Path, raw: dict[str, Any], *, quick: bool) -> list[dict[str, Any]]:
    samples, warmup = (5, 1) if quick else (30, 3)
    rows: list[dict[str, Any]] = []
    for setup in (Setup("", BUILTIN_NOTE, samples, warmup), Setup("tiny", TINY_NOTE, samples, warmup)):
        rows += await bench_setup(workdir, setup, raw)
    return rows
