"""Three replicas (`sovereign server` processes) on one PostgreSQL database, behind one gateway
(Envoy with active health checks), generating with a model server that counts generations."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sovereign_client import SovereignClient
from sovereign_server.children import ChildProcess
from sovereign_server.engines.local import free_port
from sovereign_server.gateway import Gateway, GatewayConfig
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


class Cluster:
    def __init__(self, database: str, model: ModelServer, replicas: list[Replica], gateway: Gateway) -> None:
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
    gateway: Gateway | None = None
    try:
        for replica in replicas:
            replica.start()
        upstreams = tuple(("127.0.0.1", replica.port) for replica in replicas)
        gateway = Gateway(
            GatewayConfig(grpc_port=replicas[0].port, upstreams=upstreams, health_checks=True, http_port=0)
        )
        gateway.start()
        yield Cluster(database, model_server, replicas, gateway)
    finally:
        if gateway is not None:
            gateway.stop()
        for replica in replicas:
            replica.child.stop()
        postgres_server.drop_database(database)
