"""`sovereign serve`, the one command users run: both servers up, addresses printed, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from sovereign_client import SovereignClient
from tests.conftest import ServiceProcess, child_pids, pid_alive

pytestmark = pytest.mark.sdk


@pytest.fixture
def served(database: str) -> Iterator[ServiceProcess]:
    service = ServiceProcess(database)
    yield service
    service.stop()


def test_serve_answers_json_and_grpc_then_stops_cleanly_on_sigterm(served: ServiceProcess) -> None:
    process, base_url, grpc_address = served.process, served.base_url, served.grpc_address
    with OpenAI(base_url=base_url, api_key="sk-local", max_retries=0) as sdk:
        assistant = sdk.beta.assistants.create(model="builtin", name="launched")
    with SovereignClient(grpc_address) as client:
        assert client.assistants.retrieve(assistant.id).name.string_value == "launched"
    assert httpx.get(base_url.removesuffix("/v1") + "/health", trust_env=False).json() == {"status": "SERVING"}

    children = child_pids(process.pid)
    assert children, "Envoy should run as a child of the launcher"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not any(pid_alive(pid) for pid in children)


def test_envoy_dies_with_a_killed_launcher(served: ServiceProcess) -> None:
    process = served.process
    children = child_pids(process.pid)
    process.kill()
    process.wait(timeout=10)
    for _ in range(100):
        if not any(pid_alive(pid) for pid in children):
            break
        time.sleep(0.05)
    assert not any(pid_alive(pid) for pid in children)


def test_several_workers_on_sqlite_are_refused_with_the_reason(tmp_path: Path) -> None:
    database = tmp_path / "db.sqlite3"
    command = [str(Path(sys.executable).parent / "sovereign"), "serve", "--workers", "2", "--db", str(database)]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0
    assert "--workers 2 needs a PostgreSQL database" in refused.stderr
    assert not database.exists()
