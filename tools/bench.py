"""End-to-end benchmark: Envoy (JSON + SSE) and direct gRPC against the built-in engine alone.

    .venv/bin/python tools/bench.py [--quick] [--concurrency 1,16,64,256] [--delay-ms 20]

Starts `sovereign serve` as a subprocess on free loopback ports, once per token delay (0 and the
fixed delay), each on its own SQLite file prepared up front (an assistant, one thread per run, the
threads the CRUD workers write to, and a 10-message and a 100,000-message thread inserted in bulk).
It measures, in one asyncio loop of this process:

0. (`sdk`, in tools/bench_sdk.py, the first row) time to first token of a run streamed with the official
   `openai` SDK through Envoy in front of llama-server, against llama-server streamed directly;
1. time to first token at concurrency 1, through Envoy SSE and through the gRPC event stream, minus
   the engine's own time to first token for the same request;
2. runs/s and tokens/s of closed-loop workers at each concurrency, against asyncio tasks consuming
   `BuiltinEngine.generate` directly, and beside them the floor (tools/bench_floor.py): a bare gRPC
   server replaying one run's events on the engine's clock, what the framework alone reaches here;
3. create + retrieve message requests/s and latency, through Envoy and through gRPC;
4. `messages.list` latency on a 10-message thread and on a 100,000-message thread;
5. (`llama`) time to first token and tokens/s of runs against llama-server directly;
6. (`context`, in tools/bench_context.py) time to first token on a 10,000-message thread with
   `truncation_strategy: auto` against a 10-message thread, on the built-in engine and llama-server;
7. (`responses`, in tools/bench_responses.py) time to first token through `responses.create(stream=True)`,
   beside a streamed run and llama-server directly;
8. (`scale`, in tools/bench_scale.py) runs/s, tokens/s and time to first token through the gateway
   with `sovereign serve --workers 1` and `--workers 2` on PostgreSQL.

The client shares the machine's cores with the server and Envoy: every throughput and CRUD row shows
the CPU each process used during the cell (100% = one core). Prints one table and writes it, with
the raw figures, to build/bench.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import json
import math
import os
import platform
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
from bench_context import bench_context
from bench_files import measure_files
from bench_floor import capture_events
from bench_responses import bench_responses
from bench_scale import bench_scale
from bench_sdk import bench_sdk
from google.protobuf import struct_pb2

from sovereign_assistant.v1 import (
    message_pb2,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
)
from sovereign_server.auth import Gate
from sovereign_server.auth.admin import create_key
from sovereign_server.children import ChildError, ChildProcess, http_ok
from sovereign_server.engines import ChatMessage, GenerationRequest, TextDelta
from sovereign_server.engines.builtin import BuiltinEngine, split_tokens
from sovereign_server.engines.local import default_model, find_llama_server, free_port
from sovereign_server.engines.openai_compat import completion_parameters
from sovereign_storage import (
    KeyStore,
    NewAssistant,
    Repository,
    TextContent,
    migrate,
    open_database,
    write_transaction,
)
from sovereign_storage.database import connection_scope
from sovereign_storage.models import Message, Thread

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "build" / "bench.json"
MODEL = "bench-model"

# ~32 words: the reply "You said: <text>" streams 34 word tokens.
RUN_TEXT = (
    "please repeat this fixed benchmark sentence of thirty two plain words back to me so that every run "
    "streams the same number of tokens through the gateway and the typed stream alike"
)
# Time to first token does not depend on the reply's length; a short reply keeps the delayed samples fast.
TTFT_TEXT = "hello benchmark"
CRUD_TEXT = "a message written and read back by the CRUD benchmark"
LIST_TEXT = "a stored message of the list benchmark"

TTFT_TARGET_MS = 2.0
THROUGHPUT_TARGET = 0.95
THROUGHPUT_TARGET_CONCURRENCY = 64
CRUD_TARGET = 0.70
LIST_TARGET = 2.0

BUILTIN_SECTIONS = ("ttft", "throughput", "crud", "list")
# `sdk` first: its row, time to first token added over the model server as an application sees it, heads the report.
SECTIONS = ("sdk", *BUILTIN_SECTIONS, "auth", "files", "llama", "context", "responses", "scale")
AUTH_TARGET_MS = 0.2

DELTA_EVENT = "thread.message.delta"
COMPLETED_EVENT = "thread.run.completed"
SSE_DELTA = b"event: " + DELTA_EVENT.encode()
SSE_COMPLETED = b"event: " + COMPLETED_EVENT.encode()
SSE_FAILED = b"event: thread.run.failed"
SSE_DONE = b"event: done"

# The engine alone is bounded by time only, in practice: it needs no prepared thread.
ENGINE_MAX_RUNS = 1_000_000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GRPC_OPTIONS = [("grpc.enable_http_proxy", 0)]


def expected_tokens(text: str) -> int:
    return len(split_tokens("You said: " + text))


def builtin_tokens(text: str) -> int:
    """How many of the built-in engine's tokens a delta's text holds: a stream joins the deltas that
    queued up behind a busy client, so one delta may carry several."""
    return len(split_tokens(text))


# ----------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    concurrency: tuple[int, ...]
    delay: float
    ttft_samples: int
    ttft_warmup: int
    cell_seconds: float
    engine_seconds_no_delay: float
    ramp_seconds: float
    drain_seconds: float
    max_runs: int
    crud_seconds: float
    crud_max_iterations: int
    list_samples: int
    list_warmup: int
    big_thread: int
    sections: tuple[str, ...]
    llama_cell_seconds: float
    llama_max_requests: int
    llama_warmup_rounds: int
    small_thread: int = 10


def settings_from_args(args: argparse.Namespace) -> Settings:
    default_concurrency = "1,16" if args.quick else "1,16,64,256"
    raw = args.concurrency or default_concurrency
    try:
        concurrency = tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SystemExit(f"bench: --concurrency takes integers separated by commas, got {raw!r}") from None
    if not concurrency or any(c < 1 or c > 1024 for c in concurrency):
        raise SystemExit("bench: each concurrency must be between 1 and 1024")
    if args.delay_ms <= 0 or args.delay_ms > 200:
        raise SystemExit("bench: --delay-ms must be in (0, 200]")
    sections = tuple(part.strip() for part in (args.sections or ",".join(SECTIONS)).split(",") if part.strip())
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown or not sections:
        raise SystemExit(f"bench: --sections takes a comma list of {', '.join(SECTIONS)}; got {args.sections!r}")
    if args.quick:
        return Settings(
            concurrency=concurrency,
            delay=args.delay_ms / 1000,
            ttft_samples=20,
            ttft_warmup=3,
            cell_seconds=2.0,
            engine_seconds_no_delay=0.5,
            ramp_seconds=0.3,
            drain_seconds=20.0,
            max_runs=400,
            crud_seconds=1.0,
            crud_max_iterations=500,
            list_samples=30,
            list_warmup=5,
            big_thread=100_000,
            sections=sections,
            llama_cell_seconds=1.5,
            llama_max_requests=8,
            llama_warmup_rounds=1,
        )
    return Settings(
        concurrency=concurrency,
        delay=args.delay_ms / 1000,
        ttft_samples=150,
        ttft_warmup=10,
        cell_seconds=8.0,
        engine_seconds_no_delay=3.0,
        ramp_seconds=1.5,
        drain_seconds=60.0,
        max_runs=3000,
        crud_seconds=5.0,
        crud_max_iterations=5000,
        list_samples=200,
        list_warmup=20,
        big_thread=100_000,
        sections=sections,
        llama_cell_seconds=10.0,
        llama_max_requests=60,
        llama_warmup_rounds=2,
    )


# ----------------------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def ms(seconds: float) -> float:
    return seconds * 1000


# ----------------------------------------------------------------------------------------- fixtures


@dataclass
class Fixture:
    """What one prepared database holds for the benchmark."""

    assistant_id: str
    ttft_threads: list[str]
    run_threads: list[str]
    crud_threads: list[str]
    list_threads: dict[int, str] = field(default_factory=dict)


def _bulk_id(prefix: str) -> str:
    # Same shape as the server's ids (prefix, "_", 24 alphanumerics), without its slow per-letter choice.
    return prefix + "_" + secrets.token_hex(12)


def _text_content(text: str) -> tuple[TextContent]:
    return (TextContent(text),)


def prepare_database(
    path: Path, *, ttft_threads: int, run_threads: int, crud_threads: int, list_sizes: Sequence[int]
) -> Fixture:
    """Creates the schema, an assistant and every thread the benchmark uses, in bulk, before the server starts."""
    db = open_database(str(path))
    migrate(db)
    repository = Repository(db)
    assistant = repository.create_assistant(NewAssistant(model=MODEL, name="bench"))
    now = int(time.time())
    fixture = Fixture(assistant.id, [], [], [])
    threads: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    def add_thread(texts: Iterator[str], count: int, spread: int = 1) -> str:
        thread_id = _bulk_id("thread")
        threads.append({"id": thread_id, "created_at": now, "tool_resources": {}, "metadata": {}})
        for index, text in zip(range(count), texts, strict=False):
            messages.append(
                {
                    "id": _bulk_id("msg"),
                    "thread": thread_id,
                    # A long thread spans many seconds, as a real one would.
                    "created_at": now - (count - index) // spread,
                    "status": "completed",
                    "incomplete_details": None,
                    "completed_at": now,
                    "incomplete_at": None,
                    "role": "user" if index % 2 == 0 else "assistant",
                    "content": _text_content(text),
                    "assistant_id": None,
                    "run_id": None,
                    "attachments": [],
                    "metadata": {},
                }
            )
        return thread_id

    def repeat(text: str) -> Iterator[str]:
        while True:
            yield text

    fixture.ttft_threads = [add_thread(repeat(TTFT_TEXT), 1) for _ in range(ttft_threads)]
    fixture.run_threads = [add_thread(repeat(RUN_TEXT), 1) for _ in range(run_threads)]
    fixture.crud_threads = [add_thread(repeat(CRUD_TEXT), 0) for _ in range(crud_threads)]
    for size in list_sizes:
        fixture.list_threads[size] = add_thread((f"{LIST_TEXT} {i}" for i in range(size)), size, spread=50)
    try:
        with connection_scope(db), write_transaction(db):
            for start in range(0, len(threads), 1000):
                Thread.insert_many(threads[start : start + 1000]).execute()
            for start in range(0, len(messages), 1000):
                Message.insert_many(messages[start : start + 1000]).execute()
    finally:
        db.close()
    return fixture


# ----------------------------------------------------------------------------------------- the service


def _sovereign_executable() -> Path:
    beside = Path(sys.executable).parent / "sovereign"
    return beside if beside.is_file() else ROOT / ".venv" / "bin" / "sovereign"


def _proc_stat(pid: int) -> list[str] | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # After the ")" that ends the command name: state, ppid, ..., utime (14th field), stime (15th).
    return data.rsplit(")", 1)[1].split()


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = _proc_stat(pid)
    if fields is None:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def child_pids(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _proc_stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


# Seconds a server gets to drain the runs still streaming when the benchmark stops it.
STOP_GRACE = 30.0


class Server:
    """A server this benchmark runs as a child process, killed by the kernel if the benchmark dies."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.child: ChildProcess | None = None
        # The server's gateway, if it has one (its CPU is counted apart).
        self.envoy_pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it still runs after its grace period."""
        if self.child is not None:
            self.child.stop(STOP_GRACE)

    def log_tail(self, lines: int = 30) -> str:
        return self.child.log_tail(lines) if self.child else ""


class Service(Server):
    """One `sovereign serve` subprocess (gRPC server and its Envoy child) on free loopback ports."""

    def __init__(
        self, name: str, database: Path, token_delay: float | None, log_path: Path, engine_args: Sequence[str] = ()
    ) -> None:
        super().__init__(log_path)
        self.name = name
        self.database = database
        self.token_delay = token_delay
        self.engine_args = tuple(engine_args)
        self.base_url = ""
        self.grpc_target = ""

    async def start(self, ready_within: float = 60.0) -> None:
        argv = [
            str(_sovereign_executable()), "serve",
            "--grpc-host", "127.0.0.1", "--grpc-port", "0",
            "--http-host", "127.0.0.1", "--http-port", "0",
            "--metrics-port", "0",
            "--db", str(self.database),
            "--log-level", "warning",
            *self.engine_args,
        ]  # fmt: skip
        if self.token_delay is not None:
            argv += ["--token-delay", repr(self.token_delay)]
        child = ChildProcess(argv, name=self.name, env={"PYTHONUNBUFFERED": "1"}, log=self.log_path)
        self.child = child
        # Started on the loop's thread: the kernel's kill-with-parent follows the starting thread.
        child.start()
        await child.await_ready(lambda: self._read_banner(child.log_text()), ready_within, interval=0.1)
        children = child_pids(child.pid or 0)
        self.envoy_pid = children[0] if children else None

    def _read_banner(self, text: str) -> bool:
        base = re.search(r"JSON API \(openai SDK base_url\):\s*(\S+)", text)
        target = re.search(r"gRPC:\s*(\S+)", text)
        if base is None or target is None:
            return False
        self.base_url, self.grpc_target = base.group(1), target.group(1)
        return True


class FloorServer(Server):
    """`tools/bench_floor.py`: a bare gRPC server replaying one run's events (see its docstring)."""

    def __init__(self, events: Path, token_delay: float, log_path: Path) -> None:
        super().__init__(log_path)
        self.events = events
        self.token_delay = token_delay
        self.grpc_target = ""

    async def start(self, ready_within: float = 30.0) -> None:
        port = free_port()
        argv = [sys.executable, str(ROOT / "tools" / "bench_floor.py"), "--port", str(port)]
        argv += ["--delay", repr(self.token_delay), "--events", str(self.events)]
        child = ChildProcess(argv, name="floor server", env={"PYTHONUNBUFFERED": "1"}, log=self.log_path)
        self.child = child
        child.start()
        await child.await_ready(lambda: "floor ready" in child.log_text(), ready_within, interval=0.1)
        self.grpc_target = f"127.0.0.1:{port}"


