"""The service's Prometheus metrics, in a registry of its own (several servers may share a process
in tests), served as the text exposition format on their own loopback port.

Envoy keeps its own statistics; its admin endpoint serves them in the same format at
`/stats/prometheus` (the ready banner says where)."""

from __future__ import annotations

import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds: from sub-millisecond calls to minute-long streams.
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.calls = Counter(
            "sovereign_calls", "Calls by gRPC method and status code.", ["method", "code"], registry=registry
        )
        self.call_seconds = Histogram(
            "sovereign_call_duration_seconds",
            "Time to serve a call (a stream: until it ends).",
            ["method"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.runs = Counter(
            "sovereign_runs",
            "Stretches of run execution, by the status they left the run in.",
            ["status"],
            registry=registry,
        )
        self.responses = Counter(
            "sovereign_responses",
            "Responses of the Responses API, by the status they ended in.",
            ["status"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "sovereign_time_to_first_token_seconds",
            "From asking the engine to its first token.",
            ["model", "backend"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.time_between_tokens = Histogram(
            "sovereign_time_between_tokens_seconds",
            "Between consecutive tokens of one reply.",
            ["model", "backend"],
            buckets=_TOKEN_GAP_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "sovereign_tokens",
            "Tokens of runs and responses, by kind (prompt or completion).",
            ["kind", "model"],
            registry=registry,
        )
        self.engine_errors = Counter(
            "sovereign_engine_errors", "Generations that failed, by OpenAI's error code.", ["code"], registry=registry
        )
        self.rate_limited = Counter(
            "sovereign_rate_limited", "Calls refused for a key over its limit, by limit.", ["limit"], registry=registry
        )
        self.active_streams = Gauge(
            "sovereign_active_streams",
            "Run and response event streams open now, by transport.",
            ["transport"],
            registry=registry,
        )
        self.transaction_seconds = Histogram(
            "sovereign_db_transaction_seconds",
            "Database transactions, by kind (read or write).",
            ["kind"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def observe_transaction(self, kind: str, seconds: float) -> None:
        self.transaction_seconds.labels(kind).observe(seconds)

    def serve(self, host: str, port: int) -> int:
        """Serves `/metrics` on host:port (0: a free port); returns the port."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
