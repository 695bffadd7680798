"""The gateway over TLS, in raw HTTP through a real Envoy: HTTPS only towards clients, and TLS to a
real gRPC server whose certificate it checks (trusted issuer, and the name it was issued for)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sovereign_server import ServerConfig
from sovereign_server.gateway import Gateway, GatewayConfig, UpstreamTls
from tests.certificates import CertificateAuthority, CertificateFiles, self_signed
from tests.conftest import Keys, ServerThread

pytestmark = pytest.mark.envoy


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def https_gateway(grpc_port: int, served: CertificateFiles, upstream: UpstreamTls | None) -> Gateway:
    config = GatewayConfig(
        grpc_port=grpc_port, http_port=0, tls_cert=served.cert, tls_key=served.key, upstream_tls=upstream
    )
    return Gateway(config)


@pytest.fixture(scope="module")
def server(tls_server: tuple[ServerThread, Keys]) -> ServerThread:
    return tls_server[0]


@pytest.fixture(scope="module")
def gateway(server: ServerThread, certificate: CertificateFiles) -> Iterator[Gateway]:
    with https_gateway(server.port, certificate, UpstreamTls(certificate.cert, "localhost")) as gateway:
        yield gateway


def test_the_json_api_is_https_and_the_urls_say_so(gateway: Gateway, certificate: CertificateFiles) -> None:
    assert gateway.base_url.startswith("https://127.0.0.1:")
    response = httpx.get(gateway.url("/health"), verify=trusting(certificate.cert), trust_env=False)
    assert response.status_code == 200
    assert response.json() == {"status": "SERVING"}


def test_plain_http_to_the_https_port_gets_no_answer(gateway: Gateway) -> None:
    plain = gateway.url("/health").replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(plain, trust_env=False, timeout=5)


def test_a_client_that_does_not_trust_the_certificate_is_refused(gateway: Gateway) -> None:
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(gateway.url("/health"), trust_env=False)


@pytest.mark.parametrize("upstream", ["a stranger's certificate", "another name", "no TLS"])
def test_envoy_refuses_a_grpc_server_whose_certificate_it_cannot_verify(
    server: ServerThread, certificate: CertificateFiles, tmp_path: Path, upstream: str
) -> None:
    stranger = self_signed(tmp_path, "localhost", "127.0.0.1")
    settings = {
        "a stranger's certificate": UpstreamTls(stranger.cert, "localhost"),
        "another name": UpstreamTls(certificate.cert, "elsewhere.test"),
        "no TLS": None,
    }[upstream]
    gateway = https_gateway(server.port, certificate, settings)
    gateway.start(wait_for_upstream=False)
    try:
        response = httpx.get(gateway.url("/health"), verify=trusting(certificate.cert), trust_env=False)
    finally:
        gateway.stop()
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"


def test_the_upstream_name_is_the_certificates_not_the_address(tmp_path: Path, database: str) -> None:
    # A CA-issued certificate naming only a host that does not resolve: Envoy dials 127.0.0.1, sends
    # that name as SNI and checks it among the certificate's names, trusting the CA or the
    # certificate itself (what `sovereign serve` does).
    authority = CertificateAuthority(tmp_path)
    issued = authority.issue("sovereign.internal")
    config = ServerConfig(
        grpc_port=0, metrics_port=0, database=database, tls_cert=str(issued.cert), tls_key=str(issued.key)
    )
    server = ServerThread(config).start()
    try:
        for trusted in (authority.files.cert, issued.cert):
            with (
                https_gateway(server.port, issued, UpstreamTls(trusted, "sovereign.internal")) as gateway,
                httpx.Client(verify=trusting(authority.files.cert), trust_env=False) as client,
            ):
                # The client, too, expects the certificate's name at the address it dials.
                response = client.get(gateway.url("/health"), extensions={"sni_hostname": "sovereign.internal"})
                assert response.status_code == 200
    finally:
        server.stop()