@dataclass(frozen=True)
class CpuSample:
    wall: float
    client: float
    server: float
    envoy: float


class CpuMeter:
    """CPU time of this process, the server and Envoy over a measured interval (100% = one core)."""

    def __init__(self, service: Server | None) -> None:
        self.service = service

    def sample(self) -> CpuSample:
        server = cpu_seconds(self.service.pid) if self.service else 0.0
        envoy = cpu_seconds(self.service.envoy_pid) if self.service else 0.0
        return CpuSample(time.perf_counter(), time.process_time(), server, envoy)

    @staticmethod
    def percent(start: CpuSample, end: CpuSample) -> dict[str, float]:
        wall = max(end.wall - start.wall, 1e-9)
        return {
            "client": 100 * (end.client - start.client) / wall,
            "server": 100 * (end.server - start.server) / wall,
            "envoy": 100 * (end.envoy - start.envoy) / wall,
        }


# ----------------------------------------------------------------------------------------- one run per path


class Window:
    """Counts tokens arriving and runs completing within [start, end)."""

    def __init__(self, start: float, end: float) -> None:
        self.start = start
        self.end = end
        self.tokens = 0
        self.runs = 0

        self.all_tokens = 0
        self.all_runs = 0

    def add_tokens(self, count: int) -> None:
        self.all_tokens += count
        now = time.perf_counter()
        if self.start <= now < self.end:
            self.tokens += count

    def run_done(self) -> None:
        self.all_runs += 1
        now = time.perf_counter()
        if self.start <= now < self.end:
            self.runs += 1


@dataclass
class RunResult:
    first_token: float | None = None
    tokens: int = 0
    completed: bool = False
    # The completion tokens the model server reported, where the path counts by them.
    usage_tokens: int | None = None
    # The run's last_error, when the server reports the run failed.
    failure: str = ""


def _run_failure(frame: bytes) -> str:
    for line in frame.split(b"\n"):
        if line.startswith(b"data:"):
            with contextlib.suppress(ValueError, AttributeError):
                error = json.loads(line[5:]).get("last_error") or {}
                return f"run failed: {error.get('code')}: {error.get('message')}"
    return "run failed"


