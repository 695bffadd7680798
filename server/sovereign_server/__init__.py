"""The Sovereign Assistant gRPC server: OpenAI's Assistants API over gRPC, served as JSON by Envoy."""

from sovereign_server.app import RunningServer, start_server
from sovereign_server.config import ServerConfig

__all__ = ["RunningServer", "ServerConfig", "start_server"]
