"""Benchmark section `scale`: one machine's cores serving through replicas on PostgreSQL.

    .venv/bin/python tools/bench.py --sections scale [--quick]

Self-contained (its own PostgreSQL server, database fixture, services and SSE client). For
`--workers 1` and `--workers 2`, one `sovereign serve --workers N` on a fresh PostgreSQL database
(prepared in bulk: an assistant, one thread per run), with the built-in engine at zero token delay,
measured through the gateway (Envoy, SSE):

- time to first token at concurrency 1 (p50 / p99);
- runs/s and tokens/s of closed-loop workers at each concurrency (aim: 2 workers >= 1.6x the runs/s
  of 1, at the highest concurrency).

The client, the workers, Envoy and PostgreSQL share the machine's cores: each row shows the CPU each
used during the cell (100% = one core). PostgreSQL runs with `fsync=off`, as a benchmark needs no
durability; the service's own writes are those of production.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from sovereign_server.children import ChildProcess
from sovereign_server.engines.builtin import split_tokens
from sovereign_server.engines.local import free_port
from sovereign_storage import NewAssistant, Repository, TextContent, migrate, open_database, write_transaction
from sovereign_storage.database import connection_scope
from sovereign_storage.models import Message, Thread

SECTION = "scale"
TARGET_RATIO = 1.6
# ~32 words: the reply "You said: <text>" streams 34 word tokens, as the throughput section's runs.
RUN_TEXT = (
    "please repeat this fixed benchmark sentence of thirty two plain words back to me so that every run "
    "streams the same number of tokens through the gateway and the typed stream alike"
)
TTFT_TEXT = "hello benchmark"
DELTA = b"event: thread.message.delta"
COMPLETED = b"event: thread.run.completed"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ScaleSettings:
    workers: tuple[int, ...]
    concurrency: tuple[int, ...]
    cell_seconds: float
    ramp_seconds: float
    ttft_samples: int
    ttft_warmup: int
    max_runs: int


def scale_settings(quick: bool) -> ScaleSettings:
    if quick:
        return ScaleSettings((1, 2), (16,), 3.0, 0.5, 20, 3, 1500)
    return ScaleSettings((1, 2), (16, 64), 10.0, 2.0, 150, 10, 8000)


def tokens_of(text: str) -> int:
    return len(split_tokens(text))


# ----------------------------------------------------------------------------------------- PostgreSQL


class Postgres:
    """A PostgreSQL server of the benchmark's own (Debian's package), on a free loopback port."""

    USER = "sovereign"

    def __init__(self) -> None:
        versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not versions:
            raise SystemExit("bench scale: PostgreSQL is not installed (make test-postgres installs it)")
        self._bin = versions[-1].parent
        self._root = Path(tempfile.mkdtemp(prefix="sovereign-bench-postgres-"))
        self.port = free_port()

    def _as_postgres(self, command: list[str]) -> list[str]:
        # initdb refuses to run as root; the package's `postgres` user runs the server then.
        return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command

    def start(self) -> Postgres:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self._root, user.pw_uid, user.pw_gid)
        data = str(self._root / "data")
        initdb = [str(self._bin / "initdb"), "-D", data, "-A", "trust", "-U", self.USER]
        subprocess.run(self._as_postgres(initdb), check=True, capture_output=True)
        options = f"-p {self.port} -k {self._root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400"
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", data, "-o", options, "-l", str(self._root / "log"), "-w", "start"]
        subprocess.run(self._as_postgres(pg_ctl), check=True, capture_output=True)
        return self

    def create_database(self, name: str) -> str:
        createdb = [str(self._bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.USER, name]
        subprocess.run(self._as_postgres(createdb), check=True, capture_output=True)
        return f"postgresql://{self.USER}@127.0.0.1:{self.port}/{name}"

    def pids(self) -> list[int]:
        """The postmaster and its backends."""
        head = (self._root / "data" / "postmaster.pid").read_text().split()[0]
        return [int(head), *_children(int(head))]

    def stop(self) -> None:
        pg_ctl = [str(self._bin / "pg_ctl"), "-D", str(self._root / "data"), "-m", "immediate", "stop"]
        subprocess.run(self._as_postgres(pg_ctl), capture_output=True)
        shutil.rmtree(self._root, ignore_errors=True)


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _cpu(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def prepare(url: str, threads: int) -> tuple[str, list[str], list[str]]:
    """An assistant, `threads` threads for throughput runs and some for TTFT samples, in bulk."""
    db = open_database(url)
    migrate(db)
    assistant = Repository(db).create_assistant(NewAssistant(model="bench-model", name="bench"))
    now = int(time.time())
    rows: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []

    def thread(text: str) -> str:
        thread_id = "thread_" + secrets.token_hex(12)
        rows.append({"id": thread_id, "created_at": now, "tool_resources": {}, "metadata": {}})
        messages.append(
            {
                "id": "msg_" + secrets.token_hex(12),
                "thread": thread_id,
                "created_at": now,
                "status": "completed",
                "completed_at": now,
                "role": "user",
                "content": (TextContent(text),),
                "attachments": [],
                "metadata": {},
            }
        )
        return thread_id

    run_threads = [thread(RUN_TEXT) for _ in range(threads)]
    ttft_threads = [thread(TTFT_TEXT) for _ in range(400)]
    try:
        with connection_scope(db), write_transaction(db):
            for start in range(0, len(rows), 1000):
                Thread.insert_many(rows[start : start + 1000]).execute()
                Message.insert_many(messages[start : start + 1000]).execute()
    finally:
        db.close()
    return assistant.id, run_threads, ttft_threads


# ----------------------------------------------------------------------------------------- the service


class Service:
    """`sovereign serve --workers N` on free loopback ports."""

    def __init__(self, database: str, workers: int, log: Path) -> None:
        argv = [
            str(Path(sys.executable).parent / "sovereign"), "serve", "--workers", str(workers),
            "--grpc-port", "0", "--http-port", "0", "--metrics-port", "0", "--db", database,
            "--token-delay", "0", "--log-level", "warning",
        ]  # fmt: skip
        self.child = ChildProcess(argv, name=f"sovereign serve --workers {workers}", log=log)
        self.base_url = ""

    async def start(self) -> None:
        self.child.start()
        await self.child.await_ready(self._ready, 120.0, interval=0.1)

    def _ready(self) -> bool:
        found = re.search(r"JSON API \(openai SDK base_url\):\s*(\S+)", self.child.log_text())
        if found is None or "API docs" not in self.child.log_text():
            return False
        self.base_url = found.group(1)
        return True

    def pids(self) -> tuple[list[int], list[int]]:
        """(the processes serving gRPC: workers, or the one server; Envoy)."""
        pid = self.child.pid or 0
        children = _children(pid)
        envoy = [child for child in children if b"envoy" in Path(f"/proc/{child}/cmdline").read_bytes()]
        workers = [child for child in children if child not in envoy]
        return (workers or [pid]), envoy

    def stop(self) -> None:
        self.child.stop(30.0)


# ----------------------------------------------------------------------------------------- measurements


@dataclass
class Run:
    first_token: float | None = None
    tokens: int = 0
    completed: bool = False


async def sse_run(
    http: httpx.AsyncClient, assistant_id: str, thread_id: str, on_tokens: Callable[[int], None] | None = None
) -> Run:
    run = Run()
    body = {"assistant_id": assistant_id, "stream": True}
    async with http.stream("POST", f"/threads/{thread_id}/runs", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200]!r}")
        pending = b""
        async for chunk in response.aiter_raw():
            frames = (pending + chunk).split(b"\n\n")
            pending = frames.pop()
            for frame in frames:
                if frame.startswith(DELTA):
                    text = frame.split(b'"value":"', 1)[1].split(b'"', 1)[0].decode()
                    count = tokens_of(text)
                    run.tokens += count
                    if on_tokens is not None:
                        on_tokens(count)
                    if run.first_token is None:
                        run.first_token = time.perf_counter()
                elif frame.startswith(COMPLETED):
                    run.completed = True
    return run


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class Cell:
    workers: int
    concurrency: int
    runs_per_s: float
    tokens_per_s: float
    completed: int
    errors: int
    first_error: str
    cpu: dict[str, float]


async def throughput(
    settings: ScaleSettings,
    http: httpx.AsyncClient,
    service: Service,
    postgres: Postgres,
    assistant_id: str,
    threads: list[str],
    workers: int,
    concurrency: int,
) -> Cell:
    want = tokens_of("You said: " + RUN_TEXT)
    started = time.perf_counter()
    deadline = started + settings.cell_seconds
    window_start = started + settings.ramp_seconds
    counted: list[tuple[float, int]] = []
    state = {"started": 0, "completed": 0, "errors": 0}
    errors: list[str] = []
    serving, envoy = service.pids()
    cpu_before = (time.process_time(), _cpu(serving), _cpu(envoy), _cpu(postgres.pids()))
    cpu_at: list[tuple[float, float, float, float, float]] = []

    def arrived(count: int) -> None:
        counted.append((time.perf_counter(), count))

    async def worker() -> None:
        while time.perf_counter() < deadline and state["started"] < settings.max_runs and threads:
            thread_id = threads.pop()
            state["started"] += 1
            try:
                run = await sse_run(http, assistant_id, thread_id, arrived)
            except Exception as error:
                state["errors"] += 1
                errors.append(f"{type(error).__name__}: {error}"[:200])
                continue
            if run.completed and run.tokens == want:
                state["completed"] += 1
            else:
                state["errors"] += 1
                errors.append(f"run ended with {run.tokens} tokens, completed={run.completed}")
        if not cpu_at and time.perf_counter() >= deadline:
            cpu_at.append((time.perf_counter(), time.process_time(), _cpu(serving), _cpu(envoy), _cpu(postgres.pids())))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = min(deadline, time.perf_counter())
    tokens = sum(count for when, count in counted if window_start <= when < end)
    window = max(end - window_start, 1e-9)
    if not cpu_at:
        cpu_at.append((time.perf_counter(), time.process_time(), _cpu(serving), _cpu(envoy), _cpu(postgres.pids())))
    wall = cpu_at[0][0] - started
    names = ("client", "server", "envoy", "postgres")
    cpu = {name: 100 * (cpu_at[0][index + 1] - cpu_before[index]) / wall for index, name in enumerate(names)}
    return Cell(
        workers,
        concurrency,
        tokens / want / window,
        tokens / window,
        state["completed"],
        state["errors"],
        errors[0] if errors else "",
        cpu,
    )


async def ttft(
    settings: ScaleSettings, http: httpx.AsyncClient, assistant_id: str, threads: list[str]
) -> tuple[float, float, int]:
    samples: list[float] = []
    errors = 0
    for index in range(settings.ttft_warmup + settings.ttft_samples):
        started = time.perf_counter()
        run = await sse_run(http, assistant_id, threads.pop())
        if run.first_token is None or not run.completed:
            errors += 1
        elif index >= settings.ttft_warmup:
            samples.append(run.first_token - started)
    return percentile(samples, 50), percentile(samples, 99), errors


# ----------------------------------------------------------------------------------------- the section


async def bench_scale(quick: bool, workdir: Path, raw: dict[str, Any]) -> list[dict[str, Any]]:
    """The section's rows, in the benchmark table's shape."""
    settings = scale_settings(quick)
    postgres = Postgres().start()
    rows: list[dict[str, Any]] = []
    best: dict[int, float] = {}
    try:
        for workers in settings.workers:
            url = postgres.create_database(f"scale_{workers}")
            needed = len(settings.concurrency) * settings.max_runs
            assistant_id, run_threads, ttft_threads = prepare(url, needed)
            service = Service(url, workers, workdir / f"scale-{workers}.log")
            try:
                await service.start()
                print(f"[scale] --workers {workers} ready: {service.base_url}", flush=True)
                limits = httpx.Limits(max_connections=1024, max_keepalive_connections=1024)
                async with httpx.AsyncClient(
                    base_url=service.base_url, timeout=120, limits=limits, trust_env=False
                ) as http:
                    p50, p99, errors = await ttft(settings, http, assistant_id, ttft_threads)
                    raw.setdefault(SECTION, []).append({"workers": workers, "ttft_p50": p50, "ttft_p99": p99})
                    ttft_text = f"{p50 * 1000:.2f} / {p99 * 1000:.2f} ms"
                    rows.append(
                        _row(f"workers={workers}", 1, "TTFT p50 / p99", ttft_text, settings.ttft_samples, errors, "")
                    )
                    print(f"  ttft workers={workers}: {rows[-1]['value']}", flush=True)
                    for concurrency in settings.concurrency:
                        cell = await throughput(
                            settings, http, service, postgres, assistant_id, run_threads, workers, concurrency
                        )
                        raw[SECTION].append(asdict(cell))
                        best[workers] = cell.runs_per_s
                        cpu = "/".join(f"{cell.cpu[name]:.0f}" for name in ("client", "server", "envoy", "postgres"))
                        row = _row(
                            f"workers={workers}",
                            concurrency,
                            "runs/s | tokens/s",
                            f"{cell.runs_per_s:.1f} | {cell.tokens_per_s:.0f}",
                            cell.completed,
                            cell.errors,
                            cpu,
                        )
                        if cell.first_error:
                            row["note"] = cell.first_error
                        rows.append(row)
                        print(f"  workers={workers} c={concurrency}: {row['value']}  cpu {cpu}", flush=True)
            except BaseException:
                print(f"[scale] service log tail:\n{service.child.log_tail()}", file=sys.stderr)
                raise
            finally:
                service.stop()
        if 1 in best and 2 in best and best[1] > 0:
            ratio = best[2] / best[1]
            rows[-1].update(
                vs=f"{ratio:.2f}x the runs/s of 1 worker",
                target=f">= {TARGET_RATIO:g}x of 1 worker",
                passed=ratio >= TARGET_RATIO,
            )
    finally:
        postgres.stop()
    return rows


def _row(path: str, concurrency: int, figure: str, value: str, n: int, errors: int, cpu: str) -> dict[str, Any]:
    return {
        "section": SECTION,
        "path": path,
        "c": concurrency,
        "delay_ms": 0.0,
        "figure": figure,
        "value": value,
        "vs": "",
        "target": "",
        "passed": None,
        "n": n,
        "errors": errors,
        "cpu": cpu,
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as directory, contextlib.suppress(KeyboardInterrupt):
        for line in asyncio.run(bench_scale("--quick" in sys.argv, Path(directory), {})):
            print(line)
