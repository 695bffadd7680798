"""Runs: their lifecycle, their background execution, and the one stream of events every
transport renders (OpenAI's Server-Sent Events, typed gRPC events, a polled JSON run)."""

from sovereign_server.runs.events import RunEvent
from sovereign_server.runs.manager import RunManager, RunSettings

__all__ = ["RunEvent", "RunManager", "RunSettings"]
