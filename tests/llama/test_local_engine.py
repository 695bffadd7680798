"""`sovereign serve --engine local`: a real SmolLM2 model behind a supervised llama-server, end to
end with the official SDK. The model's words are not asserted (a real model's), its run is."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import ServiceProcess, child_pids, pid_alive

pytestmark = pytest.mark.llama


def llama_server_pids(parent: int) -> list[int]:
    """The llama-server processes among `parent`'s children."""
    return [pid for pid in child_pids(parent) if b"llama-server" in Path(f"/proc/{pid}/cmdline").read_bytes()]


def ask(sdk: OpenAI, assistant_id: str, question: str) -> tuple[str, str, int]:
    run = sdk.beta.threads.create_and_run_poll(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": question}]},
        max_completion_tokens=256,
        temperature=0,
        poll_interval_ms=100,
    )
    reply = sdk.beta.threads.messages.list(run.thread_id).data[0]
    assert run.usage is not None
    return run.status, reply.content[0].text.value, run.usage.completion_tokens  # type: ignore[union-attr]


def test_the_local_engine_answers_with_a_real_model_and_survives_its_server_dying(database: str) -> None:
    service = ServiceProcess(database, "--engine", "local")
    try:
        with OpenAI(base_url=service.base_url, api_key="sk-local", max_retries=0, timeout=120) as sdk:
            assistant = sdk.beta.assistants.create(model="smollm2", instructions="Answer in one short sentence.")
            status, text, completion_tokens = ask(sdk, assistant.id, "What color is the sky?")
            assert status == "completed"
            assert text.strip()
            assert completion_tokens > 0

            (server_pid,) = llama_server_pids(service.pid)
            os.kill(server_pid, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                restarted = [pid for pid in llama_server_pids(service.pid) if pid != server_pid]
                if restarted:
                    break
                time.sleep(0.2)
            assert restarted, "the supervisor should start a new llama-server"
            # Once the new server answers, runs complete again.
            while time.monotonic() < deadline:
                status, text, _ = ask(sdk, assistant.id, "Name a fruit.")
                if status == "completed":
                    break
                time.sleep(0.5)
            assert status == "completed"
            assert text.strip()
        # A clean stop takes the model server down too.
        live = llama_server_pids(service.pid)
        service.process.send_signal(signal.SIGTERM)
        assert service.process.wait(timeout=60) == 0
        assert live
        assert not any(pid_alive(pid) for pid in live)
    finally:
        service.stop()
