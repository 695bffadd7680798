"""Fixtures shared by every test layer: real servers on free ports, stopped by the tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from sovereign_client import AsyncSovereignClient
from sovereign_server import RunningServer, ServerConfig, start_server
from sovereign_server.gateway import Gateway, GatewayConfig


class ServerThread:
    """A real gRPC server running on its own event loop in a background thread, so that blocking
    callers (the synchronous client, the `openai` SDK through Envoy) never stall it."""

    def __init__(self, config: ServerConfig) -> None:
        self._config = config
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-server", daemon=True)
        self.server: RunningServer | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def start(self) -> ServerThread:
        self._thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start_server(self._config), self._loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(grace=1.0), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@pytest.fixture(scope="module")
def grpc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A real gRPC server on a free port, with its own SQLite file, for one test module."""
    database = tmp_path_factory.mktemp("grpc") / "sovereign.sqlite3"
    server = ServerThread(ServerConfig(grpc_port=0, database=str(database))).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def client(grpc_server: ServerThread) -> AsyncIterator[AsyncSovereignClient]:
    async with AsyncSovereignClient(f"127.0.0.1:{grpc_server.port}") as client:
        yield client


@pytest.fixture(scope="module")
def gateway(grpc_server: ServerThread) -> Iterator[Gateway]:
    """A real Envoy on a free port in front of this module's real gRPC server."""
    with Gateway(GatewayConfig(grpc_port=grpc_server.port, http_port=0)) as gateway:
        yield gateway