async def sse_run(
    http: httpx.AsyncClient,
    thread_id: str,
    body: dict[str, Any],
    window: Window | None = None,
    tokens_of: Callable[[str], int] | None = None,
) -> RunResult:
    """POST /threads/{id}/runs with `stream: true` through Envoy; counts the tokens of the
    `thread.message.delta` events with `tokens_of` (their text), else the run's completion tokens."""
    result = RunResult()
    async with http.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise RuntimeError(f"SSE run: HTTP {response.status_code}: {text[:300]}")
        pending = b""
        async for chunk in response.aiter_raw():
            frames = (pending + chunk).split(b"\n\n")
            pending = frames.pop()
            deltas = 0
            for frame in frames:
                if frame.startswith(SSE_DELTA):
                    deltas += tokens_of(_delta_text(frame)) if tokens_of is not None else 1
                elif frame.startswith(SSE_COMPLETED):
                    result.completed = True
                    if tokens_of is None:
                        result.usage_tokens = _completion_tokens(frame)
                elif frame.startswith(SSE_FAILED):
                    result.failure = _run_failure(frame)
            if deltas:
                if result.first_token is None:
                    result.first_token = time.perf_counter()
                result.tokens += deltas
                if window is not None:
                    window.add_tokens(deltas)
    if result.usage_tokens is not None:
        result.tokens = result.usage_tokens
    return result


def _frame_data(frame: bytes) -> Any:
    return json.loads(frame.split(b"\ndata: ", 1)[1])


def _delta_text(frame: bytes) -> str:
    return str(_frame_data(frame)["delta"]["content"][0]["text"]["value"])


def _completion_tokens(frame: bytes) -> int | None:
    usage = _frame_data(frame).get("usage") or {}
    tokens = usage.get("completion_tokens")
    return int(tokens) if tokens is not None else None


class Paths:
    """The two ways into the server, and the engine alone, each streaming one run."""

    def __init__(self, service: Service, fixture: Fixture, concurrency: int, token_delay: float) -> None:
        self.fixture = fixture
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.http = httpx.AsyncClient(
            base_url=service.base_url, limits=limits, timeout=httpx.Timeout(120.0), trust_env=False
        )
        self.channel = grpc.aio.insecure_channel(service.grpc_target, options=GRPC_OPTIONS)
        self.runs = run_service_pb2_grpc.RunServiceStub(self.channel)
        self.threads = thread_service_pb2_grpc.ThreadServiceStub(self.channel)
        self.engine = BuiltinEngine(token_delay=token_delay)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.channel.close()

    async def open_connections(self, count: int) -> None:
        """Opens `count` keep-alive connections to Envoy, so no cell pays for connection set-up."""
        path = f"/assistants/{self.fixture.assistant_id}"
        responses = await asyncio.gather(*(self.http.get(path) for _ in range(count)))
        for response in responses:
            response.raise_for_status()

    async def sse(self, thread_id: str, window: Window | None = None) -> RunResult:
        body = {"assistant_id": self.fixture.assistant_id, "stream": True}
        return await sse_run(self.http, thread_id, body, window, builtin_tokens)

    async def grpc_stream(self, thread_id: str, window: Window | None = None) -> RunResult:
        request = run_service_pb2.CreateRunRequest(thread_id=thread_id, assistant_id=self.fixture.assistant_id)
        return await stream_run_events(self.runs, request, window)

    async def engine_run(self, text: str, window: Window | None = None) -> RunResult:
        result = RunResult()
        request = GenerationRequest(model=MODEL, messages=(ChatMessage(role="user", content=text),))
        async for chunk in self.engine.generate(request):
            if isinstance(chunk, TextDelta):
                if result.first_token is None:
                    result.first_token = time.perf_counter()
                result.tokens += 1
                if window is not None:
                    window.add_tokens(1)
        result.completed = True
        return result


async def stream_run_events(
    stub: run_service_pb2_grpc.RunServiceAsyncStub, request: run_service_pb2.CreateRunRequest, window: Window | None
) -> RunResult:
    """One run streamed over gRPC (`CreateRunEvents`), its text deltas counted as they arrive."""
    result = RunResult()
    async for event in stub.CreateRunEvents(request):
        name = event.event
        if name == DELTA_EVENT:
            if result.first_token is None:
                result.first_token = time.perf_counter()
            tokens = builtin_tokens(event.message_delta.delta.content[0].text.value)
            result.tokens += tokens
            if window is not None:
                window.add_tokens(tokens)
        elif name == COMPLETED_EVENT:
            result.completed = True
    return result


class ThreadPool:
    """Threads prepared up front, each used by one run (one active run per thread)."""

    def __init__(self, thread_ids: Sequence[str]) -> None:
        self._ids = list(thread_ids)
        self._next = 0

    def take(self) -> str | None:
        if self._next >= len(self._ids):
            return None
        self._next += 1
        return self._ids[self._next - 1]

    @property
    def left(self) -> int:
        return len(self._ids) - self._next


# ----------------------------------------------------------------------------------------- measurements


Row = dict[str, Any]
RunFn = Callable[[str, Window | None], Awaitable[RunResult]]


async def measure_ttft(
    settings: Settings, paths: Paths, pool: ThreadPool, delay_ms: float, raw: dict[str, Any]
) -> list[Row]:
    """Sequential runs (concurrency 1): time from sending the request to the first delta."""
    want = expected_tokens(TTFT_TEXT)

    async def engine(_: str, window: Window | None = None) -> RunResult:
        return await paths.engine_run(TTFT_TEXT, window)

    runners: list[tuple[str, RunFn, bool]] = [
        ("engine", engine, False),
        ("envoy-sse", paths.sse, True),
        ("grpc-stream", paths.grpc_stream, True),
    ]
    samples: dict[str, list[float]] = {name: [] for name, _, _ in runners}
    errors: dict[str, int] = {name: 0 for name, _, _ in runners}
    for round_index in range(settings.ttft_warmup + settings.ttft_samples):
        # Interleaved, so that drift over time affects every path alike.
        for name, run, needs_thread in runners:
            thread_id = pool.take() if needs_thread else ""
            if thread_id is None:
                raise RuntimeError("ran out of prepared threads for the TTFT runs")
            started = time.perf_counter()
            result = await asyncio.wait_for(run(thread_id, None), timeout=60)
            if result.first_token is None or result.tokens != want or not result.completed:
                errors[name] += 1
                continue
            if round_index >= settings.ttft_warmup:
                samples[name].append(result.first_token - started)
    engine_p50 = percentile(samples["engine"], 50)
    engine_p99 = percentile(samples["engine"], 99)
    rows: list[Row] = []
    for name, _, _ in runners:
        p50, p99 = percentile(samples[name], 50), percentile(samples[name], 99)
        entry: dict[str, Any] = {
            "path": name,
            "delay_ms": delay_ms,
            "samples": len(samples[name]),
            "errors": errors[name],
            "ttft_p50_ms": ms(p50),
            "ttft_p99_ms": ms(p99),
        }
        row: Row = {
            "section": "ttft",
            "path": name,
            "c": 1,
            "delay_ms": delay_ms,
            "figure": "TTFT p50 / p99",
            "value": f"{ms(p50):.3f} / {ms(p99):.3f} ms",
            "vs": "",
            "target": "",
            "passed": None,
            "n": len(samples[name]),
            "errors": errors[name],
            "cpu": "",
        }
        if name != "engine":
            added50, added99 = ms(p50 - engine_p50), ms(p99 - engine_p99)
            entry.update(added_p50_ms=added50, added_p99_ms=added99)
            row.update(
                figure="added TTFT p50 / p99",
                value=f"{added50:.2f} / {added99:.2f} ms",
                vs=f"total {ms(p50):.2f} / {ms(p99):.2f} ms",
                target=f"added p50 <= {TTFT_TARGET_MS:g} ms",
                passed=added50 <= TTFT_TARGET_MS and errors[name] == 0,
            )
        raw.setdefault("ttft", []).append(entry)
        rows.append(row)
    return rows


@dataclass
class CellResult:
    runs_per_s: float
    completed_runs_per_s: float
    tokens_per_s: float
    window_s: float
    started: int
    completed: int
    errors: int
    first_error: str
    cpu: dict[str, float]
    drain_timed_out: bool


