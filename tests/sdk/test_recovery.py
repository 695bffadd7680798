"""Restart safety: `sovereign serve` killed with SIGKILL mid-stream, then started again on the same
database. The interrupted run is ended, its partial reply kept as `incomplete`, nothing committed is lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from openai import OpenAI

from tests.conftest import ServiceProcess

pytestmark = pytest.mark.sdk


def test_a_run_cut_by_sigkill_is_failed_at_the_next_start(database: str) -> None:
    first = ServiceProcess(database, "--token-delay", "0.1")
    try:
        with OpenAI(base_url=first.base_url, api_key="sk-local", max_retries=0) as sdk:
            assistant = sdk.beta.assistants.create(model="builtin", name="survivor")
            thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "before"}])
            finished = sdk.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
            sdk.beta.threads.messages.create(thread.id, role="user", content=" ".join(f"w{i}" for i in range(60)))
            run_id = ""
            deltas = 0
            stream = sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
            for event in stream:
                if event.event == "thread.run.created":
                    run_id = event.data.id
                if event.event == "thread.message.delta":
                    deltas += 1
                    if deltas == 8:
                        # Mid-stream, after the growing reply has been written at least once.
                        first.process.kill()
                        first.process.wait()
                        break
    finally:
        first.stop()

    second = ServiceProcess(database)
    try:
        with OpenAI(base_url=second.base_url, api_key="sk-local", max_retries=0) as sdk:
            # Alone on SQLite, the new process ends it as it starts; among replicas on PostgreSQL, a
            # replica ends it once the killed one's lease has run out.
            deadline = time.monotonic() + 15
            run = sdk.beta.threads.runs.retrieve(run_id, thread_id=thread.id)
            while run.status == "in_progress" and time.monotonic() < deadline:
                time.sleep(0.2)
                run = sdk.beta.threads.runs.retrieve(run_id, thread_id=thread.id)
            assert run.status == "failed"
            assert run.failed_at is not None
            assert run.last_error is not None
            assert run.last_error.code == "server_error"
            assert run.last_error.message == "The server stopped while the run was in progress."

            messages = sdk.beta.threads.messages.list(thread.id, order="asc").data
            assert [(m.role, m.status) for m in messages] == [
                ("user", "completed"),
                ("assistant", "completed"),
                ("user", "completed"),
                ("assistant", "incomplete"),
            ]
            partial = messages[-1]
            assert partial.incomplete_details is not None
            assert partial.incomplete_details.reason == "run_failed"
            text = partial.content[0].text.value  # type: ignore[union-attr]
            assert text.startswith("You said: w0")
            assert len(text.split()) < 62

            assert sdk.beta.assistants.retrieve(assistant.id).name == "survivor"
            assert sdk.beta.threads.runs.retrieve(finished.id, thread_id=thread.id).status == "completed"
            steps = sdk.beta.threads.runs.steps.list(run_id, thread_id=thread.id).data
            assert [step.status for step in steps] == ["failed"]

            sdk.beta.threads.messages.create(thread.id, role="user", content="again")
            again = sdk.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
            )
            assert again.status == "completed"
    finally:
        second.stop()


@pytest.mark.sqlite_only
def test_the_service_moves_its_write_ahead_log_into_the_database_file_as_it_runs(database: str) -> None:
    service = ServiceProcess(database)
    try:
        file = Path(database)
        before = file.stat().st_size
        with OpenAI(base_url=service.base_url, api_key="sk-local", max_retries=0) as sdk:
            # 6 MB of messages: more than SQLite would hold in its log before a checkpoint of its own.
            for _ in range(3):
                sdk.beta.threads.create(messages=[{"role": "user", "content": "x" * 100_000}] * 20)
        deadline = time.monotonic() + 15
        while file.stat().st_size < before + 6_000_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert file.stat().st_size >= before + 6_000_000
    finally:
        service.stop()
