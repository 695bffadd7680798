"""`sovereign keys` and the secure defaults of `sovereign serve`, as users run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openai
import pytest
from openai import OpenAI

from sovereign_server.cli import authentication_status
from sovereign_server.config import ServerConfig
from tests.conftest import ServiceProcess

pytestmark = pytest.mark.sdk

SOVEREIGN = str(Path(sys.executable).parent / "sovereign")


def sovereign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SOVEREIGN, *args], capture_output=True, text=True, timeout=60, check=False)


def test_keys_are_created_listed_and_revoked_and_the_secret_is_printed_once(database: str) -> None:
    created = sovereign("keys", "create", "--project", "alpha", "--name", "ci", "--rpm", "5", "--db", database)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.splitlines()[-1]
    assert secret.startswith("sk-")
    assert len(secret) >= 40
    key_id = created.stdout.split()[0]
    assert key_id.startswith("key_")

    listed = sovereign("keys", "list", "--db", database)
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout
    assert "project=alpha" in listed.stdout
    assert "name=ci" in listed.stdout
    assert "rpm=5" in listed.stdout
    assert f"prefix={secret[:10]}..." in listed.stdout
    assert secret not in listed.stdout
    if "://" not in database:
        assert secret not in Path(database).read_bytes().decode(errors="replace")

    revoked = sovereign("keys", "revoke", key_id, "--db", database)
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in sovereign("keys", "list", "--db", database).stdout
    assert sovereign("keys", "revoke", "key_missing", "--db", database).returncode != 0
    refused = sovereign("keys", "create", "--db", database)
    assert refused.returncode != 0
    assert "--project is required" in refused.stderr
    admin = sovereign("keys", "create", "--admin", "--db", database)
    assert admin.returncode == 0, admin.stderr
    assert "admin" in admin.stdout
    assert "project=default" in admin.stdout


def test_serve_refuses_to_listen_beyond_loopback_without_keys(database: str) -> None:
    refused = subprocess.run(
        [
            SOVEREIGN,
            "serve",
            "--http-host",
            "0.0.0.0",
            "--http-port",
            "0",
            "--grpc-port",
            "0",
            "--metrics-port",
            "0",
            "--db",
            database,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0 with no API key" in refused.stderr
    assert "--insecure-no-auth" in refused.stderr

    # Decided before anything binds: open on loopback, or beyond it only when asked to be insecure.
    local = ServerConfig(database=database)
    assert authentication_status(local).startswith("none: no API key exists yet")
    exposed = ServerConfig(database=database, grpc_host="0.0.0.0", insecure_no_auth=True)
    assert "NONE, and listening on 0.0.0.0" in authentication_status(exposed)
    assert sovereign("keys", "create", "--project", "alpha", "--db", database).returncode == 0
    assert authentication_status(ServerConfig(database=database, http_host="0.0.0.0")) == "API keys required"


def test_a_service_with_keys_says_so_and_serves_only_keyed_calls(database: str) -> None:
    created = sovereign("keys", "create", "--project", "alpha", "--db", database)
    secret = created.stdout.splitlines()[-1]
    service = ServiceProcess(database)
    try:
        assert "authentication:                 API keys required" in service.banner
        with OpenAI(base_url=service.base_url, api_key=secret, max_retries=0) as keyed:
            assert keyed.beta.assistants.create(model="builtin").id.startswith("asst_")
        with (
            OpenAI(base_url=service.base_url, api_key="sk-local", max_retries=0) as unkeyed,
            pytest.raises(openai.AuthenticationError),
        ):
            unkeyed.beta.assistants.list()
    finally:
        service.stop()


def test_a_service_without_keys_says_it_is_open_on_loopback_only(database: str) -> None:
    service = ServiceProcess(database)
    try:
        assert "only this machine may connect" in service.banner
    finally:
        service.stop()
