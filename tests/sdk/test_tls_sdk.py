"""The official `openai` SDK over HTTPS, with an API key, through a real Envoy that reaches a real
gRPC server over TLS; and `sovereign serve --tls-cert --tls-key` as users run it."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI

from sovereign_client import SovereignClient
from sovereign_server.gateway import Gateway, GatewayConfig, UpstreamTls
from tests.certificates import CertificateFiles
from tests.conftest import Keys, ServerThread, ServiceProcess

pytestmark = pytest.mark.sdk


def https_sdk(base_url: str, api_key: str, ca: Path) -> OpenAI:
    """The SDK trusting `ca`: an httpx-compatible client of its own, verifying with that file."""
    http_client = openai.DefaultHttpxClient(verify=ssl.create_default_context(cafile=str(ca)), trust_env=False)
    return OpenAI(base_url=base_url, api_key=api_key, http_client=http_client, max_retries=0, timeout=20.0)


@pytest.fixture(scope="module")
def keys(tls_server: tuple[ServerThread, Keys]) -> Keys:
    return tls_server[1]


@pytest.fixture(scope="module")
def gateway(tls_server: tuple[ServerThread, Keys], certificate: CertificateFiles) -> Iterator[Gateway]:
    config = GatewayConfig(
        grpc_port=tls_server[0].port,
        http_port=0,
        tls_cert=certificate.cert,
        tls_key=certificate.key,
        upstream_tls=UpstreamTls(certificate.cert, "localhost"),
    )
    with Gateway(config) as gateway:
        yield gateway


def test_the_sdk_trusting_the_ca_creates_and_streams_with_a_key(
    gateway: Gateway, keys: Keys, certificate: CertificateFiles
) -> None:
    with https_sdk(gateway.base_url, keys.alpha, certificate.cert) as client:
        assistant = client.beta.assistants.create(model="builtin", name="over https")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "private words"}])
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            text = "".join(stream.text_deltas)
            run = stream.get_final_run()
        assert text == "You said: private words"
        assert run.status == "completed"
        assert assistant.id in [found.id for found in client.beta.assistants.list()]


def test_a_wrong_key_is_still_a_401_over_https(gateway: Gateway, certificate: CertificateFiles) -> None:
    with (
        https_sdk(gateway.base_url, "sk-made-up-key", certificate.cert) as client,
        pytest.raises(openai.AuthenticationError),
    ):
        client.beta.assistants.list()


def test_the_sdk_refuses_a_certificate_it_does_not_trust(gateway: Gateway, keys: Keys) -> None:
    with (
        OpenAI(base_url=gateway.base_url, api_key=keys.alpha, max_retries=0, timeout=20.0) as client,
        pytest.raises(openai.APIConnectionError),
    ):
        client.beta.assistants.list()


@pytest.fixture
def served_tls(database: str, certificate: CertificateFiles) -> Iterator[ServiceProcess]:
    tls = ("--tls-cert", str(certificate.cert), "--tls-key", str(certificate.key))
    service = ServiceProcess(database, *tls)
    yield service
    service.stop()


def test_serve_with_a_certificate_prints_https_and_serves_tls_only(
    served_tls: ServiceProcess, certificate: CertificateFiles
) -> None:
    banner = served_tls.banner
    assert "https://127.0.0.1:" in banner
    assert "http://127.0.0.1" not in banner.split("metrics")[0]
    assert served_tls.base_url.startswith("https://")
    assert "TLS, certificate for localhost, 127.0.0.1" in banner

    with https_sdk(served_tls.base_url, "sk-local", certificate.cert) as sdk:
        assistant = sdk.beta.assistants.create(model="builtin", name="served over tls")
    with SovereignClient(served_tls.grpc_address, ca_file=certificate.cert) as client:
        assert client.assistants.retrieve(assistant.id).name.string_value == "served over tls"
    with pytest.raises(httpx.TransportError):
        httpx.get(served_tls.base_url.replace("https://", "http://") + "/assistants", trust_env=False, timeout=5)
    with SovereignClient(served_tls.grpc_address) as plaintext, pytest.raises(Exception, match="UNAVAILABLE"):
        plaintext.assistants.list()