async def closed_loop(
    settings: Settings,
    concurrency: int,
    duration: float,
    run: RunFn,
    take: Callable[[], str | None],
    want_tokens: int,
    meter: CpuMeter,
    max_runs: int,
) -> CellResult:
    """`concurrency` workers, each starting its next run when the previous one ends, until `duration`
    seconds or `max_runs` runs; runs and tokens are counted in the window after the ramp-up."""
    started_at = time.perf_counter()
    deadline = started_at + duration
    window = Window(started_at + min(settings.ramp_seconds, duration / 4), deadline)
    state = {"started": 0, "completed": 0, "errors": 0}
    first_error: list[str] = []
    cpu_start = meter.sample()
    cpu_end: list[CpuSample] = []

    async def worker() -> None:
        while time.perf_counter() < deadline and state["started"] < max_runs:
            thread_id = take()
            if thread_id is None:
                return
            state["started"] += 1
            try:
                result = await run(thread_id, window)
            except Exception as error:
                state["errors"] += 1
                if not first_error:
                    first_error.append(f"{type(error).__name__}: {error}"[:300])
                continue
            if result.completed and result.tokens == want_tokens:
                state["completed"] += 1
                window.run_done()
            else:
                state["errors"] += 1
                if not first_error:
                    first_error.append(f"run ended with {result.tokens} tokens, completed={result.completed}")
        # CPU is accounted up to the end of the window, not over the drain of the last runs.
        if not cpu_end and time.perf_counter() >= deadline:
            cpu_end.append(meter.sample())

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    done, pending = await asyncio.wait(tasks, timeout=duration + settings.drain_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        error = task.exception()
        if error is not None:
            raise error
    finished_at = time.perf_counter()
    end = min(deadline, finished_at)
    window_s = end - window.start
    runs, tokens = window.runs, window.tokens
    if window_s < duration / 4:
        # The count bound ended the cell before (or soon after) the ramp-up: count the whole cell.
        window_s, runs, tokens = finished_at - started_at, window.all_runs, window.all_tokens
    window_s = max(window_s, 1e-9)
    cpu = CpuMeter.percent(cpu_start, cpu_end[0] if cpu_end else meter.sample())
    return CellResult(
        # Every run streams `want_tokens` tokens: runs/s from the token rate is free of the bursts in
        # which closed-loop workers that started together complete their runs.
        runs_per_s=tokens / want_tokens / window_s,
        completed_runs_per_s=runs / window_s,
        tokens_per_s=tokens / window_s,
        window_s=window_s,
        started=state["started"],
        completed=state["completed"],
        errors=state["errors"],
        first_error=first_error[0] if first_error else "",
        cpu=cpu,
        drain_timed_out=bool(pending),
    )


def _cpu_text(cpu: dict[str, float]) -> str:
    return f"{cpu['client']:.0f}/{cpu['server']:.0f}/{cpu['envoy']:.0f}"


async def measure_throughput(
    settings: Settings,
    service: Service,
    fixture: Fixture,
    pool: ThreadPool,
    floor: FloorServer,
    delay_ms: float,
    raw: dict[str, Any],
) -> list[Row]:
    rows: list[Row] = []
    want = expected_tokens(RUN_TEXT)
    token_delay = settings.delay if delay_ms else 0.0
    meters = {"engine": CpuMeter(None), "grpc-floor": CpuMeter(floor)}
    for concurrency in settings.concurrency:
        paths = Paths(service, fixture, concurrency, token_delay)
        floor_channel = grpc.aio.insecure_channel(floor.grpc_target, options=GRPC_OPTIONS)
        try:
            await paths.open_connections(concurrency)

            async def engine(_: str, window: Window | None, paths: Paths = paths) -> RunResult:
                return await paths.engine_run(RUN_TEXT, window)

            floor_stub = run_service_pb2_grpc.RunServiceStub(floor_channel)

            async def floor_run(
                _: str, window: Window | None, stub: run_service_pb2_grpc.RunServiceAsyncStub = floor_stub
            ) -> RunResult:
                return await stream_run_events(stub, run_service_pb2.CreateRunRequest(), window)

            engine_seconds = settings.cell_seconds if delay_ms else settings.engine_seconds_no_delay
            cells: list[tuple[str, RunFn, Callable[[], str | None], float]] = [
                ("engine", engine, lambda: "", engine_seconds),
                ("grpc-floor", floor_run, lambda: "", settings.cell_seconds),
                ("grpc-stream", paths.grpc_stream, pool.take, settings.cell_seconds),
                ("envoy-sse", paths.sse, pool.take, settings.cell_seconds),
            ]
            engine_runs = math.nan
            for name, run, take, duration in cells:
                is_engine = name == "engine"
                cell = await closed_loop(
                    settings,
                    concurrency,
                    duration,
                    run,
                    take,
                    want,
                    meters.get(name, CpuMeter(service)),
                    ENGINE_MAX_RUNS if is_engine else settings.max_runs,
                )
                raw.setdefault("throughput", []).append(
                    {"path": name, "c": concurrency, "delay_ms": delay_ms, **asdict(cell)}
                )
                if name == "engine":
                    engine_runs = cell.runs_per_s
                share = cell.runs_per_s / engine_runs if engine_runs > 0 else math.nan
                row: Row = {
                    "section": "throughput",
                    "path": name,
                    "c": concurrency,
                    "delay_ms": delay_ms,
                    "figure": "runs/s | tokens/s",
                    "value": f"{cell.runs_per_s:.1f} | {cell.tokens_per_s:.0f}",
                    "vs": "" if name == "engine" else f"{100 * share:.1f}% of engine runs/s",
                    "target": "",
                    "passed": None,
                    "n": cell.completed,
                    "errors": cell.errors,
                    "cpu": _cpu_text(cell.cpu) if name != "engine" else f"{cell.cpu['client']:.0f}/-/-",
                }
                # The targets are ours; the floor only shows what the framework allows.
                if name in ("grpc-stream", "envoy-sse") and concurrency == THROUGHPUT_TARGET_CONCURRENCY:
                    row.update(target=f">= {100 * THROUGHPUT_TARGET:.0f}% of engine", passed=share >= THROUGHPUT_TARGET)
                if cell.first_error:
                    row["note"] = cell.first_error
                if cell.drain_timed_out:
                    row["note"] = (row.get("note", "") + " drain timed out").strip()
                rows.append(row)
                print(
                    f"  {name:<12} c={concurrency:<4} delay={delay_ms:g}ms  {row['value']:>16}  {row['vs']}", flush=True
                )
        finally:
            await paths.aclose()
            await floor_channel.close()
    return rows


async def start_floor(service: Service, fixture: Fixture, pool: ThreadPool, token_delay: float) -> FloorServer:
    """The floor server (`bench_floor.py`), replaying the events of one run of `service`'s."""
    request = run_service_pb2.CreateRunRequest(thread_id=pool.take() or "", assistant_id=fixture.assistant_id)
    async with grpc.aio.insecure_channel(service.grpc_target, options=GRPC_OPTIONS) as channel:
        frames = await capture_events(run_service_pb2_grpc.RunServiceStub(channel), request)
    events = service.log_path.with_suffix(".events")
    events.write_bytes(frames)
    floor = FloorServer(events, token_delay, service.log_path.with_suffix(".floor.log"))
    await floor.start()
    return floor


async def measure_crud(settings: Settings, service: Service, fixture: Fixture, raw: dict[str, Any]) -> list[Row]:
    """create + retrieve a message, each worker on its own thread."""
    rows: list[Row] = []
    meter = CpuMeter(service)
    threads_left = list(fixture.crud_threads)
    for concurrency in (1, 16):
        paths = Paths(service, fixture, concurrency, 0.0)
        try:
            await paths.open_connections(concurrency)

            async def via_envoy(thread_id: str, paths: Paths = paths) -> tuple[float, float]:
                started = time.perf_counter()
                created = await paths.http.post(
                    f"/threads/{thread_id}/messages", json={"role": "user", "content": CRUD_TEXT}
                )
                created.raise_for_status()
                message_id = created.json()["id"]
                middle = time.perf_counter()
                fetched = await paths.http.get(f"/threads/{thread_id}/messages/{message_id}")
                fetched.raise_for_status()
                if fetched.json()["id"] != message_id:
                    raise RuntimeError("retrieved another message")
                return middle - started, time.perf_counter() - middle

            async def via_grpc(thread_id: str, paths: Paths = paths) -> tuple[float, float]:
                started = time.perf_counter()
                message = message_pb2.MessageInput(role="user", content=struct_pb2.Value(string_value=CRUD_TEXT))
                created = await paths.threads.CreateMessage(
                    thread_service_pb2.CreateMessageRequest(thread_id=thread_id, message=message)
                )
                middle = time.perf_counter()
                fetched = await paths.threads.GetMessage(
                    thread_service_pb2.GetMessageRequest(thread_id=thread_id, message_id=created.id)
                )
                if fetched.id != created.id:
                    raise RuntimeError("retrieved another message")
                return middle - started, time.perf_counter() - middle

            results: dict[str, float] = {}
            for name, operation in (("grpc-direct", via_grpc), ("envoy-json", via_envoy)):
                if len(threads_left) < concurrency:
                    raise RuntimeError("not enough prepared CRUD threads")
                slots, threads_left = threads_left[:concurrency], threads_left[concurrency:]
                for _ in range(settings.list_warmup):
                    await operation(slots[0])
                creates: list[float] = []
                retrieves: list[float] = []
                iterations = [0]
                started = time.perf_counter()
                deadline = started + settings.crud_seconds
                cpu_start = meter.sample()

                async def worker(
                    thread_id: str,
                    operation: Callable[[str], Awaitable[tuple[float, float]]] = operation,
                    creates: list[float] = creates,
                    retrieves: list[float] = retrieves,
                    iterations: list[int] = iterations,
                    deadline: float = deadline,
                ) -> None:
                    while time.perf_counter() < deadline and iterations[0] < settings.crud_max_iterations:
                        iterations[0] += 1
                        create, retrieve = await operation(thread_id)
                        creates.append(create)
                        retrieves.append(retrieve)

                await asyncio.wait_for(
                    asyncio.gather(*(worker(thread_id) for thread_id in slots)), settings.crud_seconds + 60
                )
                elapsed = time.perf_counter() - started
                cpu = CpuMeter.percent(cpu_start, meter.sample())
                requests_per_s = 2 * len(creates) / elapsed
                results[name] = requests_per_s
                reference = results["grpc-direct"] if name == "envoy-json" else None
                rows.append(crud_row(name, concurrency, requests_per_s, creates, retrieves, cpu, reference, raw))
            if concurrency == 1 and threads_left:
                curl_iterations = min(settings.crud_max_iterations, int(raw["crud"][-1]["iterations"]))
                curl_row = await curl_crud(
                    service, paths, threads_left.pop(0), curl_iterations, results["grpc-direct"], raw
                )
                if curl_row is not None:
                    rows.append(curl_row)
        finally:
            await paths.aclose()
    return rows


async def curl_crud(
    service: Service, paths: Paths, thread_id: str, iterations: int, grpc_requests_per_s: float, raw: dict[str, Any]
) -> Row | None:
    """The envoy-json path again with curl, a client in C on one kept-alive connection: Python's
    httpx spends about a millisecond of CPU on each request itself, a cost of the client that is
    not the gateway's (the gRPC path's client is C-core under a thin Python layer)."""
    curl = shutil.which("curl")
    if curl is None:
        print("  crud envoy-json-curl: no curl on this machine, row skipped", flush=True)
        return None
    created = await paths.http.post(f"/threads/{thread_id}/messages", json={"role": "user", "content": CRUD_TEXT})
    created.raise_for_status()
    create_url = f"{service.base_url}/threads/{thread_id}/messages"
    retrieve_url = f"{create_url}/{created.json()['id']}"
    body = json.dumps({"role": "user", "content": CRUD_TEXT})
    write_out = 'write-out = "%{http_code} %{time_total}\\n"\noutput = "/dev/null"\n'
    create = f'url = "{create_url}"\nheader = "content-type: application/json"\ndata-binary = {json.dumps(body)}\n'
    retrieve = f'url = "{retrieve_url}"\n'
    steps = [create + write_out, retrieve + write_out] * iterations
    with tempfile.NamedTemporaryFile("w", suffix=".curl", delete=False) as config:
        config.write("next\n".join(steps))
    try:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            curl, "--silent", "--noproxy", "*", "--config", config.name, stdout=asyncio.subprocess.PIPE
        )
        output, _ = await process.communicate()
        # Wall time, as the other rows count it: curl's own work between requests (and its start) included.
        elapsed = time.perf_counter() - started
    finally:
        os.unlink(config.name)
    answers = [line.split() for line in output.decode().splitlines() if line.strip()]
    failed = [status for status, _ in answers if status != "200"]
    times = [float(seconds) for _, seconds in answers]
    if process.returncode != 0 or failed or len(times) != 2 * iterations:
        raise RuntimeError(f"curl CRUD: exit {process.returncode}, {len(times)} answers, statuses {failed[:3]}")
    creates, retrieves = times[0::2], times[1::2]
    return crud_row("envoy-json-curl", 1, len(times) / elapsed, creates, retrieves, None, grpc_requests_per_s, raw)


