"""A scripted OpenAI-compatible model server for end-to-end tests: it streams one fixed reply to
every chat-completions request, reports a fixed usage, and keeps each request's JSON body, so that
a test can assert exactly what reached the model server. It runs in a thread of its own, beside
servers that blocking clients (the `openai` SDK) call. Any other path answers 404, as a server
with no tokenizer or model listing would: the engine then estimates."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class ChatServer:
    def __init__(self, reply: str = "Looks bullish.", usage: tuple[int, int] | None = None) -> None:
        self.reply = reply
        self.usage = usage
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                server.requests.append(json.loads(body))
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(server.stream())

            def do_GET(self) -> None:
                self.send_error(404)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, name="chat-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def stream(self) -> bytes:
        chunks: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"content": self.reply}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        if self.usage is not None:
            prompt, completion = self.usage
            usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
            chunks.append({"choices": [], "usage": usage})
        frames = [
            b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "m", **chunk}).encode()
            for chunk in chunks
        ]
        return b"\n\n".join([*frames, b"data: [DONE]"]) + b"\n\n"

    def __enter__(self) -> ChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(timeout=10)
