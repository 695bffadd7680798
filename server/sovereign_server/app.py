"""Building and running the gRPC server: services, health checking, reflection, interceptors."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Histogram

from sovereign_assistant.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    assistant_service_pb2,
    assistant_service_pb2_grpc,
    conversation_service_pb2,
    conversation_service_pb2_grpc,
    file_service_pb2,
    file_service_pb2_grpc,
    response_service_pb2,
    response_service_pb2_grpc,
    run_service_pb2,
    run_service_pb2_grpc,
    thread_service_pb2,
    thread_service_pb2_grpc,
    vector_store_service_pb2,
    vector_store_service_pb2_grpc,
)
from sovereign_server.auth import Gate, RateLimiter
from sovereign_server.caller import Caller
from sovereign_server.config import ServerConfig
from sovereign_server.engines import create_engine
from sovereign_server.files import EmbeddingsConfig, FileService, FileSettings, OpenAIEmbedder
from sovereign_server.files.response_tool import ResponseFileSearch
from sovereign_server.files.run_tool import FileSearchTool
from sovereign_server.files.service import FileImages
from sovereign_server.interceptors import CallInterceptor
from sovereign_server.metrics import Metrics
from sovereign_server.replicas import coordination_for
from sovereign_server.responses import ResponseManager
from sovereign_server.runs import RunManager, RunSettings
from sovereign_server.runs.generation import TokenTiming
from sovereign_server.runs.images import ImageFiles
from sovereign_server.servicers import (
    AdminServicer,
    AssistantServicer,
    ConversationServicer,
    ResponseServicer,
    RunServicer,
    ThreadServicer,
)
from sovereign_server.servicers.files import FileServicer
from sovereign_server.servicers.vector_stores import VectorStoreServicer
from sovereign_server.tls import ServerCertificate, TlsError, load_certificate
from sovereign_storage import (
    FileStore,
    KeyStore,
    Repository,
    ResponseRecord,
    RunRecord,
    Usage,
    migrate,
    observe_transactions,
    open_database,
)

logger = logging.getLogger("sovereign.server")

SERVICE_NAMES = (
    assistant_service_pb2.DESCRIPTOR.services_by_name["AssistantService"].full_name,
    thread_service_pb2.DESCRIPTOR.services_by_name["ThreadService"].full_name,
    run_service_pb2.DESCRIPTOR.services_by_name["RunService"].full_name,
    response_service_pb2.DESCRIPTOR.services_by_name["ResponseService"].full_name,
    conversation_service_pb2.DESCRIPTOR.services_by_name["ConversationService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
    file_service_pb2.DESCRIPTOR.services_by_name["FileService"].full_name,
    vector_store_service_pb2.DESCRIPTOR.services_by_name["VectorStoreService"].full_name,
)

# Bodies up to the gateway's limit, with room for protobuf framing.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class RunningServer:
    """A started server: its bound port, its TLS certificate (None: plaintext), and a graceful `stop`."""

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        health_servicer: health.aio.HealthServicer,
        runs: RunManager,
        responses: ResponseManager,
        background: list[asyncio.Task[None]],
        close: list[object],
        metrics_port: int,
        tls: ServerCertificate | None = None,
        files: FileService | None = None,
        repository: Repository | None = None,
    ) -> None:
        self._server = server
        self._health = health_servicer
        self._runs = runs
        self._responses = responses
        self._background = background
        self._closing = close
        self.port = port
        self.metrics_port = metrics_port
        self.tls = tls
        self.files = files
        # The storage it serves (`Repository.bind` before stopping, where other servers share the process).
        self.repository = repository

    async def stop(self, grace: float | None = 5.0) -> None:
        # Tell load balancers first, then let in-flight calls finish.
        for name in ("", *SERVICE_NAMES):
            await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        # Responses and runs first: their streams end when they do, then the server can drain its calls.
        await self._responses.stop(grace or 0.0)
        await self._runs.stop(grace or 0.0)
        if self.files is not None:
            await self.files.stop()
        for task in self._background:
            task.cancel()
        await self._server.stop(grace)
        for resource in self._closing:
            close = getattr(resource, "close", None)
            if callable(close):
                await asyncio.to_thread(close)

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()


def engine_options(config: ServerConfig) -> dict[str, Any]:
    """The options of the configured engine, from the server's configuration."""
    if config.engine == "builtin":
        return {"token_delay": config.token_delay, "context_window": config.context_window}
    if config.engine == "openai":
        options: dict[str, Any] = {
            "base_url": config.engine_url,
            "config_file": config.engine_config,
            "context_window": config.context_window,
        }
        if config.engine_api_key:
            options["api_key"] = config.engine_api_key
        if config.engine_model:
            options["model"] = config.engine_model
        return options
    if config.engine == "local":
        return {
            "model_path": config.model_path,
            "mmproj_path": config.mmproj_path,
            "context_size": config.ctx_size,
            "parallel": config.parallel,
        }
    return {}


