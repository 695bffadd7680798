"""`sovereign serve --workers N`: N replicas and the gateway on one machine, supervised together."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from sovereign_server.engines.local import free_port
from tests.certificates import CertificateFiles
from tests.conftest import ServiceProcess, child_pids, pid_alive
from tests.databases import PostgresServer
from tests.sdk.test_tls_sdk import https_sdk

pytestmark = [pytest.mark.postgres, pytest.mark.replicas]


def workers_of(pid: int) -> set[int]:
    return {child for child in child_pids(pid) if b"server" in Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")}


def run_once(base_url: str) -> str:
    with OpenAI(base_url=base_url, api_key="sk-local", max_retries=0, timeout=30) as sdk:
        assistant = sdk.beta.assistants.create(model="builtin")
        run = sdk.beta.threads.create_and_run_poll(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}, poll_interval_ms=20
        )
        return run.status


def gateway_statistic(admin_port: int, name: str) -> int:
    """One of the gateway's statistics, from Envoy's admin API (0 if it keeps none of that name)."""
    text = httpx.get(f"http://127.0.0.1:{admin_port}/stats", params={"filter": f"^{name}$"}).text
    return int(text.split(":")[1]) if text.strip() else 0


def gateway_connections(admin_port: int, port: int) -> int:
    """The gateway's open connections to the replica on `port`, from Envoy's admin API."""
    text = httpx.get(f"http://127.0.0.1:{admin_port}/clusters").text
    return sum(int(line.rsplit("::", 1)[1]) for line in text.splitlines() if f":{port}::cx_active::" in line)


def grpc_port_of(pid: int) -> int:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return int(argv[argv.index("--grpc-port") + 1])


def calls_answered(base_url: str, count: int) -> int:
    """How many of `count` calls in a row got their answer."""
    with OpenAI(base_url=base_url, api_key="sk-local", max_retries=0) as sdk:
        assistant = sdk.beta.assistants.create(model="builtin")
        return sum(sdk.beta.assistants.retrieve(assistant.id).id == assistant.id for _ in range(count))


def test_a_dead_worker_is_started_again_and_calls_go_on_meanwhile(postgres_server: PostgresServer) -> None:
    database = postgres_server.create_database()
    admin_port = free_port()
    service = ServiceProcess(
        database, "--workers", "2", "--replica-lease", "2", "--gateway-admin-port", str(admin_port)
    )
    try:
        assert "(one per worker)" in service.banner
        workers = workers_of(service.pid)
        assert len(workers) == 2
        assert [run_once(service.base_url) for _ in range(4)] == ["completed"] * 4

        killed = min(workers)
        killed_port = grpc_port_of(killed)
        subprocess.run(["kill", "-9", str(killed)], check=True)
        # A call that was on its way to the worker as it died fails, as with any server that dies;
        # these start once the gateway has seen its connection to the worker close.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and gateway_connections(admin_port, killed_port):
            time.sleep(0.01)
        assert gateway_connections(admin_port, killed_port) == 0
        # The other worker serves at once: the gateway retries a call that found no server on
        # another, and sends the dead one no calls while it is ejected or failing its health check.
        assert calls_answered(service.base_url, 100) == 100
        ejected = "cluster.grpc.outlier_detection.ejections_enforced_consecutive_local_origin_failure"
        assert gateway_statistic(admin_port, ejected) >= 1
        assert [run_once(service.base_url) for _ in range(4)] == ["completed"] * 4
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(workers_of(service.pid) - {killed}) < 2:
            time.sleep(0.1)
        assert len(workers_of(service.pid) - {killed}) == 2
        # Nor while the new one starts.
        assert calls_answered(service.base_url, 100) == 100
        assert [run_once(service.base_url) for _ in range(6)] == ["completed"] * 6

        children = child_pids(service.pid)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0
        assert not any(pid_alive(pid) for pid in children)
    finally:
        service.stop()
        postgres_server.drop_database(database)


def test_workers_serve_tls_as_serve_does(postgres_server: PostgresServer, certificate: CertificateFiles) -> None:
    database = postgres_server.create_database()
    tls = ("--tls-cert", str(certificate.cert), "--tls-key", str(certificate.key))
    service = ServiceProcess(database, "--workers", "2", *tls)
    try:
        assert service.base_url.startswith("https://")
        with https_sdk(service.base_url, "sk-local", certificate.cert) as sdk:
            assistant = sdk.beta.assistants.create(model="builtin")
            runs = [
                sdk.beta.threads.create_and_run_poll(
                    assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "over tls"}]}
                )
                for _ in range(4)
            ]
        assert {run.status for run in runs} == {"completed"}
    finally:
        service.stop()
        postgres_server.drop_database(database)
