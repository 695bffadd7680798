"""Runs: their states and events (`model`), what callers ask of them (`service`), one stretch of
execution (`execution`, on the API-neutral engine turn of `generation`), and what runs beside
(`background`). Plain values only: the transports convert requests and render events."""

from sovereign_server.runs.channel import EventChannel
from sovereign_server.runs.model import DONE, Event, EventName, NewThread, RunObserver, RunOptions, ToolOutput
from sovereign_server.runs.service import RunManager, RunSettings

__all__ = [
    "DONE",
    "Event",
    "EventChannel",
    "EventName",
    "NewThread",
    "RunManager",
    "RunObserver",
    "RunOptions",
    "RunSettings",
    "ToolOutput",
]
