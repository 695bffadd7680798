"""The Sovereign Assistant gRPC server: OpenAI's Assistants API over gRPC, served as JSON by Envoy.

The server's names load on first use, so that importing a layer below it (`sovereign_server.runs`,
the engines) does not import gRPC."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sovereign_server.app import RunningServer, start_server
    from sovereign_server.config import ServerConfig

__all__ = ["RunningServer", "ServerConfig", "start_server"]


def __getattr__(name: str) -> Any:
    if name in ("RunningServer", "start_server"):
        from sovereign_server import app

        return getattr(app, name)
    if name == "ServerConfig":
        from sovereign_server.config import ServerConfig

        return ServerConfig
    raise AttributeError(f"module 'sovereign_server' has no attribute {name!r}")
