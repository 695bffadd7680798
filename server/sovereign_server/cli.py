"""The `sovereign` command: runs the gRPC server and its JSON gateway (Envoy) together, and
manages API keys.

    sovereign serve [--grpc-port 50051] [--http-port 8080] [--db data/sovereign.sqlite3] [--tls-cert C --tls-key K] ...
    sovereign serve --workers N --db postgresql://...    (N replicas and the gateway, supervised)
    sovereign server --db postgresql://... [--grpc-port P]  (one replica, gRPC only)
    sovereign gateway --upstream HOST:PORT[,HOST:PORT...]   (the gateway over replicas)
    sovereign keys create --project NAME [--name LABEL] [--rpm N] [--tpm N] [--admin]
    sovereign keys list
    sovereign keys revoke KEY_ID

Every flag also has a `SOVEREIGN_*` environment variable; a flag wins over the variable, which
wins over the default of `ServerConfig`. The gRPC server runs in this process; Envoy runs as a child
that is stopped first on Ctrl-C / SIGTERM (so no request reaches a stopping server) and that the
kernel kills if this process dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

import uvloop

from sovereign_server.app import server_certificate, start_server
from sovereign_server.auth.admin import create_key
from sovereign_server.config import ServerConfig
from sovereign_server.errors import ApiError
from sovereign_server.gateway import STREAM_IDLE_TIMEOUT, Gateway, GatewayConfig, GatewayError, UpstreamTls
from sovereign_server.replicas import commands as replicas
from sovereign_server.replicas.supervisor import check_workers, serve_workers
from sovereign_server.tls import ServerCertificate, TlsError
from sovereign_storage import ApiKeyRecord, KeyStore, StorageError, migrate, open_database

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
    _Option(
        "--tls-cert",
        "SOVEREIGN_TLS_CERT",
        "tls_cert",
        "PEM certificate chain: both ports then serve TLS only (with --tls-key)",
    ),
    _Option("--tls-key", "SOVEREIGN_TLS_KEY", "tls_key", "PEM private key of --tls-cert"),
    _Option("--db", "SOVEREIGN_DB", "database", "SQLite file, or a database URL"),
    _Option("--engine", "SOVEREIGN_ENGINE", "engine", "generation engine, by name"),
    _Option("--engine-url", "SOVEREIGN_ENGINE_URL", "engine_url", "openai engine: the server's /v1 URL"),
    _Option("--engine-api-key", "SOVEREIGN_ENGINE_API_KEY", "engine_api_key", "openai engine: API key"),
    _Option("--engine-model", "SOVEREIGN_ENGINE_MODEL", "engine_model", "openai engine: model name sent upstream"),
    _Option("--engine-config", "SOVEREIGN_ENGINE_CONFIG", "engine_config", "openai engine: TOML file of backends"),
    _Option("--model-path", "SOVEREIGN_MODEL_PATH", "model_path", "local engine: a GGUF model file"),
    _Option(
        "--mmproj-path",
        "SOVEREIGN_MMPROJ_PATH",
        "mmproj_path",
        "local engine: the multimodal projector (GGUF) of a vision model, which then sees images",
    ),
    _Option("--ctx-size", "SOVEREIGN_CTX_SIZE", "ctx_size", "local engine: context tokens, shared by all slots", int),
    _Option("--parallel", "SOVEREIGN_PARALLEL", "parallel", "local engine: slots (requests served at once)", int),
    _Option(
        "--context-window",
        "SOVEREIGN_CONTEXT_WINDOW",
        "context_window",
        "tokens one request may hold, prompt and reply (openai engine: else asked from the server)",
        int,
    ),
    _Option("--token-delay", "SOVEREIGN_TOKEN_DELAY", "token_delay", "seconds between built-in engine tokens", float),
    _Option("--run-expires-in", "SOVEREIGN_RUN_EXPIRES_IN", "run_expires_in", "seconds a run may wait", int),
    _Option(
        "--stream-heartbeat", "SOVEREIGN_STREAM_HEARTBEAT", "stream_heartbeat", "seconds between SSE keep-alives", float
    ),
    _Option("--metrics-host", "SOVEREIGN_METRICS_HOST", "metrics_host", "address the Prometheus metrics bind"),
    _Option("--metrics-port", "SOVEREIGN_METRICS_PORT", "metrics_port", "Prometheus metrics port (0: pick one)", int),
    _Option(
        "--gateway-admin-port",
        "SOVEREIGN_GATEWAY_ADMIN_PORT",
        "gateway_admin_port",
        "Envoy's loopback admin port, with its statistics at /stats/prometheus (0: pick one)",
        int,
    ),
    _Option("--files-dir", "SOVEREIGN_FILES_DIR", "files_dir", "directory of uploaded files' bytes"),
    _Option("--max-upload-bytes", "SOVEREIGN_MAX_UPLOAD_BYTES", "max_upload_bytes", "largest file upload", int),
    _Option(
        "--embeddings-url", "SOVEREIGN_EMBEDDINGS_URL", "embeddings_url", "OpenAI-compatible /v1 URL for embeddings"
    ),
    _Option("--embeddings-model", "SOVEREIGN_EMBEDDINGS_MODEL", "embeddings_model", "embeddings model name"),
    _Option("--embeddings-api-key", "SOVEREIGN_EMBEDDINGS_API_KEY", "embeddings_api_key", "embeddings API key"),
    _Option(
        "--file-search-mode",
        "SOVEREIGN_FILE_SEARCH_MODE",
        "file_search_mode",
        "file_search in runs: 'tools' (the model calls it) or 'prefetch' (search the latest user message first)",
    ),
    _Option("--log-level", "SOVEREIGN_LOG_LEVEL", "log_level", "log level: " + ", ".join(LOG_LEVELS)),
    _Option(
        "--workers",
        "SOVEREIGN_WORKERS",
        "workers",
        "replicas to run on this machine behind the gateway, supervised (above 1: PostgreSQL only)",
        int,
    ),
    _Option(
        "--replica-lease",
        "SOVEREIGN_REPLICA_LEASE",
        "replica_lease",
        "PostgreSQL: seconds after which a silent replica counts as gone and its runs are ended",
        float,
    ),
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
    _add_options(serve_parser, frozenset())
    replicas.add_commands(commands, _add_options)
    _add_keys_commands(commands, defaults)
    return parser


def _add_options(parser: argparse.ArgumentParser, skip: frozenset[str]) -> None:
    """The `ServerConfig` options, but those of the fields in `skip`."""
    defaults = ServerConfig()
    for option in _OPTIONS:
        if option.field in skip:
            continue
        parser.add_argument(
            option.flag,
            dest=option.field,
            type=option.type,
            default=None,
            help=f"{option.help} (env {option.env}, default {getattr(defaults, option.field)})",
        )
    if "insecure_no_auth" not in skip:
        parser.add_argument(
            "--insecure-no-auth",
            dest="insecure_no_auth",
            action="store_true",
            default=None,
            help="serve beyond loopback although no API key exists: anyone who can connect sees everything",
        )


def _add_keys_commands(commands: Any, defaults: ServerConfig) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke API keys", description="Manage API keys.")
    # Every action takes the database, after its own name, as `serve` does.
    database = argparse.ArgumentParser(add_help=False)
    database.add_argument(
        "--db", default=None, help=f"SQLite file, or a database URL (env SOVEREIGN_DB, default {defaults.database})"
    )
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        parents=[database],
        help="create a key; its secret is printed once, on the last line",
        description="Create an API key.",
    )
    create.add_argument(
        "--project", default=None, help="the key's project, created on first use (default for --admin: default)"
    )
    create.add_argument("--name", default=None, help="a label for people")
    create.add_argument("--rpm", type=int, default=None, help="requests per minute (default: unlimited)")
    create.add_argument("--tpm", type=int, default=None, help="tokens per minute (default: unlimited)")
    create.add_argument("--admin", action="store_true", help="an admin key may also manage keys (AdminService)")
    actions.add_parser("list", parents=[database], help="list keys (never their secrets)", description="List API keys.")
    revoke = actions.add_parser("revoke", parents=[database], help="revoke a key", description="Revoke an API key.")
    revoke.add_argument("key_id", metavar="KEY_ID")


def run_keys_command(args: argparse.Namespace, environ: Mapping[str, str] = os.environ) -> int:
    target = args.db or environ.get("SOVEREIGN_DB") or ServerConfig().database
    database = open_database(target)
    migrate(database)
    keys = KeyStore(database)
    try:
        if args.keys_command == "create":
            project = args.project or ("default" if args.admin else None)
            if project is None:
                raise SystemExit("sovereign keys create: --project is required (or --admin for an admin key)")
            record, secret = create_key(keys, project, name=args.name, admin=args.admin, rpm=args.rpm, tpm=args.tpm)
            print(_key_line(record))
            print("The secret follows; it is shown this once and cannot be recovered:")
            print(secret)
        elif args.keys_command == "list":
            for record in keys.list_keys():
                print(_key_line(record))
        else:
            print(_key_line(keys.revoke_key(args.key_id)))
    except (ApiError, StorageError) as error:
        raise SystemExit(f"sovereign keys {args.keys_command}: {error}") from None
    finally:
        database.close()
    return 0


def _key_line(key: ApiKeyRecord) -> str:
    def when(seconds: int | None) -> str:
        return "-" if seconds is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    limits = f"rpm={key.rpm or '-'} tpm={key.tpm or '-'}"
    status = f"revoked {when(key.revoked_at)}" if key.revoked_at else "active"
    role = " admin" if key.admin else ""
    return (
        f"{key.id}  project={key.project_name} ({key.project_id})  name={key.name or '-'}  prefix={key.prefix}...  "
        f"{limits}{role}  created {when(key.created_at)}  last used {when(key.last_used_at)}  {status}"
    )


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
    if getattr(args, "insecure_no_auth", None):
        values["insecure_no_auth"] = True
    config = replace(ServerConfig(), **values)
    if config.log_level.lower() not in LOG_LEVELS:
        raise SystemExit(f"sovereign: unknown log level {config.log_level!r}")
    if (config.tls_cert is None) != (config.tls_key is None):
        raise SystemExit("sovereign: TLS needs both --tls-cert and --tls-key (SOVEREIGN_TLS_CERT, SOVEREIGN_TLS_KEY)")
    if config.file_search_mode not in ("tools", "prefetch"):
        raise SystemExit("sovereign: --file-search-mode must be 'tools' or 'prefetch'")
    if config.max_upload_bytes < 1:
        raise SystemExit("sovereign: --max-upload-bytes must be positive")
    if config.stream_heartbeat <= 0:
        raise SystemExit("sovereign: --stream-heartbeat must be positive")
    return config


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authentication_status(config: ServerConfig) -> str:
    """How the service will authenticate calls; SystemExit if it would expose an open service."""
    database = open_database(config.database)
    try:
        migrate(database)
        has_keys = KeyStore(database).has_keys()
    finally:
        database.close()
    if has_keys:
        return "API keys required"
    exposed = [host for host in (config.http_host, config.grpc_host) if not is_loopback(host)]
    if not exposed:
        return "none: no API key exists yet, so only this machine may connect (sovereign keys create --project NAME)"
    if config.insecure_no_auth:
        return (
            f"NONE, and listening on {', '.join(exposed)} (--insecure-no-auth): anyone who can connect sees everything"
        )
    raise SystemExit(
        f"sovereign: refusing to listen on {', '.join(exposed)} with no API key: anyone who can connect would "
        "read and write every thread. Create a key first (sovereign keys create --project NAME), "
        "or pass --insecure-no-auth to serve without authentication anyway."
    )


def gateway_config(config: ServerConfig, grpc_port: int, tls: ServerCertificate | None) -> GatewayConfig:
    """The gateway in front of the gRPC server on `grpc_port`: over TLS to it, and HTTPS to
    clients, when the server has a certificate."""
    return GatewayConfig(
        grpc_host=_dial_host(config.grpc_host),
        grpc_port=grpc_port,
        http_host=config.http_host,
        http_port=config.http_port,
        admin_port=config.gateway_admin_port,
        tls_cert=tls.cert_file if tls else None,
        tls_key=tls.key_file if tls else None,
        # Envoy trusts exactly the server's own certificate (or chain), under the name it was issued for.
        upstream_tls=UpstreamTls(tls.cert_file, tls.server_name) if tls else None,
        # Live event streams send a keep-alive every `stream_heartbeat` seconds: never cut them.
        stream_idle_timeout=max(STREAM_IDLE_TIMEOUT, 4 * config.stream_heartbeat),
        inherit_output=True,
    )


def replicas_gateway(config: ServerConfig) -> Callable[[tuple[tuple[str, int], ...]], GatewayConfig]:
    """The gateway over replicas at the given addresses, checking their health: as `serve`'s
    gateway, with the same certificate for HTTPS and for reaching the replicas over TLS."""
    tls = server_certificate(config)

    def over(upstreams: tuple[tuple[str, int], ...]) -> GatewayConfig:
        return replace(gateway_config(config, upstreams[0][1], tls), upstreams=upstreams, health_checks=True)

    return over


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
    authentication = await asyncio.to_thread(authentication_status, config)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    server = await start_server(config)
    gateway = Gateway(gateway_config(config, server.port, server.tls))
    try:
        await gateway.astart()
        grpc_address = f"{_dial_host(config.grpc_host)}:{server.port}"
        if server.tls:
            grpc_address += f" (TLS, certificate for {', '.join((*server.tls.dns_names, *server.tls.ip_addresses))})"
        metrics = f"http://{_dial_host(config.metrics_host)}:{server.metrics_port}/metrics"
        print(gateway.ready_banner(grpc_address, config.engine, authentication, metrics), flush=True)
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


T = TypeVar("T")


def _run(main: Coroutine[Any, Any, T]) -> T:
    """Runs the service on uvloop's event loop: a run's events and tokens cost about a fifth less
    CPU on it than on asyncio's own (gRPC completions, timers and thread hand-offs are its work)."""
    return uvloop.run(main)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        return run_keys_command(args)
    config = config_from_args(args)
    if args.command == "serve":
        check_workers(config)
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "server":
            authentication_status(config)  # refuses an open service beyond loopback
            _run(replicas.run_server(config))
        elif args.command == "gateway":
            upstreams = replicas.parse_upstreams(args.upstream)
            _run(replicas.run_gateway(replicas_gateway(config)(upstreams)))
        elif config.workers > 1:
            options = [(option.flag, option.field) for option in _OPTIONS]
            tls = server_certificate(config)
            _run(serve_workers(config, options, authentication_status(config), replicas_gateway(config), tls))
        else:
            _run(serve(config))
    except (GatewayError, TlsError) as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
