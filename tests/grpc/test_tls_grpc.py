"""gRPC over TLS, with the typed client (sync and asyncio) and grpcurl, against a real server that
serves TLS only, with a certificate made for this test session, and whose database holds keys."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from sovereign_client import APIError, AsyncSovereignClient, AuthenticationError, SovereignClient
from tests.certificates import CertificateFiles, self_signed
from tests.conftest import Keys, ServerThread, merged_deltas, reply_events
from tests.grpc.test_grpcurl import GRPCURL

pytestmark = pytest.mark.grpc

CREATE_ASSISTANT = "sovereign_assistant.v1.AssistantService/CreateAssistant"


@pytest.fixture(scope="module")
def server(tls_server: tuple[ServerThread, Keys]) -> ServerThread:
    return tls_server[0]


@pytest.fixture(scope="module")
def keys(tls_server: tuple[ServerThread, Keys]) -> Keys:
    return tls_server[1]


def test_the_client_trusting_the_ca_file_calls_and_streams_with_a_key(
    server: ServerThread, keys: Keys, certificate: CertificateFiles
) -> None:
    with SovereignClient(f"localhost:{server.port}", api_key=keys.alpha, ca_file=certificate.cert) as client:
        assistant = client.assistants.create(model="builtin", name="over tls")
        assert client.assistants.retrieve(assistant.id).name.string_value == "over tls"
        thread = client.threads.create(messages=[{"role": "user", "content": "secret words"}])
        events = [event.event for event in client.threads.runs.stream(thread.id, assistant_id=assistant.id)]
    assert merged_deltas(events) == reply_events()


async def test_the_async_client_trusting_root_certificates_calls_with_a_key(
    server: ServerThread, keys: Keys, certificate: CertificateFiles
) -> None:
    root = certificate.cert.read_bytes()
    async with AsyncSovereignClient(f"127.0.0.1:{server.port}", api_key=keys.beta, root_certificates=root) as client:
        assistant = await client.assistants.create(model="builtin")
        thread = await client.threads.create(messages=[{"role": "user", "content": "hello"}])
        run = await client.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"


def test_a_key_is_still_required_over_tls(server: ServerThread, certificate: CertificateFiles) -> None:
    with (
        SovereignClient(f"127.0.0.1:{server.port}", ca_file=certificate.cert) as client,
        pytest.raises(AuthenticationError),
    ):
        client.assistants.list()


def test_the_certificate_must_name_the_server(server: ServerThread, keys: Keys, certificate: CertificateFiles) -> None:
    address, ca = f"127.0.0.1:{server.port}", certificate.cert
    with SovereignClient(address, api_key=keys.alpha, ca_file=ca, server_name="localhost") as client:
        client.assistants.list()
    with (
        SovereignClient(address, api_key=keys.alpha, ca_file=ca, server_name="elsewhere.test") as client,
        pytest.raises(APIError) as refused,
    ):
        client.assistants.list()
    assert refused.value.status == grpc.StatusCode.UNAVAILABLE


def test_plaintext_and_untrusting_clients_are_refused(server: ServerThread, keys: Keys, tmp_path: Path) -> None:
    address = f"127.0.0.1:{server.port}"
    stranger = self_signed(tmp_path, "localhost", "127.0.0.1")
    clients: dict[str, Callable[[], SovereignClient]] = {
        "plaintext": lambda: SovereignClient(address, api_key=keys.alpha),
        "public roots": lambda: SovereignClient(address, api_key=keys.alpha, tls=True),
        "another CA": lambda: SovereignClient(address, api_key=keys.alpha, ca_file=stranger.cert),
    }
    for name, make in clients.items():
        with make() as client, pytest.raises(APIError) as refused:
            client.assistants.list()
        assert refused.value.status == grpc.StatusCode.UNAVAILABLE, name


def grpcurl(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GRPCURL, *arguments], capture_output=True, text=True, timeout=60, check=False)


def test_grpcurl_calls_with_the_ca_and_a_key(server: ServerThread, keys: Keys, certificate: CertificateFiles) -> None:
    address, ca = f"127.0.0.1:{server.port}", str(certificate.cert)
    listed = grpcurl("-cacert", ca, address, "list")
    assert listed.returncode == 0, listed.stderr
    assert "sovereign_assistant.v1.AssistantService" in listed.stdout.split()
    body = json.dumps({"model": "builtin", "name": "from grpcurl over tls"})
    created = grpcurl("-cacert", ca, "-H", f"authorization: Bearer {keys.alpha}", "-d", body, address, CREATE_ASSISTANT)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["name"] == "from grpcurl over tls"


def test_grpcurl_without_tls_or_without_the_ca_fails(server: ServerThread) -> None:
    address = f"127.0.0.1:{server.port}"
    plaintext = grpcurl("-plaintext", address, "list")
    assert plaintext.returncode != 0
    untrusted = grpcurl(address, "list")
    assert untrusted.returncode != 0
    assert "certificate" in untrusted.stderr