def crud_row(
    path: str,
    concurrency: int,
    requests_per_s: float,
    creates: list[float],
    retrieves: list[float],
    cpu: dict[str, float] | None,
    grpc_requests_per_s: float | None,
    raw: dict[str, Any],
) -> Row:
    """One CRUD path's row (and raw entry); a JSON path is held to its share of the gRPC path's req/s."""
    both = creates + retrieves
    entry: dict[str, Any] = {
        "path": path,
        "c": concurrency,
        "requests_per_s": requests_per_s,
        "iterations": len(creates),
        "create_p50_ms": ms(percentile(creates, 50)),
        "create_p99_ms": ms(percentile(creates, 99)),
        "retrieve_p50_ms": ms(percentile(retrieves, 50)),
        "retrieve_p99_ms": ms(percentile(retrieves, 99)),
        "request_p50_ms": ms(percentile(both, 50)),
        "request_p99_ms": ms(percentile(both, 99)),
    }
    if cpu is not None:
        entry["cpu"] = cpu
    raw.setdefault("crud", []).append(entry)
    row: Row = {
        "section": "crud",
        "path": path,
        "c": concurrency,
        "delay_ms": 0,
        "figure": "req/s; create p50/p99; retrieve p50/p99",
        "value": (
            f"{requests_per_s:.0f}; {entry['create_p50_ms']:.2f}/{entry['create_p99_ms']:.2f} ms; "
            f"{entry['retrieve_p50_ms']:.2f}/{entry['retrieve_p99_ms']:.2f} ms"
        ),
        "vs": "",
        "target": "",
        "passed": None,
        "n": len(both),
        "errors": 0,
        "cpu": _cpu_text(cpu) if cpu is not None else "",
    }
    if grpc_requests_per_s is not None:
        ratio = requests_per_s / grpc_requests_per_s
        entry["ratio_to_grpc"] = ratio
        row.update(
            vs=f"{100 * ratio:.1f}% of gRPC req/s",
            target=f">= {100 * CRUD_TARGET:.0f}% of gRPC",
            passed=ratio >= CRUD_TARGET,
        )
    print(f"  crud {path:<12} c={concurrency:<3} {row['value']}  {row['vs']}", flush=True)
    return row


async def measure_list(settings: Settings, service: Service, fixture: Fixture, raw: dict[str, Any]) -> list[Row]:
    """messages.list with the default limit (20), at concurrency 1."""
    rows: list[Row] = []
    paths = Paths(service, fixture, 1, 0.0)
    try:

        async def via_grpc(thread_id: str) -> int:
            response = await paths.threads.ListMessages(thread_service_pb2.ListMessagesRequest(thread_id=thread_id))
            return len(response.data)

        async def via_envoy(thread_id: str) -> int:
            response = await paths.http.get(f"/threads/{thread_id}/messages")
            response.raise_for_status()
            return len(response.json()["data"])

        for name, operation in (("grpc-direct", via_grpc), ("envoy-json", via_envoy)):
            p50s: dict[int, float] = {}
            for size, thread_id in sorted(fixture.list_threads.items()):
                samples: list[float] = []
                for index in range(settings.list_warmup + settings.list_samples):
                    started = time.perf_counter()
                    count = await operation(thread_id)
                    elapsed = time.perf_counter() - started
                    if count != min(size, 20):
                        raise RuntimeError(f"list of a {size}-message thread returned {count} messages")
                    if index >= settings.list_warmup:
                        samples.append(elapsed)
                p50s[size] = p50 = percentile(samples, 50)
                p99 = percentile(samples, 99)
                entry: dict[str, Any] = {
                    "path": name,
                    "thread_messages": size,
                    "p50_ms": ms(p50),
                    "p99_ms": ms(p99),
                    "samples": len(samples),
                }
                row: Row = {
                    "section": "list",
                    "path": name,
                    "c": 1,
                    "delay_ms": 0,
                    "figure": f"list p50 / p99, thread of {size:,}",
                    "value": f"{ms(p50):.2f} / {ms(p99):.2f} ms",
                    "vs": "",
                    "target": "",
                    "passed": None,
                    "n": len(samples),
                    "errors": 0,
                    "cpu": "",
                }
                smallest = min(p50s)
                if size != smallest:
                    ratio = p50 / p50s[smallest]
                    entry["ratio_to_small"] = ratio
                    row.update(
                        vs=f"{ratio:.2f}x the {smallest}-message p50",
                        target=f"<= {LIST_TARGET:g}x",
                        passed=ratio <= LIST_TARGET,
                    )
                raw.setdefault("list", []).append(entry)
                rows.append(row)
    finally:
        await paths.aclose()
    return rows