def files_directory(config: ServerConfig) -> str:
    """Where uploaded files' bytes go: `--files-dir`, else `files/` beside a SQLite database."""
    if config.files_dir:
        return config.files_dir
    target = config.database
    if "://" in target:
        if not target.split("://", 1)[0].startswith("sqlite"):
            return str(Path("data") / "files")
        target = urlparse(target).path[1:]
    return str(Path(target).parent / "files")


def embeddings_config(config: ServerConfig) -> EmbeddingsConfig | None:
    """The embeddings backend: the `--embeddings-*` flags, else an `[embeddings]` table in the
    backends TOML (`base_url`, `model`, `api_key`); None: full-text search only."""
    settings: dict[str, Any] = {}
    if config.engine_config:
        with open(config.engine_config, "rb") as file:
            settings = dict(tomllib.load(file).get("embeddings", {}))
    if config.embeddings_url:
        settings["base_url"] = config.embeddings_url
    if config.embeddings_model:
        settings["model"] = config.embeddings_model
    if config.embeddings_api_key:
        settings["api_key"] = config.embeddings_api_key
    if not settings.get("base_url"):
        return None
    return EmbeddingsConfig(**settings)


def server_certificate(config: ServerConfig) -> ServerCertificate | None:
    """The configured certificate and key, checked; None without TLS. Raises `TlsError`."""
    if config.tls_cert is None and config.tls_key is None:
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise TlsError("TLS needs both a certificate and its private key (--tls-cert and --tls-key)")
    return load_certificate(config.tls_cert, config.tls_key)


