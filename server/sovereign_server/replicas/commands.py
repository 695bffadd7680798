"""`sovereign server` (one replica: gRPC only) and `sovereign gateway` (Envoy over replicas).

    sovereign server --db postgresql://... [--grpc-host H] [--grpc-port P] ...
    sovereign gateway --upstream HOST:PORT[,HOST:PORT...] [--http-host H] [--http-port P]

Several machines run `sovereign server` each, on one PostgreSQL database, and one (or more)
`sovereign gateway` in front of them; `sovereign serve --workers N` does both on one machine
(`supervisor`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable

from sovereign_server.config import ServerConfig
from sovereign_server.gateway import Gateway, GatewayConfig, GatewayError

logger = logging.getLogger("sovereign.cli")

# `serve` options that concern the gateway or the supervisor, not a replica.
GATEWAY_FIELDS = frozenset({"http_host", "http_port", "gateway_admin_port", "workers"})
# The options of `sovereign gateway` alone: with a certificate, it serves HTTPS and reaches the
# replicas over TLS (they serve the same certificate).
GATEWAY_OPTIONS = frozenset(
    {"http_host", "http_port", "gateway_admin_port", "log_level", "tls_cert", "tls_key", "stream_heartbeat"}
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], add_options: AddOptions) -> None:
    server = commands.add_parser(
        "server",
        help="run one replica: the gRPC server alone (several share a PostgreSQL database)",
        description="Run one replica of the service, gRPC only (health, reflection, every service), until "
        "Ctrl-C or SIGTERM. Replicas on one PostgreSQL database share their runs; put "
        "`sovereign gateway` in front of them.",
    )
    add_options(server, GATEWAY_FIELDS)
    gateway = commands.add_parser(
        "gateway",
        help="run the JSON gateway (Envoy) over replicas",
        description="Run the JSON gateway over one or more replicas (`sovereign server`), with active gRPC "
        "health checks: calls are spread over the replicas that pass them.",
    )
    gateway.add_argument(
        "--upstream",
        required=True,
        action="append",
        metavar="HOST:PORT[,HOST:PORT...]",
        help="the replicas' gRPC addresses (repeatable, or comma-separated)",
    )
    add_options(gateway, frozenset(ServerConfig.__dataclass_fields__) - GATEWAY_OPTIONS)


# Adds the `ServerConfig` options to a parser, but those whose field is in the set.
AddOptions = Callable[[argparse.ArgumentParser, frozenset[str]], None]


def parse_upstreams(values: list[str]) -> tuple[tuple[str, int], ...]:
    upstreams: list[tuple[str, int]] = []
    for value in values:
        for item in value.split(","):
            host, _, port = item.strip().rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SystemExit(f"sovereign gateway: --upstream takes HOST:PORT, got {item.strip()!r}")
            upstreams.append((host.strip("[]"), int(port)))
    return tuple(upstreams)


async def run_server(config: ServerConfig) -> None:
    """One replica until SIGINT / SIGTERM."""
    from sovereign_server.app import start_server

    stopping = _stop_on_signals()
    server = await start_server(config)
    try:
        print(f"Sovereign Assistant replica serving gRPC on {config.grpc_host}:{server.port}", flush=True)
        await stopping.wait()
        logger.info("shutting down")
    finally:
        await server.stop(config.shutdown_grace)


async def run_gateway(config: GatewayConfig) -> None:
    """Envoy over `config.upstreams` until SIGINT / SIGTERM."""
    stopping = _stop_on_signals()
    gateway = Gateway(config)
    upstreams = config.endpoints
    # Ready once Envoy listens: the replicas behind it may start later, or come and go.
    await gateway.astart(wait_for_upstream=False)
    try:
        print(
            "Sovereign Assistant gateway is ready.\n"
            f"  JSON API (openai SDK base_url): {gateway.base_url}\n"
            f"  replicas:                       {', '.join(f'{host}:{port}' for host, port in upstreams)}\n"
            f"  gateway statistics:             {gateway.admin_url('/stats/prometheus')}",
            flush=True,
        )
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            if not stopping.is_set() and not gateway.running():
                raise GatewayError("Envoy exited unexpectedly")
    finally:
        await gateway.astop()


def _stop_on_signals() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    return stopping
