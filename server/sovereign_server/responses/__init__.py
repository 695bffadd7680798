"""The Responses API on the run core: its statuses and events (`model`), what callers ask of
responses (`service`), one response's execution (`execution`, on `runs.generation`'s engine turn),
and what it sends the engine (`context`). Plain values only: the transports convert requests and
render events (`convert_responses`)."""

from sovereign_server.responses.model import (
    RESPONSES,
    ItemReference,
    ResponseEvent,
    ResponseEventType,
    ResponseOptions,
)
from sovereign_server.responses.service import ResponseManager

__all__ = [
    "RESPONSES",
    "ItemReference",
    "ResponseEvent",
    "ResponseEventType",
    "ResponseManager",
    "ResponseOptions",
]
