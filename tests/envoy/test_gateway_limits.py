"""The gateway's limits for an exposed listener, through a real Envoy (with its timeouts shortened)
in front of real servers: slow headers, slow bodies, idle connections and silent streams are cut;
live event streams, which carry heartbeats, are not; connections are limited; large bodies and
responses still pass the small per-connection buffer."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from sovereign_server import ServerConfig
from sovereign_server.gateway import Gateway, GatewayConfig
from tests.conftest import ServerThread, merged_deltas, reply_events
from tests.databases import Databases

from .test_run_streams import frames

pytestmark = pytest.mark.envoy

HEADERS_TIMEOUT = 0.5
REQUEST_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.0
DRAIN_TIMEOUT = 0.1
STREAM_IDLE_TIMEOUT = 0.8
# Tokens come further apart than the stream idle timeout; heartbeats (when on) much closer.
TOKEN_DELAY = 1.2
HEARTBEAT = 0.2
# Envoy waits up to a second for the client to close after its last response (delayed close);
# beyond that, slack for a busy machine.
CLOSE_SLACK = 2.5


def short_timeouts(grpc_port: int, *, max_connections: int = 10_000) -> GatewayConfig:
    return GatewayConfig(
        grpc_port=grpc_port,
        http_port=0,
        request_headers_timeout=HEADERS_TIMEOUT,
        request_timeout=REQUEST_TIMEOUT,
        idle_timeout=IDLE_TIMEOUT,
        drain_timeout=DRAIN_TIMEOUT,
        stream_idle_timeout=STREAM_IDLE_TIMEOUT,
        max_connections=max_connections,
    )


def paced_server(database: str, heartbeat: float) -> ServerThread:
    config = ServerConfig(
        grpc_port=0,
        metrics_port=0,
        database=database,
        token_delay=TOKEN_DELAY,
        stream_heartbeat=heartbeat,
    )
    return ServerThread(config).start()


@pytest.fixture(scope="module")
def server(databases: Databases) -> Iterator[ServerThread]:
    """Paced tokens, with SSE heartbeats in the silences between them."""
    server = paced_server(databases.new(), HEARTBEAT)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gateway(server: ServerThread) -> Iterator[Gateway]:
    with Gateway(short_timeouts(server.port)) as gateway:
        yield gateway


@dataclass
class Received:
    data: bytes
    # Seconds from the start of the wait to the first byte, and to the end of the connection.
    first_byte: float | None
    closed: float | None


def connect(gateway: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.http_port), timeout=10)


def read_until_closed(connection: socket.socket, within: float, *, trickle: bytes = b"") -> Received:
    """Everything the gateway sends until it closes the connection (or `within` seconds pass),
    sending one byte of `trickle` every 0.2 s meanwhile."""
    start = time.monotonic()
    received = Received(b"", None, None)
    connection.settimeout(0.2 if trickle else within)
    with connection:
        while time.monotonic() - start < within:
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                if trickle:
                    connection.sendall(trickle[:1])
                    trickle = trickle[1:]
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                received.closed = time.monotonic() - start
                break
            if received.first_byte is None:
                received.first_byte = time.monotonic() - start
            received.data += chunk
    return received


def assert_timed_out(received: Received, timeout: float, reason: bytes) -> None:
    """The gateway answered 408 for `reason` about `timeout` seconds in, then hung up."""
    assert received.data.startswith(b"HTTP/1.1 408 ")
    assert reason in received.data
    assert received.first_byte is not None
    assert timeout * 0.8 < received.first_byte < timeout + CLOSE_SLACK
    assert received.closed is not None


def test_a_client_sending_its_headers_slowly_gets_408_and_is_disconnected(gateway: Gateway) -> None:
    connection = connect(gateway)
    connection.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n")  # and never the blank line
    received = read_until_closed(connection, within=HEADERS_TIMEOUT + CLOSE_SLACK)
    assert_timed_out(received, HEADERS_TIMEOUT, b"request header timeout")


def test_a_body_trickled_slowly_is_cut_at_the_request_timeout(gateway: Gateway) -> None:
    connection = connect(gateway)
    body = b'{"model": "builtin", "name": "' + b"x" * 100 + b'"}'
    head = b"POST /v1/assistants HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    connection.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
    # A byte every 0.2 s keeps the stream from idling, but the whole body would take 20 s.
    received = read_until_closed(connection, within=REQUEST_TIMEOUT + CLOSE_SLACK, trickle=body)
    assert_timed_out(received, REQUEST_TIMEOUT, b"request timeout")


def test_idle_connections_are_closed_after_the_idle_timeout(gateway: Gateway) -> None:
    silent, served = connect(gateway), connect(gateway)
    served.sendall(b"GET /health HTTP/1.1\r\nHost: gateway\r\n\r\n")
    after_a_request = read_until_closed(served, within=IDLE_TIMEOUT + DRAIN_TIMEOUT + CLOSE_SLACK)
    assert after_a_request.data.startswith(b"HTTP/1.1 200 ")
    assert after_a_request.data.endswith(b'{"status":"SERVING"}')
    assert after_a_request.closed is not None
    assert after_a_request.closed > IDLE_TIMEOUT * 0.8
    # One that never sent a byte was closed too, without an answer.
    never_spoke = read_until_closed(silent, within=1.0)
    assert (never_spoke.data, never_spoke.closed is not None) == (b"", True)


def read_until_cut(response: httpx.Response) -> tuple[bytes, httpx.TransportError | None]:
    """The body received, and the error that ended it early (None: it ended normally)."""
    received = b""
    try:
        for chunk in response.iter_bytes():
            received += chunk
    except httpx.TransportError as error:
        return received, error
    return received, None


def start_run(http: httpx.Client, text: str) -> tuple[str, dict[str, object]]:
    assistant = http.post("/assistants", json={"model": "builtin"}).json()
    thread = http.post("/threads", json={"messages": [{"role": "user", "content": text}]}).json()
    return f"/threads/{thread['id']}/runs", {"assistant_id": assistant["id"], "stream": True}


def test_a_long_stream_with_heartbeats_outlives_the_stream_idle_timeout(gateway: Gateway) -> None:
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as http:
        path, body = start_run(http, "slow reply")
        started = time.monotonic()
        with http.stream("POST", path, json=body) as response:
            received = b"".join(response.iter_bytes())
        lasted = time.monotonic() - started
    # Three tokens, TOKEN_DELAY apart: silences longer than the stream idle timeout, filled by heartbeats.
    assert lasted > 2 * STREAM_IDLE_TIMEOUT
    assert received.count(b": keep-alive\n\n") >= 4
    events = frames(received.replace(b": keep-alive\n\n", b""))
    assert merged_deltas([name for name, _ in events]) == reply_events()
    deltas = [data["delta"]["content"][0]["text"]["value"] for name, data in events if name == "thread.message.delta"]
    assert "".join(deltas) == "You said: slow reply"


def test_a_stream_whose_server_sends_nothing_is_cut_after_the_stream_idle_timeout(databases: Databases) -> None:
    # The same pacing, without heartbeats (every 60 s only): the first silence ends the stream.
    quiet = paced_server(databases.new(), 60.0)
    try:
        with (
            Gateway(short_timeouts(quiet.port)) as gateway,
            httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as http,
        ):
            path, body = start_run(http, "slow reply")
            started = time.monotonic()
            with http.stream("POST", path, json=body) as response:
                received, cut = read_until_cut(response)
            cut_after = time.monotonic() - started
    finally:
        quiet.stop()
    assert response.status_code == 200
    assert isinstance(cut, httpx.RemoteProtocolError)
    assert b"event: thread.message.delta" in received
    assert b"[DONE]" not in received
    assert cut_after < TOKEN_DELAY + CLOSE_SLACK


def test_connections_beyond_the_limit_are_closed_at_once(server: ServerThread) -> None:
    with Gateway(short_timeouts(server.port, max_connections=2)) as gateway:
        held = [connect(gateway), connect(gateway)]
        time.sleep(0.1)  # Envoy counts them when it has accepted them
        extra = read_until_closed(connect(gateway), within=IDLE_TIMEOUT * 0.8)
        assert (extra.data, extra.closed is not None) == (b"", True)
        for connection in held:
            connection.close()
        time.sleep(0.1)
        assert httpx.get(gateway.url("/health"), trust_env=False).status_code == 200


def test_bodies_and_responses_larger_than_the_connection_buffer_pass(gateway: Gateway) -> None:
    instructions = "x" * 250_000
    with httpx.Client(base_url=gateway.base_url, trust_env=False, timeout=30) as http:
        created = [http.post("/assistants", json={"model": "builtin", "instructions": instructions}) for _ in range(8)]
        assert [response.status_code for response in created] == [200] * 8
        listed = http.get("/assistants", params={"limit": 8})
    assert listed.status_code == 200
    assert len(listed.content) > 60 * GatewayConfig(grpc_port=1).connection_buffer_bytes
    assert {assistant["instructions"] for assistant in listed.json()["data"]} == {instructions}
