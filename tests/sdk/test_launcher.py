"""`sovereign serve`, the one command users run: both servers up, addresses printed, clean stop."""

from __future__ import annotations

import os
import re
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

pytestmark = pytest.mark.sdk

SOVEREIGN = str(Path(sys.executable).parent / "sovereign")


def child_pids(pid: int) -> set[int]:
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(child) for child in (task / "children").read_text().split()}
    return children


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    process = subprocess.Popen(
        [SOVEREIGN, "serve", "--grpc-port", "0", "--http-port", "0", "--db", str(tmp_path / "data" / "db.sqlite3")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.strip().startswith("API docs"):
            break
    text = "".join(lines)
    base_url = re.search(r"(http://127\.0\.0\.1:\d+/v1)", text)
    grpc_address = re.search(r"gRPC:\s+(127\.0\.0\.1:\d+)", text)
    assert base_url, text
    assert grpc_address, text
    yield process, base_url.group(1), grpc_address.group(1)
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stdout.close()


def test_serve_answers_json_and_grpc_then_stops_cleanly_on_sigterm(
    served: tuple[subprocess.Popen[str], str, str],
) -> None:
    process, base_url, grpc_address = served
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


def test_envoy_dies_with_a_killed_launcher(served: tuple[subprocess.Popen[str], str, str]) -> None:
    process, _, _ = served
    children = child_pids(process.pid)
    process.kill()
    process.wait(timeout=10)
    for _ in range(100):
        if not any(pid_alive(pid) for pid in children):
            break
        time.sleep(0.05)
    assert not any(pid_alive(pid) for pid in children)
