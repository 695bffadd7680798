"""Three replicas (`sovereign server` processes) on one PostgreSQL database, behind one gateway
(Envoy with active health checks), generating with a model server that counts generations."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sovereign_client import SovereignClient
from sovereign_server.children import ChildProcess, http_ok
from sovereign_server.engines.local import free_port
from sovereign_server.replicas.supervisor import grpc_serving
from sovereign_storage import open_database
from tests.databases import PostgresServer
from tests.replicas.model_server import ModelServer

SOVEREIGN = str(Path(sys.executable).parent / "sovereign")
# Seconds after which a silent replica counts as gone: short, so that tests of a killed one are quick.
LEASE = 2.0


class Replica:
    """One `sovereign server` process on a fixed port (so that it can be started again there)."""

    def __init__(self, name: str, database: str, model_url: str, logs: Path, *options: str) -> None:
        self.name = name
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        argv = [
            SOVEREIGN, "server", "--grpc-port", str(self.port), "--metrics-port", "0", "--db", database,
            "--engine", "openai", "--engine-url", model_url, "--engine-model", "counted",
            "--replica-lease", str(LEASE), "--log-level", "warning", *options,
        ]  # fmt: skip
        self.child = ChildProcess(argv, name=name, log=logs / f"{name}.log")

    def start(self) -> Replica:
        self.child.start()
        self.child.wait_ready(grpc_serving(self.address), 30)
        return self

    @property
    def pid(self) -> int:
        assert self.child.pid is not None
        return self.child.pid

    def client(self, **options: Any) -> SovereignClient:
        return SovereignClient(self.address, **options)


class GatewayProcess:
    """`sovereign gateway --upstream ...` on a free port, as an operator runs it."""

    def __init__(self, upstreams: list[Replica], logs: Path) -> None:
        addresses = ",".join(replica.address for replica in upstreams)
        argv = [SOVEREIGN, "gateway", "--upstream", addresses, "--http-port", "0", "--log-level", "warning"]
        self.child = ChildProcess(argv, name="gateway", log=logs / "gateway.log")
        self.base_url = ""

    def start(self) -> GatewayProcess:
        self.child.start()
        self.child.wait_ready(self._ready, 30)
        # Ready once Envoy listens; the first health checks pass a moment later.
        self.child.wait_ready(http_ok(self.url("/health")), 30)
        return self

    def _ready(self) -> bool:
        found = re.search(r"base_url\):\s*(http://\S+)", self.child.log_text())
        if found is not None:
            self.base_url = found.group(1)
        return found is not None

    def url(self, path: str) -> str:
        return self.base_url.removesuffix("/v1") + path


class Cluster:
    def __init__(self, database: str, model: ModelServer, replicas: list[Replica], gateway: GatewayProcess) -> None:
        self.database = database
        self.model = model
        self.replicas = replicas
        self.gateway = gateway

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        db = open_database(self.database)
        try:
            return list(db.execute_sql(query, params).fetchall())  # type: ignore[no-untyped-call]
        finally:
            db.close()

    def executed_by(self, run_id: str) -> Replica:
        """The replica that claimed the run's latest stretch."""
        rows = self.sql(
            "SELECT r.pid FROM run_claims c JOIN replicas r ON r.id = c.replica_id WHERE c.run_id = %s", run_id
        )
        assert rows, f"no live replica claimed {run_id}"
        return next(replica for replica in self.replicas if replica.pid == rows[0][0])

    def others(self, replica: Replica) -> list[Replica]:
        return [other for other in self.replicas if other is not replica]


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    server = ModelServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(
    postgres_server: PostgresServer, model_server: ModelServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    database = postgres_server.create_database()
    logs = tmp_path_factory.mktemp("replicas")
    replicas = [Replica(name, database, model_server.base_url, logs) for name in ("a", "b", "c")]
    gateway = GatewayProcess(replicas, logs)
    try:
        for replica in replicas:
            replica.start()
        gateway.start()
        yield Cluster(database, model_server, replicas, gateway)
    finally:
        gateway.child.stop()
        for replica in replicas:
            replica.child.stop()
        postgres_server.drop_database(database)
