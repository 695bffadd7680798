"""Fixtures shared by every test layer: real servers on free ports, stopped by the tests.

Their databases are SQLite files; with `--postgres` (`make test-postgres`) every test that uses
storage runs on PostgreSQL instead, one fresh database per module (per test for the storage unit
tests) on a server the session starts. Tests of SQLite itself are marked `sqlite_only`.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sovereign_client import AsyncSovereignClient
from sovereign_server import RunningServer, ServerConfig, start_server
from sovereign_server.auth.admin import create_key
from sovereign_server.gateway import Gateway, GatewayConfig
from sovereign_storage import ApiKeyRecord, KeyStore, migrate, open_database
from tests.certificates import CertificateFiles, self_signed
from tests.databases import Databases, PostgresServer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--postgres",
        action="store_true",
        default=False,
        help="keep every test's data on a PostgreSQL server started for the session (make test-postgres)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--postgres"):
        skip = pytest.mark.skip(reason="a test of SQLite itself")
        for item in items:
            if "sqlite_only" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this session's own, on a free loopback port."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Databases:
    """Where tests make their databases: SQLite files, or with `--postgres` PostgreSQL databases."""
    postgres: PostgresServer | None = None
    if request.config.getoption("--postgres"):
        postgres = request.getfixturevalue("postgres_server")
    return Databases(tmp_path_factory.mktemp("databases"), postgres)


@pytest.fixture
def database(databases: Databases) -> Iterator[str]:
    """A fresh database for one test: a SQLite file path, or a PostgreSQL URL."""
    target = databases.new()
    yield target
    databases.drop(target)


def reply_events(deltas: int = 1, *, done: bool = True) -> list[str]:
    """OpenAI's event order for a run that answers with text in `deltas` text deltas."""
    return [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        *["thread.message.delta"] * deltas,
        "thread.message.completed",
        "thread.run.step.completed",
        "thread.run.completed",
        *(["done"] if done else []),
    ]


def merged_deltas(names: Sequence[str]) -> list[str]:
    """Event names with each run of text deltas as one: a stream joins the deltas that queued up
    while its client was behind, so how many arrive depends on timing; their order and text do not."""
    return [
        name for index, name in enumerate(names) if not (name == "thread.message.delta" == names[index - 1] and index)
    ]


class ServerThread:
    """A real gRPC server running on its own event loop in a background thread, so that blocking
    callers (the synchronous client, the `openai` SDK through Envoy) never stall it."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-server", daemon=True)
        self.server: RunningServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def config(self) -> ServerConfig:
        return self._config

    def start(self) -> ServerThread:
        self._thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start_server(self._config), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self.server is not None:
            if self.server.repository is not None:
                # What it ends as it stops is ended in its own database, whichever another server bound.
                self.server.repository.bind()
            asyncio.run_coroutine_threadsafe(self.server.stop(grace=1.0), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


def child_pids(pid: int) -> set[int]:
    """The pids of `pid`'s children."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(child) for child in (task / "children").read_text().split()}
    return children


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


class ServiceProcess:
    """`sovereign serve` as users run it, in a child process on free ports."""

    def __init__(self, database: str | Path, *options: str) -> None:
        command = [str(Path(sys.executable).parent / "sovereign"), "serve", "--grpc-port", "0", "--http-port", "0"]
        command += ["--metrics-port", "0"]
        self.process = subprocess.Popen(
            [*command, "--db", str(database), "--log-level", "warning", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        printed = []
        for line in self.process.stdout:
            printed.append(line)
            if line.strip().startswith("API docs"):
                break
        text = "".join(printed)
        self.banner = text
        base_url = re.search(r"(https?://127\.0\.0\.1:\d+/v1)", text)
        grpc_address = re.search(r"gRPC:\s+(127\.0\.0\.1:\d+)", text)
        if base_url is None or grpc_address is None:
            self.stop()
            raise RuntimeError(f"sovereign serve did not start: {text!r}")
        self.base_url = base_url.group(1)
        self.grpc_address = grpc_address.group(1)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class Keys:
    """Keys made in a database before its server starts: two projects, an admin, a revoked key,
    and rate-limited ones. Attributes are the secrets; `records` holds what is stored."""

    def __init__(self, database: str | Path) -> None:
        db = open_database(str(database))
        migrate(db)
        store = KeyStore(db)
        self.records: dict[str, ApiKeyRecord] = {}

        def make(label: str, project: str, **options: Any) -> str:
            self.records[label], secret = create_key(store, project, **options)
            return secret

        self.alpha = make("alpha", "alpha", name="alpha app")
        self.beta = make("beta", "beta")
        self.admin = make("admin", "ops", admin=True)
        self.revoked = make("revoked", "alpha")
        store.revoke_key(self.records["revoked"].id)
        # One request a second, and a token budget smaller than one built-in reply.
        self.limited = make("limited", "limited", rpm=60)
        self.thrifty = make("thrifty", "limited", tpm=5)
        db.close()


def start_keyed_server(databases: Databases, **options: Any) -> tuple[ServerThread, Keys, str]:
    """A real gRPC server (with `ServerConfig` `options`) whose database holds keys; the database too."""
    database = databases.new()
    keys = Keys(database)
    server = ServerThread(ServerConfig(grpc_port=0, metrics_port=0, database=database, **options)).start()
    return server, keys, database


@pytest.fixture(scope="module")
def keyed_server(databases: Databases) -> Iterator[tuple[ServerThread, Keys]]:
    """A real gRPC server whose database holds keys: every call needs one."""
    server, keys, database = start_keyed_server(databases)
    yield server, keys
    server.stop()
    databases.drop(database)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> CertificateFiles:
    """A self-signed certificate for localhost and 127.0.0.1, made for this test session."""
    return self_signed(tmp_path_factory.mktemp("tls"), "localhost", "127.0.0.1")


@pytest.fixture(scope="module")
def tls_server(databases: Databases, certificate: CertificateFiles) -> Iterator[tuple[ServerThread, Keys]]:
    """A real gRPC server that serves TLS only, with `certificate`, and whose database holds keys."""
    server, keys, database = start_keyed_server(databases, tls_cert=str(certificate.cert), tls_key=str(certificate.key))
    yield server, keys
    server.stop()
    databases.drop(database)


@pytest.fixture(scope="module")
def server_options() -> dict[str, Any]:
    """`ServerConfig` fields a test module sets for its server (override the fixture in the module)."""
    return {}


@pytest.fixture(scope="module")
def grpc_server(databases: Databases, server_options: dict[str, Any]) -> Iterator[ServerThread]:
    """A real gRPC server on a free port, with its own database, for one test module."""
    database = databases.new()
    server = ServerThread(ServerConfig(grpc_port=0, metrics_port=0, database=database, **server_options)).start()
    yield server
    server.stop()
    databases.drop(database)


@pytest.fixture(scope="module")
async def client(grpc_server: ServerThread) -> AsyncIterator[AsyncSovereignClient]:
    async with AsyncSovereignClient(f"127.0.0.1:{grpc_server.port}") as client:
        yield client


@pytest.fixture(scope="module")
def gateway(grpc_server: ServerThread) -> Iterator[Gateway]:
    """A real Envoy on a free port in front of this module's real gRPC server."""
    with Gateway(GatewayConfig(grpc_port=grpc_server.port, http_port=0)) as gateway:
        yield gateway
