"""The gateway's Envoy config, before anything listens: production limits by default, shorter
timeouts and TLS when asked, and what `sovereign serve` makes of its own settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovereign_server import ServerConfig
from sovereign_server.cli import build_parser, config_from_args, gateway_config
from sovereign_server.gateway import STREAM_IDLE_TIMEOUT, GatewayConfig, GatewayError, UpstreamTls, render_config
from tests.certificates import self_signed

pytestmark = pytest.mark.unit


def serve_args(*flags: str) -> list[str]:
    return ["serve", *flags]


def test_the_rendered_config_carries_production_limits_by_default(tmp_path: Path) -> None:
    rendered = render_config(GatewayConfig(grpc_port=1), tmp_path).read_text()
    for setting in (
        "request_headers_timeout: 10.000s",
        "idle_timeout: 120.000s",
        # Comfortably above the server's default SSE heartbeat (15 s).
        f"stream_idle_timeout: {STREAM_IDLE_TIMEOUT:.3f}s",
        "max_active_downstream_connections: 10000",
        "per_connection_buffer_limit_bytes: 32768",
        "max_concurrent_streams: 100",
        # Plaintext on both sides without certificates.
        "transport_socket: null",
    ):
        assert setting in rendered


def test_the_rendered_config_carries_tls_and_shorter_timeouts(tmp_path: Path) -> None:
    files = self_signed(tmp_path, "localhost")
    config = GatewayConfig(
        grpc_port=1,
        tls_cert=files.cert,
        tls_key=files.key,
        upstream_tls=UpstreamTls(files.cert, "localhost"),
        request_headers_timeout=0.25,
    )
    rendered = render_config(config, tmp_path).read_text()
    assert "request_headers_timeout: 0.250s" in rendered
    assert "DownstreamTlsContext" in rendered
    assert '"sni": "localhost"' in rendered
    assert "transport_socket: null" not in rendered


def test_a_timeout_of_zero_is_refused_rather_than_disabling_it(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="must be positive"):
        render_config(GatewayConfig(grpc_port=1, stream_idle_timeout=0), tmp_path)
    with pytest.raises(GatewayError, match="both tls_cert and tls_key"):
        render_config(GatewayConfig(grpc_port=1, tls_cert=tmp_path / "c.pem"), tmp_path)


def test_serve_keeps_the_stream_idle_timeout_well_above_the_heartbeat() -> None:
    assert gateway_config(ServerConfig(), 50051, None).stream_idle_timeout == STREAM_IDLE_TIMEOUT
    assert gateway_config(ServerConfig(stream_heartbeat=30.0), 50051, None).stream_idle_timeout == 120.0
    with pytest.raises(SystemExit, match="must be positive"):
        config_from_args(build_parser().parse_args(serve_args("--stream-heartbeat", "0")), {})
