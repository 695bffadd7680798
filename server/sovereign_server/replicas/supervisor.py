"""`sovereign serve --workers N`: N replicas (`sovereign server` processes) and the gateway over
them, on one machine, supervised together: a worker that dies is started again on its port, and
meanwhile the gateway's health checks keep calls away from it. So all of a machine's cores serve.

On SIGINT / SIGTERM the gateway stops first (no new call reaches a worker), then the workers, each
finishing its calls and runs for the grace period. Workers die with the supervisor if it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sovereign_server.children import ChildProcess, Probe
from sovereign_server.config import ServerConfig
from sovereign_server.engines.local import free_port
from sovereign_server.gateway import Gateway, GatewayConfig, GatewayError
from sovereign_server.replicas.commands import GATEWAY_FIELDS, _stop_on_signals
from sovereign_server.tls import ServerCertificate

logger = logging.getLogger("sovereign.cli")

# Seconds a worker gets to serve after it starts.
WORKER_START_WITHIN = 60.0
# A worker that keeps dying is started again at most this often.
RESTART_INTERVAL = 1.0


def is_shared_database(target: str) -> bool:
    """Whether several processes may serve the database `target` (a PostgreSQL URL)."""
    return target.split("://", 1)[0].startswith("postgres") if "://" in target else False


def check_workers(config: ServerConfig) -> None:
    """SystemExit for a number of workers the database cannot serve."""
    if config.workers < 1:
        raise SystemExit("sovereign: --workers must be at least 1")
    if config.workers > 1 and not is_shared_database(config.database):
        raise SystemExit(
            f"sovereign: --workers {config.workers} needs a PostgreSQL database (--db postgresql://...): "
            "replicas share their runs through it, and a SQLite file has a single writer. "
            "Use --workers 1 with SQLite."
        )


def grpc_serving(address: str, tls: ServerCertificate | None = None) -> Probe:
    """A probe that passes once the gRPC server at `address` says it serves (over TLS, trusting
    its own certificate, when it has one)."""

    def channel() -> grpc.Channel:
        if tls is None:
            return grpc.insecure_channel(address)
        credentials = grpc.ssl_channel_credentials(root_certificates=tls.chain_pem)
        return grpc.secure_channel(address, credentials, (("grpc.ssl_target_name_override", tls.server_name),))

    def probe() -> bool:
        with channel() as channel_:
            try:
                stub: Any = health_pb2_grpc.HealthStub(channel_)  # untyped methods in the stubs
                answer = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
            except grpc.RpcError:
                return False
            return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    return probe


@dataclass
class Worker:
    index: int
    address: str
    child: ChildProcess
    started: float = 0.0
    restarts: int = 0


def worker_argv(config: ServerConfig, options: Sequence[tuple[str, str]], port: int, metrics_port: int) -> list[str]:
    """The command of one worker: `sovereign server` with the configuration's replica options."""
    argv = [sys.executable, "-m", "sovereign_server.cli", "server"]
    for flag, name in options:
        if name in GATEWAY_FIELDS:
            continue
        value = {"grpc_port": port, "metrics_port": metrics_port}.get(name, getattr(config, name))
        if value is not None:
            argv += [flag, str(value)]
    if config.insecure_no_auth:
        argv.append("--insecure-no-auth")
    return argv


async def serve_workers(
    config: ServerConfig,
    options: Sequence[tuple[str, str]],
    authentication: str,
    gateway_over: Callable[[tuple[tuple[str, int], ...]], GatewayConfig],
    tls: ServerCertificate | None = None,
    ready: asyncio.Event | None = None,
) -> None:
    """Runs `config.workers` replicas and the gateway over them (`gateway_over` their addresses)
    until SIGINT / SIGTERM."""
    check_workers(config)
    stopping = _stop_on_signals()
    host = config.grpc_host if config.grpc_host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    workers: list[Worker] = []
    for index in range(config.workers):
        port = config.grpc_port + index if config.grpc_port else free_port(host)
        metrics_port = config.metrics_port + index if config.metrics_port else 0
        child = ChildProcess(worker_argv(config, options, port, metrics_port), name=f"worker {index}")
        workers.append(Worker(index, f"{host}:{port}", child))
    gateway = Gateway(gateway_over(tuple((host, int(worker.address.rsplit(":", 1)[1])) for worker in workers)))
    try:
        for worker in workers:
            worker.child.start()
            worker.started = time.monotonic()
        await asyncio.gather(
            *(worker.child.await_ready(grpc_serving(worker.address, tls), WORKER_START_WITHIN) for worker in workers)
        )
        await gateway.astart()
        addresses = f"{', '.join(worker.address for worker in workers)} (one per worker)"
        print(gateway.ready_banner(addresses, config.engine, authentication), flush=True)
        if ready is not None:
            ready.set()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=0.5)
            if stopping.is_set():
                break
            if not gateway.running():
                raise GatewayError("Envoy exited unexpectedly")
            for worker in workers:
                _restart_if_dead(worker)
        logger.info("shutting down")
    finally:
        await gateway.astop()
        # A worker's own grace, and a little more for it to leave the service cleanly.
        await asyncio.gather(*(worker.child.astop(config.shutdown_grace + 5.0) for worker in workers))


def _restart_if_dead(worker: Worker) -> None:
    if worker.child.running() or time.monotonic() - worker.started < RESTART_INTERVAL:
        return
    logger.warning(
        "worker %d (%s) exited with status %s; starting it again", worker.index, worker.address, worker.child.returncode
    )
    # Its runs are ended by the others once its lease runs out; the gateway sends it calls again
    # once it passes its health check.
    worker.child.start()
    worker.started = time.monotonic()
    worker.restarts += 1
