"""OpenAI's Server-Sent Events framing of run events: `event: <name>` and `data: <json>` lines,
ending with `event: done` / `data: [DONE]` (the SDK types each event by its `event:` line); and of
response events, whose stream ends with its body."""

from __future__ import annotations

import json

from sovereign_server import convert, convert_responses
from sovereign_server.responses import ResponseEvent
from sovereign_server.runs import Event, EventName

SSE_DONE = b"event: done\ndata: [DONE]\n\n"
# A comment line: clients ignore it, proxies see traffic on a long silence.
SSE_HEARTBEAT = b": keep-alive\n\n"


def frame(event: Event, search_content: bool = False) -> bytes:
    """A run event; `search_content` adds file search results' text to its steps (`include[]`)."""
    if event.name is EventName.DONE:
        return SSE_DONE
    data = json.dumps(convert.event_json(event, search_content), separators=(",", ":"), ensure_ascii=False)
    return f"event: {event.name}\ndata: {data}\n\n".encode()


def response_frame(event: ResponseEvent, search_results: bool = False) -> bytes:
    """A response event: its `type` is its `event:` line; a response's stream has no `done` event.
    `search_results`: file searches show their results."""
    data = json.dumps(convert_responses.event_json(event, search_results), separators=(",", ":"), ensure_ascii=False)
    return f"event: {event.type}\ndata: {data}\n\n".encode()