# ----------------------------------------------------------------------------------------- llama


LLAMA_MODELS = ("tiny", "smollm2")
LLAMA_CONCURRENCY = (1, 16)
LLAMA_PARALLEL = 16
LLAMA_THREADS = 2
LLAMA_STARTUP_SECONDS = 120.0
LLAMA_REQUEST_TIMEOUT = 120.0
# Both paths send what a run sends upstream: OpenAI's minimum run limit (every reply here is shorter), temperature 0.
LLAMA_MAX_COMPLETION_TOKENS = 256
# SmolLM2 answers this in about 65 tokens at temperature 0, and stops on its own.
SMOLLM2_QUESTION = "Describe the city of Paris in three sentences."


@dataclass(frozen=True)
class LlamaModel:
    name: str
    path: Path
    text: str
    context_size: int
    # The exact reply length of a deterministic model; None: whatever the model answers, counted.
    reply_tokens: int | None


def tiny_llama_model(directory: Path) -> LlamaModel:
    """The tiny deterministic GGUF of the llama tests, written into `directory`; it answers 62 tokens to `[[long]]`."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    tiny_model = importlib.import_module("tests.llama.tiny_model")
    path = directory / "tiny.gguf"
    answers = tiny_model.write_tiny_model(path)
    text = f"Count for the benchmark {answers.long_marker}"
    # Counted as llama-server reports it, with the end token.
    return LlamaModel(
        "tiny", path, text, LLAMA_PARALLEL * 512, int(answers.completion_tokens(answers.long_token_count))
    )


def smollm2_llama_model() -> LlamaModel:
    """SmolLM2-135M-Instruct, the local engine's default model."""
    return LlamaModel("smollm2", default_model(), SMOLLM2_QUESTION, LLAMA_PARALLEL * 1024, None)


class LlamaServer(Server):
    """One `llama-server` on a free loopback port."""

    def __init__(self, model: LlamaModel, log_path: Path) -> None:
        super().__init__(log_path)
        self.model = model
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        binary = find_llama_server()
        for attempt in range(3):  # another process may take the free port before llama-server binds it
            self.port = free_port()
            command = [
                str(binary),
                "-m", str(self.model.path),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--jinja",
                "-c", str(self.model.context_size),
                "--parallel", str(LLAMA_PARALLEL),
                "--threads", str(LLAMA_THREADS),
                "--no-webui",
            ]  # fmt: skip
            self.child = ChildProcess(command, name=f"llama-server on {self.model.name}", log=self.log_path)
            self.child.start()
            try:
                await self.child.await_ready(http_ok(f"{self.url}/health"), LLAMA_STARTUP_SECONDS, interval=0.1)
                return
            except ChildError:
                if attempt == 2:
                    raise


def direct_body(model: LlamaModel) -> dict[str, Any]:
    """The chat-completions request our openai engine sends for a run on a thread of one user message."""
    request = GenerationRequest(
        model=model.name,
        messages=(ChatMessage(role="user", content=model.text),),
        temperature=0.0,
        max_completion_tokens=LLAMA_MAX_COMPLETION_TOKENS,
    )
    return completion_parameters(request, model.name)


async def direct_run(http: httpx.AsyncClient, body: dict[str, Any]) -> RunResult:
    """Streams POST /v1/chat/completions from llama-server; counts the completion tokens it reports
    (the same count our runs report), else the chunks that carry content."""
    result = RunResult()
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")
            raise RuntimeError(f"chat completion: HTTP {response.status_code}: {text[:300]}")
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                result.completed = True
                continue
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    if result.first_token is None:
                        result.first_token = time.perf_counter()
                    result.tokens += 1
            if chunk.get("usage"):
                result.usage_tokens = int(chunk["usage"]["completion_tokens"])
    if result.usage_tokens is not None:
        result.tokens = result.usage_tokens
    return result


async def create_threads(http: httpx.AsyncClient, text: str, count: int, concurrency: int = 16) -> list[str]:
    """`count` threads of one user message each, created through the JSON API."""
    body = {"messages": [{"role": "user", "content": text}]}
    ids: list[str] = []
    for start in range(0, count, concurrency):
        responses = await asyncio.gather(
            *(http.post("/threads", json=body) for _ in range(min(concurrency, count - start)))
        )
        for response in responses:
            response.raise_for_status()
            ids.append(response.json()["id"])
    return ids