async def start_server(config: ServerConfig) -> RunningServer:
    # Before anything starts: a wrong certificate must not leave an engine or a database behind.
    tls = await asyncio.to_thread(server_certificate, config)
    database = open_database(config.database)
    await asyncio.to_thread(migrate, database)
    repository = Repository(database)
    keys = KeyStore(database)
    coordination, limiter = coordination_for(database, repository, lease_seconds=config.replica_lease)
    gate = Gate(keys, limiter)
    metrics = Metrics()
    stop_observing = observe_transactions(
        lambda kind, seconds: metrics.transaction_seconds.labels(kind).observe(seconds)
    )
    embeddings = embeddings_config(config)
    files = FileService(
        FileStore(database),
        FileSettings(files_directory(config), config.max_upload_bytes),
        OpenAIEmbedder(embeddings) if embeddings else None,
    )
    engine = create_engine(config.engine, **engine_options(config))
    await engine.start()
    # Where `image_file` parts are read from: the stored files.
    image_files: ImageFiles = FileImages(files)
    reports = RunReports(gate.limiter, metrics)
    runs = RunManager(
        repository,
        engine,
        RunSettings(expires_in=config.run_expires_in, heartbeat=config.stream_heartbeat),
        observer=reports,
        coordination=coordination,
        tools=FileSearchTool(files, config.file_search_mode),
        image_files=image_files,
    )
    # Its start also ends what a stopped process left running: runs, and responses.
    await runs.start()
    responses = ResponseManager(
        repository,
        engine,
        heartbeat=config.stream_heartbeat,
        observer=reports,
        image_files=image_files,
        coordination=coordination,
        tools=ResponseFileSearch(files, config.file_search_mode),
    )
    await files.start()

    server = grpc.aio.server(
        interceptors=[CallInterceptor(gate, metrics)],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            # A busy port must fail loudly instead of being shared with another process.
            ("grpc.so_reuseport", 0),
        ],
    )
    assistant_service_pb2_grpc.add_AssistantServiceServicer_to_server(AssistantServicer(repository, files), server)
    thread_service_pb2_grpc.add_ThreadServiceServicer_to_server(ThreadServicer(repository, files, image_files), server)
    run_service_pb2_grpc.add_RunServiceServicer_to_server(RunServicer(repository, runs, metrics, files), server)
    response_service_pb2_grpc.add_ResponseServiceServicer_to_server(
        ResponseServicer(repository, responses, metrics), server
    )
    conversation_service_pb2_grpc.add_ConversationServiceServicer_to_server(
        ConversationServicer(repository, image_files), server
    )
    admin_service_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(keys, gate), server)
    file_service_pb2_grpc.add_FileServiceServicer_to_server(FileServicer(files), server)
    vector_store_service_pb2_grpc.add_VectorStoreServiceServicer_to_server(VectorStoreServicer(files), server)

    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )

    address = f"{config.grpc_host}:{config.grpc_port}"
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(tls.key_pem, tls.chain_pem)]))
    await server.start()
    for name in ("", *SERVICE_NAMES):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    logger.info("gRPC server listening on %s:%d%s", config.grpc_host, port, " (TLS)" if tls else "")
    metrics_port = metrics.serve(config.metrics_host, config.metrics_port)
    background = [
        asyncio.create_task(gate.record_use(), name="key-use"),
        asyncio.create_task(_checkpoints(repository), name="checkpoints"),
    ]
    closing = [metrics, _Closing(stop_observing), database]
    return RunningServer(
        server, port, health_servicer, runs, responses, background, closing, metrics_port, tls, files, repository
    )


async def _checkpoints(repository: Repository, interval: float = 1.0) -> None:
    """Moves SQLite's write-ahead log into the database file every `interval` seconds, on a thread:
    commits no longer do it (it syncs the file, and commits may be made on the event loop)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(repository.checkpoint)
        except Exception:
            logger.exception("checkpointing the database failed")


class _Closing:
    def __init__(self, close: Callable[[], None]) -> None:
        self.close = close


class _TokenHistograms:
    def __init__(self, first: Histogram, gaps: Histogram) -> None:
        self._first = first
        self._gaps = gaps

    def first_token(self, seconds: float) -> None:
        self._first.observe(seconds)

    def token_gap(self, seconds: float) -> None:
        self._gaps.observe(seconds)


class RunReports:
    """Where the run layer's reports go: the caller's token budget, and the metrics."""

    def __init__(self, limiter: RateLimiter, metrics: Metrics) -> None:
        self._limiter = limiter
        self._metrics = metrics

    def stretch_ended(self, caller: Caller, run: RunRecord, usage: Usage) -> None:
        self._limiter.spend_tokens(caller, usage.total_tokens)
        self._metrics.runs.labels(run.status).inc()
        if usage.total_tokens:
            self._metrics.tokens.labels("prompt", run.model).inc(usage.prompt_tokens)
            self._metrics.tokens.labels("completion", run.model).inc(usage.completion_tokens)

    def response_ended(self, caller: Caller, response: ResponseRecord) -> None:
        usage = response.usage or Usage()
        self._limiter.spend_tokens(caller, usage.total_tokens)
        self._metrics.responses.labels(response.status).inc()
        if usage.total_tokens:
            self._metrics.tokens.labels("prompt", response.model).inc(usage.prompt_tokens)
            self._metrics.tokens.labels("completion", response.model).inc(usage.completion_tokens)

    def token_timing(self, model: str, backend: str) -> TokenTiming:
        return _TokenHistograms(
            self._metrics.time_to_first_token.labels(model, backend),
            self._metrics.time_between_tokens.labels(model, backend),
        )

    def engine_failed(self, code: str) -> None:
        self._metrics.engine_errors.labels(code).inc()
