"""Three replicas on one PostgreSQL database behind one gateway: runs spread over the replicas and
each executes exactly once (the model server counts generations); a run is streamed, cancelled and
resumed through any replica; a replica killed mid-run has its run ended once, by another. A
background response is cancelled and followed through any replica, and failed by another replica
if the one executing it is killed."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from google.protobuf import json_format, struct_pb2
from openai import OpenAI

from sovereign_assistant.v1 import run_pb2
from sovereign_client.errors import BadRequestError, NotFoundError
from tests.conftest import merged_deltas, reply_events
from tests.replicas.conftest import LEASE, Cluster

pytestmark = [pytest.mark.postgres, pytest.mark.replicas]

FUNCTION_TOOL: Any = {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}


@pytest.fixture(autouse=True)
def quick_model(cluster: Cluster) -> Iterator[None]:
    yield
    cluster.model.token_delay = 0.0


@pytest.fixture(scope="module")
def assistant_id(cluster: Cluster) -> str:
    with cluster.replicas[0].client() as client:
        return client.assistants.create(model="counted", tools=[FUNCTION_TOOL]).id


def unique(label: str, words: int = 0) -> str:
    return " ".join([label, uuid.uuid4().hex[:10], *(f"w{index}" for index in range(words))])


def names(events: Iterable[run_pb2.RunEvent]) -> list[str]:
    return [event.event for event in events]


def delta_text(events: Sequence[run_pb2.RunEvent]) -> str:
    return "".join(
        part.text.value
        for event in events
        if event.WhichOneof("data") == "message_delta"
        for part in event.message_delta.delta.content
    )


def json_of(value: struct_pb2.Value) -> Any:
    return json_format.MessageToDict(value)


def wait_for(condition: Any, within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {within} s: {what}")


def test_runs_through_the_gateway_spread_over_the_replicas_and_each_executes_once(
    cluster: Cluster, assistant_id: str
) -> None:
    prompts = [unique("spread") for _ in range(30)]
    with OpenAI(base_url=cluster.gateway.base_url, api_key="sk-local", max_retries=0) as sdk:
        runs = [
            sdk.beta.threads.create_and_run(
                assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": prompt}]}
            )
            for prompt in prompts
        ]
        finished = [sdk.beta.threads.runs.poll(run.id, thread_id=run.thread_id, poll_interval_ms=20) for run in runs]
    assert {run.status for run in finished} == {"completed"}
    assert {cluster.executed_by(run.id).name for run in runs} == {"a", "b", "c"}
    assert [len(cluster.model.of(prompt)) for prompt in prompts] == [1] * len(prompts)


def test_a_stream_through_one_replica_follows_a_run_executing_on_another(cluster: Cluster, assistant_id: str) -> None:
    cluster.model.token_delay = 0.02
    a, b = cluster.replicas[0], cluster.replicas[1]
    prompt = unique("follow", 40)
    with a.client() as on_a, b.client() as on_b:
        thread = on_a.threads.create(messages=[{"role": "user", "content": prompt}])
        own = on_a.threads.runs.stream(thread.id, assistant_id=assistant_id)
        first = next(own)
        run_id = first.run.id
        assert cluster.executed_by(run_id) is a
        # Attached late (a few tokens in), through B: the backlog first, then the rest as it comes.
        wait_for(lambda: cluster.model.of(prompt) and cluster.model.of(prompt)[0].tokens >= 5, 10, "tokens")
        followed = list(on_b.threads.runs.follow(run_id, thread_id=thread.id))
        own_events = [first, *own]
        # Once it ended, following it anywhere gives its status.
        assert names(on_b.threads.runs.follow(run_id, thread_id=thread.id)) == ["thread.run.completed", "done"]
    expected = f"You said: {prompt}"
    assert merged_deltas(names(followed)) == merged_deltas(names(own_events)) == merged_deltas(reply_events(2))
    assert delta_text(followed) == delta_text(own_events) == expected
    assert followed[-2].run.status == "completed"
    assert len(cluster.model.of(prompt)) == 1


def test_server_sent_events_of_a_run_through_the_gateway(cluster: Cluster, assistant_id: str) -> None:
    cluster.model.token_delay = 0.02
    prompt = unique("sse", 20)
    with cluster.replicas[2].client() as on_c:
        thread = on_c.threads.create(messages=[{"role": "user", "content": prompt}])
        run = on_c.threads.runs.create(thread.id, assistant_id=assistant_id)
        events: list[str] = []
        url = cluster.gateway.url(f"/v1/threads/{thread.id}/runs/{run.id}/events")
        with httpx.stream("GET", url, trust_env=False, timeout=30) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            events = [line.removeprefix("event: ") for line in response.iter_lines() if line.startswith("event: ")]
    assert merged_deltas(events) == merged_deltas(reply_events(2))
    assert len(cluster.model.of(prompt)) == 1


def test_cancel_through_another_replica_stops_the_engine_within_a_second(cluster: Cluster, assistant_id: str) -> None:
    cluster.model.token_delay = 0.05
    a, b = cluster.replicas[1], cluster.replicas[2]
    prompt = unique("cancel", 200)
    with a.client() as on_a, b.client() as on_b:
        thread = on_a.threads.create(messages=[{"role": "user", "content": prompt}])
        own = on_a.threads.runs.stream(thread.id, assistant_id=assistant_id)
        run_id = next(own).run.id
        wait_for(lambda: cluster.model.of(prompt) and cluster.model.of(prompt)[0].tokens >= 3, 10, "tokens")
        asked = time.monotonic()
        assert on_b.threads.runs.cancel(run_id, thread_id=thread.id).status == "cancelling"
        rest = names(own)
        ended = time.monotonic()
        run = on_b.threads.runs.retrieve(run_id, thread_id=thread.id)
    generation = cluster.model.of(prompt)[0]
    cut_at = wait_for(lambda: generation.cut_at, 2, "the engine closing its request")
    assert cut_at - asked < 1.0
    assert ended - asked < 1.5
    assert rest[-3:] == ["thread.run.step.cancelled", "thread.run.cancelled", "done"]
    assert "thread.run.cancelling" in rest
    assert "thread.message.incomplete" in rest
    assert run.status == "cancelled"


def test_tool_outputs_resume_the_run_on_the_replica_that_receives_them(cluster: Cluster, assistant_id: str) -> None:
    a, b = cluster.replicas[0], cluster.replicas[1]
    prompt = unique("please call get_price")
    with a.client() as on_a, b.client() as on_b:
        thread = on_a.threads.create(messages=[{"role": "user", "content": prompt}])
        waiting = on_a.threads.runs.create_and_poll(thread.id, assistant_id=assistant_id)
        assert waiting.status == "requires_action"
        assert cluster.executed_by(waiting.id) is a
        call_id = json_of(waiting.required_action)["submit_tool_outputs"]["tool_calls"][0]["id"]
        events = list(
            on_b.threads.runs.submit_tool_outputs_stream(
                waiting.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call_id, "output": "42"}]
            )
        )
        assert cluster.executed_by(waiting.id) is b
        assert events[-2].event == "thread.run.completed"
        assert delta_text(events) == "get_price returned: 42"
    assert cluster.sql("SELECT stretch FROM run_claims WHERE run_id = %s", waiting.id) == [(2,)]


def test_one_active_run_per_thread_holds_across_replicas(cluster: Cluster, assistant_id: str) -> None:
    cluster.model.token_delay = 0.02
    with cluster.replicas[0].client() as client:
        thread = client.threads.create(messages=[{"role": "user", "content": unique("race", 20)}])
    barrier = threading.Barrier(len(cluster.replicas) * 2)
    outcomes: list[str] = []

    def create(index: int) -> None:
        with cluster.replicas[index % len(cluster.replicas)].client() as client:
            barrier.wait()
            try:
                client.threads.runs.create(thread.id, assistant_id=assistant_id)
                outcomes.append("created")
            except BadRequestError as error:
                outcomes.append("refused" if "already has an active run" in str(error) else str(error))

    with ThreadPoolExecutor(len(cluster.replicas) * 2) as pool:
        list(pool.map(create, range(len(cluster.replicas) * 2)))
    assert sorted(outcomes) == ["created"] + ["refused"] * (len(cluster.replicas) * 2 - 1)


def test_fifty_concurrent_runs_over_three_replicas_execute_once_and_lose_no_event(
    cluster: Cluster, assistant_id: str
) -> None:
    cluster.model.token_delay = 0.005
    prompts = [unique("load", 10) for _ in range(50)]

    def stream(prompt: str) -> tuple[list[str], str]:
        with OpenAI(base_url=cluster.gateway.base_url, api_key="sk-local", max_retries=0, timeout=60) as sdk:
            events = list(
                sdk.beta.threads.create_and_run(
                    assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": prompt}]}, stream=True
                )
            )
        text = "".join(
            part.text.value or ""  # type: ignore[union-attr]
            for event in events
            if event.event == "thread.message.delta"
            for part in event.data.delta.content or []
        )
        return [event.event for event in events], text

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(stream, prompts))
    expected = merged_deltas(["thread.created", *reply_events(2, done=False)])
    for prompt, (events, text) in zip(prompts, results, strict=True):
        assert merged_deltas(events) == expected
        assert text == f"You said: {prompt}"
    assert [len(cluster.model.of(prompt)) for prompt in prompts] == [1] * 50


def test_a_replica_killed_mid_run_has_its_run_ended_once_by_another(cluster: Cluster, assistant_id: str) -> None:
    cluster.model.token_delay = 0.05
    victim, follower, bystander = cluster.replicas
    prompt, other = unique("killed", 200), unique("bystander", 60)
    with victim.client() as on_victim, follower.client() as on_follower, bystander.client() as on_bystander:
        thread = on_victim.threads.create(messages=[{"role": "user", "content": prompt}])
        run_id = next(on_victim.threads.runs.stream(thread.id, assistant_id=assistant_id)).run.id
        other_thread = on_bystander.threads.create(messages=[{"role": "user", "content": other}])
        other_stream = on_bystander.threads.runs.stream(other_thread.id, assistant_id=assistant_id)
        followed = on_follower.threads.runs.follow(run_id, thread_id=thread.id)
        seen = [next(followed)]
        while len(delta_text(seen).split()) < 6:
            seen.append(next(followed))
        victim.child.kill()
        killed = time.monotonic()
        seen += list(followed)
        ended = time.monotonic()
        run = on_follower.threads.runs.retrieve(run_id, thread_id=thread.id)
        messages = on_follower.threads.messages.list(thread.id, order="asc").data
        other_events = names(list(other_stream))
    try:
        # Ended by another replica once the victim's lease ran out, and sent to its follower.
        assert ended - killed < LEASE + 3
        assert names(seen)[-4:] == [
            "thread.message.incomplete",
            "thread.run.step.failed",
            "thread.run.failed",
            "done",
        ]
        assert (run.status, json_of(run.last_error)["code"]) == ("failed", "server_error")
        assert [(m.role, m.status) for m in messages] == [("user", "completed"), ("assistant", "incomplete")]
        assert json_of(messages[-1].incomplete_details) == {"reason": "run_failed"}
        # The partial reply, as the victim last wrote it (every quarter second), is what any replica shows.
        partial = messages[-1].content[0].text.value
        assert f"You said: {prompt}".startswith(partial)
        streamed = delta_text(seen)
        assert streamed.startswith(partial) or partial.startswith(streamed)
        assert delta_text(seen).startswith("You said: killed")
        events = cluster.sql("SELECT name FROM run_events WHERE run_id = %s AND name = 'thread.run.failed'", run_id)
        assert len(events) == 1
        # Never executed again; the bystander's run finished.
        assert len(cluster.model.of(prompt)) == 1
        assert other_events[-2:] == ["thread.run.completed", "done"]
        # Meanwhile the gateway sends calls to the others only.
        with OpenAI(base_url=cluster.gateway.base_url, api_key="sk-local", max_retries=0) as sdk:
            meanwhile = [
                sdk.beta.threads.create_and_run_poll(
                    assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": unique("meanwhile")}]}
                )
                for _ in range(6)
            ]
        assert {run.status for run in meanwhile} == {"completed"}
    finally:
        victim.start()
    # The restarted replica serves again through the gateway.
    with OpenAI(base_url=cluster.gateway.base_url, api_key="sk-local", max_retries=0) as sdk:
        again = [
            sdk.beta.threads.create_and_run_poll(
                assistant_id=assistant_id, thread={"messages": [{"role": "user", "content": unique("again")}]}
            )
            for _ in range(6)
        ]
    assert {run.status for run in again} == {"completed"}


def test_a_replica_killed_mid_response_has_its_response_failed_once_by_another(cluster: Cluster) -> None:
    cluster.model.token_delay = 0.05
    victim, other = cluster.replicas[1], cluster.replicas[2]
    prompt = unique("killed response", 200)
    with victim.client() as on_victim, other.client() as on_other:
        response = on_victim.responses.create(model="counted", input=prompt, background=True)
        wait_for(lambda: cluster.model.of(prompt) and cluster.model.of(prompt)[0].tokens >= 3, 10, "tokens")
        assert on_other.responses.retrieve(response.id).status == "in_progress"
        victim.child.kill()
        killed = time.monotonic()
        try:
            failed = wait_for(
                lambda: (r := on_other.responses.retrieve(response.id)).status != "in_progress" and r,
                LEASE + 5,
                "another replica to fail the response",
            )
            ended = time.monotonic()
            # Ended by another replica once the victim's lease ran out, and never executed again.
            assert ended - killed < LEASE + 3
            assert failed.status == "failed"
            error = json_of(failed.error)
            assert (error["code"], error["message"]) == (
                "server_error",
                "The server stopped while the response was in progress.",
            )
            assert cluster.sql("SELECT status FROM responses WHERE id = %s", response.id) == [("failed",)]
            assert len(cluster.model.of(prompt)) == 1
        finally:
            victim.start()


def test_a_replica_starting_ends_only_the_runs_of_replicas_gone(cluster: Cluster, assistant_id: str) -> None:
    cluster.model.token_delay = 0.02
    executing, restarted = cluster.replicas[0], cluster.replicas[2]
    prompt = unique("survives", 250)
    with executing.client() as client:
        thread = client.threads.create(messages=[{"role": "user", "content": prompt}])
        run = client.threads.runs.create(thread.id, assistant_id=assistant_id)
        restarted.child.stop()
        restarted.start()
        assert client.threads.runs.retrieve(run.id, thread_id=thread.id).status == "in_progress"
        finished = client.threads.runs.poll(run.id, thread_id=thread.id)
    assert finished.status == "completed"
    assert len(cluster.model.of(prompt)) == 1


def test_a_replica_stopping_or_starting_leaves_the_responses_of_others_executing(cluster: Cluster) -> None:
    # About 12 s of tokens: the response still runs once the other replica has stopped and started.
    cluster.model.token_delay = 0.05
    executing, restarted = cluster.replicas[0], cluster.replicas[1]
    prompt = unique("background", 250)
    with executing.client() as client:
        response = client.responses.create(model="counted", input=prompt, background=True)
        wait_for(lambda: cluster.model.of(prompt), 5, "the response's generation to start")
        restarted.child.stop()
        restarted.start()
        assert client.responses.retrieve(response.id).status == "in_progress"
        finished = wait_for(
            lambda: (r := client.responses.retrieve(response.id)).status != "in_progress" and r,
            30,
            "the response to end",
        )
    assert finished.status == "completed"
    assert len(cluster.model.of(prompt)) == 1


def test_cancel_of_a_response_through_another_replica_stops_its_generation_within_a_second(cluster: Cluster) -> None:
    cluster.model.token_delay = 0.05
    a, b = cluster.replicas[1], cluster.replicas[2]
    prompt = unique("cancel response", 200)
    with a.client() as on_a, b.client() as on_b:
        response = on_a.responses.create(model="counted", input=prompt, background=True)
        own = on_a.responses.events(response.id)
        assert next(own).type == "response.created"
        wait_for(lambda: cluster.model.of(prompt) and cluster.model.of(prompt)[0].tokens >= 3, 10, "tokens")
        asked = time.monotonic()
        assert on_b.responses.cancel(response.id).status == "cancelled"
        rest = [event.type for event in own]
        ended = time.monotonic()
        generation = cluster.model.of(prompt)[0]
        cut_at = wait_for(lambda: generation.cut_at, 2, "the engine closing its request")
        statuses = {on_a.responses.retrieve(response.id).status, on_b.responses.retrieve(response.id).status}
    assert cut_at - asked < 1.0
    assert ended - asked < 1.5
    # Cancelled once, by the replica that received the cancel: the executing one ends nothing more.
    assert not {"response.completed", "response.incomplete", "response.failed"} & set(rest)
    assert statuses == {"cancelled"}
    assert len(cluster.model.of(prompt)) == 1


def test_a_stream_through_one_replica_follows_a_response_executing_on_another(cluster: Cluster) -> None:
    cluster.model.token_delay = 0.02
    a, b = cluster.replicas[0], cluster.replicas[2]
    prompt = unique("follow response", 40)
    with a.client() as on_a, b.client() as on_b:
        response = on_a.responses.create(model="counted", input=prompt, background=True)
        wait_for(lambda: cluster.model.of(prompt), 5, "the response's generation to start")
        assert on_b.responses.retrieve(response.id).status == "in_progress"
        events = list(on_b.responses.events(response.id, starting_after=0))
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(1, len(events) + 1))
    assert events[0].type == "response.queued"
    assert events[-1].type == "response.completed"
    assert events[-1].response.status == "completed"
    assert next(event.text for event in events if event.type == "response.output_text.done") == f"You said: {prompt}"
    assert len(cluster.model.of(prompt)) == 1


def test_a_response_deleted_through_another_replica_stops_its_generation_within_a_second(cluster: Cluster) -> None:
    cluster.model.token_delay = 0.05
    a, b = cluster.replicas[0], cluster.replicas[1]
    prompt = unique("delete response", 200)
    with a.client() as on_a, b.client() as on_b:
        response = on_a.responses.create(model="counted", input=prompt, background=True)
        wait_for(lambda: cluster.model.of(prompt) and cluster.model.of(prompt)[0].tokens >= 3, 10, "tokens")
        asked = time.monotonic()
        assert on_b.responses.delete(response.id).deleted
        generation = cluster.model.of(prompt)[0]
        cut_at = wait_for(lambda: generation.cut_at, 2, "the engine closing its request")
        with pytest.raises(NotFoundError):
            on_a.responses.retrieve(response.id)
    assert cut_at - asked < 1.0
    assert len(cluster.model.of(prompt)) == 1
