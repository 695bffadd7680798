"""The `sovereign` command: runs the gRPC server and its JSON gateway (Envoy) together.

    sovereign serve [--grpc-port 50051] [--http-port 8080] [--db data/sovereign.sqlite3] ...

Every flag also has a `SOVEREIGN_*` environment variable; a flag wins over the variable, which
wins over the default of `ServerConfig`. The gRPC server runs in this process; Envoy runs as a child
that is stopped first on Ctrl-C / SIGTERM (so no request reaches a stopping server) and that the
kernel kills if this process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from sovereign_server.app import start_server
from sovereign_server.config import ServerConfig
from sovereign_server.gateway import Gateway, GatewayConfig, GatewayError

__all__ = ["build_parser", "config_from_args", "main", "serve"]

logger = logging.getLogger("sovereign.cli")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


@dataclass(frozen=True)
class _Option:
    flag: str
    env: str
    field: str
    help: str
    type: type[int] | type[float] | type[str] = str


_OPTIONS = (
    _Option("--grpc-host", "SOVEREIGN_GRPC_HOST", "grpc_host", "address the gRPC server binds"),
    _Option("--grpc-port", "SOVEREIGN_GRPC_PORT", "grpc_port", "gRPC port (0: pick a free one)", int),
    _Option("--http-host", "SOVEREIGN_HTTP_HOST", "http_host", "address the JSON gateway binds"),
    _Option("--http-port", "SOVEREIGN_HTTP_PORT", "http_port", "JSON gateway port (0: pick a free one)", int),
    _Option("--db", "SOVEREIGN_DB", "database", "SQLite file, or a database URL"),
    _Option("--engine", "SOVEREIGN_ENGINE", "engine", "generation engine, by name"),
    _Option("--engine-url", "SOVEREIGN_ENGINE_URL", "engine_url", "openai engine: the server's /v1 URL"),
    _Option("--engine-api-key", "SOVEREIGN_ENGINE_API_KEY", "engine_api_key", "openai engine: API key"),
    _Option("--engine-model", "SOVEREIGN_ENGINE_MODEL", "engine_model", "openai engine: model name sent upstream"),
    _Option("--engine-config", "SOVEREIGN_ENGINE_CONFIG", "engine_config", "openai engine: TOML file of backends"),
    _Option("--model-path", "SOVEREIGN_MODEL_PATH", "model_path", "local engine: a GGUF model file"),
    _Option("--token-delay", "SOVEREIGN_TOKEN_DELAY", "token_delay", "seconds between built-in engine tokens", float),
    _Option("--run-expires-in", "SOVEREIGN_RUN_EXPIRES_IN", "run_expires_in", "seconds a run may wait", int),
    _Option(
        "--stream-heartbeat", "SOVEREIGN_STREAM_HEARTBEAT", "stream_heartbeat", "seconds between SSE keep-alives", float
    ),
    _Option("--log-level", "SOVEREIGN_LOG_LEVEL", "log_level", "log level: " + ", ".join(LOG_LEVELS)),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sovereign", description="Self-hosted OpenAI Assistants API.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve_parser = commands.add_parser(
        "serve",
        help="run the gRPC server and the JSON gateway",
        description="Run the gRPC server and the JSON gateway until Ctrl-C or SIGTERM.",
    )
    defaults = ServerConfig()
    for option in _OPTIONS:
        serve_parser.add_argument(
            option.flag,
            dest=option.field,
            type=option.type,
            default=None,
            help=f"{option.help} (env {option.env}, default {getattr(defaults, option.field)})",
        )
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> ServerConfig:
    """`ServerConfig` defaults, overridden by `SOVEREIGN_*` variables, overridden by flags."""
    known = {f.name for f in fields(ServerConfig)}
    values: dict[str, Any] = {}
    for option in _OPTIONS:
        if option.field not in known:
            continue
        flag_value = getattr(args, option.field, None)
        if flag_value is not None:
            values[option.field] = flag_value
        elif environ.get(option.env):
            raw = environ[option.env]
            try:
                values[option.field] = option.type(raw)
            except ValueError:
                message = f"sovereign: {option.env}={raw!r} is not a valid {option.type.__name__}"
                raise SystemExit(message) from None
    config = replace(ServerConfig(), **values)
    if config.log_level.lower() not in LOG_LEVELS:
        raise SystemExit(f"sovereign: unknown log level {config.log_level!r}")
    return config


def _dial_host(host: str) -> str:
    """The address to connect to for a server bound to `host` (a wildcard means this machine)."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


async def serve(config: ServerConfig, *, ready: asyncio.Event | None = None) -> None:
    """Runs both until SIGINT / SIGTERM; stops Envoy first, then the server. Sets `ready` once
    both answer (tests use it)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    server = await start_server(config)
    gateway = Gateway(
        GatewayConfig(
            grpc_host=_dial_host(config.grpc_host),
            grpc_port=server.port,
            http_host=config.http_host,
            http_port=config.http_port,
            inherit_output=True,
        )
    )
    try:
        await gateway.astart()
        grpc_address = f"{_dial_host(config.grpc_host)}:{server.port}"
        print(
            "Sovereign Assistant is ready.\n"
            f"  JSON API (openai SDK base_url): {gateway.base_url}\n"
            f"  gRPC:                           {grpc_address}\n"
            f"  engine:                         {config.engine}\n"
            f"  API docs:                       {gateway.url('/docs')}",
            flush=True,
        )
        if ready is not None:
            ready.set()
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=1.0)
            if not stopping.is_set() and not gateway.running():
                raise GatewayError("Envoy exited unexpectedly")
        logger.info("shutting down")
    finally:
        # Envoy first: no new request may reach a server that is draining.
        await gateway.astop()
        await server.stop(config.shutdown_grace)
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(serve(config))
    except GatewayError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