@dataclass
class LlamaCell:
    ttfts: list[float]
    reply_tokens: list[int]
    tokens: int
    requests: int
    errors: int
    first_error: str
    wall_s: float
    cpu: dict[str, float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / max(self.wall_s, 1e-9)

    @property
    def mean_reply_tokens(self) -> float:
        return sum(self.reply_tokens) / len(self.reply_tokens) if self.reply_tokens else math.nan


def _llama_cpu(service: Service | None, llama: LlamaServer) -> tuple[float, float, float, float, float]:
    server = cpu_seconds(service.pid) if service else 0.0
    envoy = cpu_seconds(service.envoy_pid) if service else 0.0
    return time.perf_counter(), time.process_time(), server, envoy, cpu_seconds(llama.pid)


async def llama_cell(
    settings: Settings,
    concurrency: int,
    max_requests: int,
    request: Callable[[int], Awaitable[RunResult]],
    reply_tokens: int | None,
    service: Service | None,
    llama: LlamaServer,
) -> LlamaCell:
    """`concurrency` closed-loop workers until the cell's time or request count is used up; the last requests finish.
    TTFT is from sending a request to its first content delta; tokens/s counts every delta over the cell's wall time."""
    cell = LlamaCell([], [], 0, 0, 0, "", 0.0, {})
    started_at = time.perf_counter()
    deadline = started_at + settings.llama_cell_seconds
    cpu_start = _llama_cpu(service, llama)

    def failed(message: str) -> None:
        cell.errors += 1
        if not cell.first_error:
            cell.first_error = message[:300]

    async def worker() -> None:
        while time.perf_counter() < deadline and cell.requests < max_requests:
            index = cell.requests
            cell.requests += 1
            sent = time.perf_counter()
            try:
                result = await asyncio.wait_for(request(index), LLAMA_REQUEST_TIMEOUT)
            except Exception as error:
                failed(f"{type(error).__name__}: {error}")
                continue
            cell.tokens += result.tokens
            if result.failure:
                failed(result.failure)
            elif result.first_token is None or not result.completed:
                failed(f"reply of {result.tokens} tokens, completed={result.completed}")
            elif reply_tokens is not None and result.tokens != reply_tokens:
                failed(f"reply of {result.tokens} tokens, expected {reply_tokens}")
            else:
                cell.ttfts.append(result.first_token - sent)
                cell.reply_tokens.append(result.tokens)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_end = _llama_cpu(service, llama)
    cell.wall_s = cpu_end[0] - started_at
    wall = max(cell.wall_s, 1e-9)
    names = ("client", "server", "envoy", "llama")
    cell.cpu = {name: 100 * (cpu_end[i + 1] - cpu_start[i + 1]) / wall for i, name in enumerate(names)}
    return cell


def llama_rows(model: LlamaModel, concurrency: int, cells: dict[str, LlamaCell], raw: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    direct = cells["direct"]
    for name, cell in cells.items():
        p50, p99 = percentile(cell.ttfts, 50), percentile(cell.ttfts, 99)
        entry: dict[str, Any] = {
            "path": name,
            "model": model.name,
            "c": concurrency,
            "ttft_p50_ms": ms(p50),
            "ttft_p99_ms": ms(p99),
            "tokens_per_s": cell.tokens_per_s,
            "mean_reply_tokens": cell.mean_reply_tokens,
            "replies": len(cell.ttfts),
            "requests": cell.requests,
            "errors": cell.errors,
            "first_error": cell.first_error,
            "wall_s": cell.wall_s,
            "cpu": cell.cpu,
        }
        cpu = cell.cpu
        row: Row = {
            "section": "llama",
            "path": name,
            "model": model.name,
            "c": concurrency,
            "delay_ms": 0,
            "figure": "TTFT p50 / p99 | tokens/s",
            "value": f"{ms(p50):.1f} / {ms(p99):.1f} ms | {cell.tokens_per_s:.0f}",
            "vs": "",
            "target": "",
            "passed": None,
            "n": len(cell.ttfts),
            "errors": cell.errors,
            "cpu": (
                f"{cpu['client']:.0f}/{cpu['server']:.0f}/{cpu['envoy']:.0f}"
                if name != "direct"
                else f"{cpu['client']:.0f}/-/-"
            )
            + f" +llama {cpu['llama']:.0f}",
        }
        notes: list[str] = []
        if name != "direct":
            ttft50 = p50 / percentile(direct.ttfts, 50)
            ttft99 = p99 / percentile(direct.ttfts, 99)
            throughput = cell.tokens_per_s / direct.tokens_per_s if direct.tokens_per_s > 0 else math.nan
            entry.update(ttft_p50_ratio=ttft50, ttft_p99_ratio=ttft99, tokens_per_s_ratio=throughput)
            row["vs"] = f"TTFT x{ttft50:.2f} p50, x{ttft99:.2f} p99; tokens/s x{throughput:.2f} of direct"
            if model.reply_tokens is None and abs(cell.mean_reply_tokens - direct.mean_reply_tokens) > 0.5:
                notes.append(
                    f"replies differ in length: {cell.mean_reply_tokens:.1f} tokens here,"
                    f" {direct.mean_reply_tokens:.1f} direct"
                )
        if cell.first_error:
            notes.append(cell.first_error)
        if notes:
            row["note"] = "; ".join(notes)
        raw.setdefault("llama", []).append(entry)
        rows.append(row)
        print(f"  llama {model.name:<8} {name:<10} c={concurrency:<3} {row['value']}  {row['vs']}", flush=True)
    return rows


async def bench_llama_model(settings: Settings, workdir: Path, model: LlamaModel, raw: dict[str, Any]) -> list[Row]:
    """One llama-server on `model`, and one `sovereign serve --engine openai` in front of it."""
    llama = LlamaServer(model, workdir / f"llama-{model.name}.log")
    service = Service(
        f"llama-{model.name}", workdir / f"llama-{model.name}.sqlite3", None, workdir / f"sovereign-{model.name}.log"
    )
    rows: list[Row] = []
    widest = max(LLAMA_CONCURRENCY)
    limits = httpx.Limits(max_connections=widest, max_keepalive_connections=widest)
    timeout = httpx.Timeout(LLAMA_REQUEST_TIMEOUT)
    started = time.perf_counter()
    try:
        await llama.start()
        service.engine_args = ("--engine", "openai", "--engine-url", f"{llama.url}/v1")
        await service.start()
        print(
            f"[llama {model.name}] llama-server {llama.url} and our server {service.base_url} ready"
            f" in {time.perf_counter() - started:.1f} s ({model.path.name})",
            flush=True,
        )
        direct_http = httpx.AsyncClient(base_url=llama.url, limits=limits, timeout=timeout, trust_env=False)
        ours_http = httpx.AsyncClient(base_url=service.base_url, limits=limits, timeout=timeout, trust_env=False)
        try:
            created = await ours_http.post("/assistants", json={"model": model.name, "name": "bench-llama"})
            created.raise_for_status()
            body = direct_body(model)
            run_body = {
                "assistant_id": created.json()["id"],
                "stream": True,
                "max_completion_tokens": LLAMA_MAX_COMPLETION_TOKENS,
                "temperature": 0,
            }

            async def ours(thread_id: str) -> RunResult:
                return await sse_run(ours_http, thread_id, run_body)

            # Warm-up: every slot, connection and the prompt cache, on both paths.
            for _ in range(settings.llama_warmup_rounds):
                warm_threads = await create_threads(ours_http, model.text, widest)
                await asyncio.wait_for(
                    asyncio.gather(
                        *(direct_run(direct_http, body) for _ in range(widest)),
                        *(ours(thread_id) for thread_id in warm_threads),
                    ),
                    LLAMA_REQUEST_TIMEOUT,
                )
            for concurrency in LLAMA_CONCURRENCY:
                max_requests = settings.llama_max_requests * max(1, concurrency // 4)
                threads = await create_threads(ours_http, model.text, max_requests)

                async def via_direct(_: int) -> RunResult:
                    return await direct_run(direct_http, body)

                async def via_ours(index: int, threads: list[str] = threads) -> RunResult:
                    return await ours(threads[index])

                cells = {
                    "direct": await llama_cell(
                        settings, concurrency, max_requests, via_direct, model.reply_tokens, None, llama
                    ),
                    "envoy-sse": await llama_cell(
                        settings, concurrency, max_requests, via_ours, model.reply_tokens, service, llama
                    ),
                }
                rows += llama_rows(model, concurrency, cells, raw)
        finally:
            await direct_http.aclose()
            await ours_http.aclose()
    except BaseException:
        print(f"[llama {model.name}] server log tail:\n{service.log_tail()}", file=sys.stderr)
        print(f"[llama {model.name}] llama-server log tail:\n{llama.log_tail()}", file=sys.stderr)
        raise
    finally:
        service.stop()
        llama.stop()
    return rows


async def bench_llama(settings: Settings, workdir: Path, raw: dict[str, Any]) -> list[Row]:
    """Time to first token and tokens/s through our SSE vs llama-server directly, on the tiny GGUF and SmolLM2."""
    rows: list[Row] = []
    for model in (tiny_llama_model(workdir), smollm2_llama_model()):
        rows += await bench_llama_model(settings, workdir, model, raw)
    return rows


# ----------------------------------------------------------------------------------------- table


COLUMNS = (
    ("section", "section"),
    ("path", "path"),
    ("model", "model"),
    ("c", "c"),
    ("delay_ms", "delay"),
    ("figure", "figure"),
    ("value", "value"),
    ("vs", "vs reference"),
    ("target", "target"),
    ("result", "result"),
    ("n", "n"),
    ("errors", "err"),
    ("cpu", "cpu% cli/srv/envoy"),
)


def _cell(row: Row, key: str) -> str:
    if key == "result":
        passed = row.get("passed")
        return "" if passed is None else ("PASS" if passed else "FAIL")
    if key == "delay_ms":
        return "-" if row.get("model") else f"{row['delay_ms']:g}ms"
    if key == "model":
        return str(row.get("model") or "builtin")
    return str(row.get(key, ""))


def render_table(rows: Sequence[Row]) -> str:
    cells = [[_cell(row, key) for key, _ in COLUMNS] for row in rows]
    headers = [title for _, title in COLUMNS]
    widths = [max(len(headers[i]), *(len(line[i]) for line in cells)) for i in range(len(COLUMNS))]
    separator = "  "
    lines = [separator.join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append(separator.join("-" * w for w in widths))
    previous = ""
    for row, line in zip(rows, cells, strict=True):
        if previous and row["section"] != previous:
            lines.append("")
        previous = row["section"]
        lines.append(separator.join(value.ljust(w) for value, w in zip(line, widths, strict=True)).rstrip())
    notes = [
        f"  note ({row['section']} {row['path']}{' ' + row['model'] if row.get('model') else ''} c={row['c']}): "
        + row["note"]
        for row in rows
        if row.get("note")
    ]
    return "\n".join(lines + notes)


# ----------------------------------------------------------------------------------------- main


async def bench_service(
    settings: Settings, workdir: Path, delay: float, sections: Sequence[str], raw: dict[str, Any]
) -> list[Row]:
    delay_ms = round(delay * 1000, 3)
    name = f"delay-{delay_ms:g}ms"
    database = workdir / f"{name}.sqlite3"
    # One more: the run whose events the floor server replays.
    runs_needed = 2 * len(settings.concurrency) * settings.max_runs + 1 if "throughput" in sections else 0
    ttft_needed = 2 * (settings.ttft_warmup + settings.ttft_samples) + 10 if "ttft" in sections else 0
    crud_needed = 2 * (1 + 16) + 1 if "crud" in sections else 0
    sizes = (settings.small_thread, settings.big_thread) if "list" in sections else ()
    started = time.perf_counter()
    fixture = prepare_database(
        database, ttft_threads=ttft_needed, run_threads=runs_needed, crud_threads=crud_needed, list_sizes=sizes
    )
    print(
        f"[{name}] prepared {ttft_needed + runs_needed + crud_needed + len(sizes)} threads"
        f"{f' and a {settings.big_thread:,}-message thread' if sizes else ''} in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    service = Service(name, database, delay, workdir / f"{name}.log")
    rows: list[Row] = []
    try:
        await service.start()
        print(f"[{name}] server ready: {service.base_url}  gRPC {service.grpc_target}", flush=True)
        if "ttft" in sections:
            warm = Paths(service, fixture, 1, delay)
            try:
                ttft_pool = ThreadPool(fixture.ttft_threads)
                rows += await measure_ttft(settings, warm, ttft_pool, delay_ms, raw)
                for row in rows[-3:]:
                    print(f"  ttft {row['path']:<12} {row['figure']}: {row['value']}", flush=True)
            finally:
                await warm.aclose()
        if "throughput" in sections:
            pool = ThreadPool(fixture.run_threads)
            floor = await start_floor(service, fixture, pool, delay)
            try:
                rows += await measure_throughput(settings, service, fixture, pool, floor, delay_ms, raw)
            finally:
                floor.stop()
        if "crud" in sections:
            rows += await measure_crud(settings, service, fixture, raw)
        if "list" in sections:
            rows += await measure_list(settings, service, fixture, raw)
    except BaseException:
        print(f"[{name}] server log tail:\n{service.log_tail()}", file=sys.stderr)
        raise
    finally:
        service.stop()
    return rows


async def measure_auth(settings: Settings, workdir: Path, raw: dict[str, Any]) -> list[Row]:
    """What admitting a call costs the server: the gate on a real SQLite key store, as the interceptor
    calls it for every request, with no key in the database, with a valid key (the cached path every
    call after the first takes), and with a rate-limited key."""
    database = open_database(str(workdir / "auth.sqlite3"))
    migrate(database)
    store = KeyStore(database)
    method = "/sovereign_assistant.v1.AssistantService/GetAssistant"
    samples = 200 if settings.max_runs < 100 else 5000
    rows: list[Row] = []

    async def cell(name: str, gate: Gate, metadata: dict[str, str]) -> None:
        await gate.admit(method, metadata)  # the first call of a key reads it from the database
        times = []
        for _ in range(samples):
            started = time.perf_counter()
            await gate.admit(method, metadata)
            times.append(time.perf_counter() - started)
        p50, p99 = ms(percentile(times, 50)), ms(percentile(times, 99))
        raw.setdefault("auth", []).append({"path": name, "p50_ms": p50, "p99_ms": p99, "n": samples})
        rows.append(
            {
                "section": "auth",
                "path": name,
                "c": 1,
                "delay_ms": 0,
                "figure": "admit a call p50 / p99",
                "value": f"{p50 * 1000:.1f} / {p99 * 1000:.1f} us",
                "vs": "",
                "target": f"p50 <= {AUTH_TARGET_MS} ms" if metadata else "",
                "passed": p50 <= AUTH_TARGET_MS if metadata else None,
                "n": samples,
                "errors": 0,
            }
        )

    await cell("open (no key exists)", Gate(store), {})
    _, secret = create_key(store, "bench")
    _, limited = create_key(store, "bench", rpm=10**9, tpm=10**9)
    keyed = Gate(store)
    await cell("key", keyed, {"authorization": f"Bearer {secret}"})
    await cell("key with limits", keyed, {"authorization": f"Bearer {limited}"})
    database.close()
    return rows


def section_order(row: Row) -> tuple[int, float, int, int, int]:
    sections = {name: index for index, name in enumerate(SECTIONS)}
    models = {"": 0, **{name: index + 1 for index, name in enumerate(LLAMA_MODELS)}}
    paths = {
        "engine": 0,
        "direct": 0,
        "grpc-floor": 1,
        "grpc-stream": 1,
        "grpc-direct": 1,
        "envoy-sse": 2,
        "envoy-json": 2,
        "open (no key exists)": 0,
        "key": 1,
        "key with limits": 2,
    }
    return (
        sections[row["section"]],
        float(row["delay_ms"]),
        models.get(row.get("model", ""), 9),
        int(row["c"]),
        paths.get(row["path"], 9),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = settings_from_args(args)
    raw: dict[str, Any] = {}
    rows: list[Row] = []
    began = time.perf_counter()
    first = [name for name in BUILTIN_SECTIONS if name in settings.sections]
    delayed = [name for name in ("ttft", "throughput") if name in settings.sections]
    with tempfile.TemporaryDirectory(prefix="sovereign-bench-") as directory:
        workdir = Path(directory)
        if "sdk" in settings.sections:
            rows += await bench_sdk(workdir, raw, quick=bool(args.quick))
        if first:
            rows += await bench_service(settings, workdir, 0.0, first, raw)
        if delayed:
            rows += await bench_service(settings, workdir, settings.delay, delayed, raw)
        if "auth" in settings.sections:
            rows += await measure_auth(settings, workdir, raw)
        if "files" in settings.sections:
            rows += await measure_files(settings.max_runs < 100, workdir, raw)
        if "llama" in settings.sections:
            rows += await bench_llama(settings, workdir, raw)
        if "context" in settings.sections:
            rows += await bench_context(workdir, raw, quick=bool(args.quick))
        if "responses" in settings.sections:
            rows += await bench_responses(workdir, raw, quick=bool(args.quick))
        if "scale" in settings.sections:
            rows += await bench_scale(args.quick, workdir, raw)
    rows.sort(key=section_order)
    table = render_table(rows)
    verdicts = [row["passed"] for row in rows if row.get("passed") is not None]
    summary = (
        f"{sum(verdicts)}/{len(verdicts)} targets met; {os.cpu_count()} cores shared by client, server and Envoy; "
        f"whole benchmark {time.perf_counter() - began:.0f} s{' (--quick: small counts)' if args.quick else ''}"
    )
    print()
    print("Sovereign Assistant benchmark: engine alone vs gRPC stream vs Envoy (JSON/SSE)")
    if first or delayed:
        print(
            f"  TTFT: c=1, {settings.ttft_samples} samples/path, reply '{'You said: ' + TTFT_TEXT}';"
            f" throughput: {expected_tokens(RUN_TEXT)} tokens/run, {settings.cell_seconds:g} s cells"
            f" (counted after {settings.ramp_seconds:g} s ramp), max {settings.max_runs} runs/cell\n"
            "  runs/s = tokens/s / tokens per run; cpu% = CPU of this client / server / Envoy (100 = one core)"
        )
    if "llama" in settings.sections:
        print(
            f"  llama: one llama-server per model (--parallel {LLAMA_PARALLEL} --threads {LLAMA_THREADS}), streamed"
            " directly vs through our server + Envoy SSE (openai engine); closed-loop cells of"
            f" {settings.llama_cell_seconds:g} s or {settings.llama_max_requests} requests x max(1, c/4);"
            " tokens/s = content deltas / cell wall time; cpu% = client / server / Envoy + llama-server"
        )
    if "sdk" in settings.sections:
        print(
            "  sdk: c=1, one request at a time taking turns: llama-server direct (httpx) and a run streamed with the"
            " openai SDK through Envoy (openai engine), timed to the first text delta"
        )
    if "responses" in settings.sections:
        print(
            "  responses: c=1, one request at a time taking turns: llama-server direct, a run and a response"
            " streamed through Envoy (openai engine), timed to the first text delta"
        )
    if "scale" in settings.sections:
        print(
            "  scale: sovereign serve --workers 1 and 2 on PostgreSQL, built-in engine at 0 ms, SSE through the"
            " gateway; cpu% = client / gRPC server(s) / Envoy / PostgreSQL"
        )
    print(table)
    print(summary)
    return {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
        "settings": asdict(settings),
        "quick": bool(args.quick),
        "table": rows,
        "text": table,
        "summary": summary,
        "raw": raw,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run of under a minute")
    parser.add_argument("--concurrency", help="throughput concurrencies, e.g. 1,16,64,256 (default; 1,16 with --quick)")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="the fixed engine token delay (default 20)")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="JSON output (default build/bench.json)")
    parser.add_argument("--sections", help=f"comma list of sections to run (default all: {','.join(SECTIONS)})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    document = asyncio.run(run(args))
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2, default=str) + "\n")
    print(f"written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
