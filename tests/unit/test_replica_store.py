"""What replicas share through the database (`ReplicaStore`), on SQLite and (with `--postgres`) on
PostgreSQL: leases on the database's clock, claims, the event log, recovery of the runs of replicas
gone and of their responses, rate-limit buckets; and the event encoding the log uses."""

from __future__ import annotations

import threading
import time

import peewee
import pytest

from sovereign_server.replicas.events import decode, encode
from sovereign_server.runs.background import UNFINISHED_RESPONSES
from sovereign_server.runs.model import DONE, Event, EventName, MessageDelta, StreamError, ToolCallDelta
from sovereign_storage import (
    FunctionCall,
    LastError,
    MessageStatus,
    NewAssistant,
    NewRun,
    Repository,
    ResponseStatus,
    RunStatus,
    StepStatus,
    SubmitToolOutputs,
    TextContent,
    ToolCalls,
    Usage,
)
from sovereign_storage.replicas import Listener, ReplicaStore, is_shared
from tests.unit.conftest import user_message
from tests.unit.test_storage_responses import response as stored_response

pytestmark = pytest.mark.unit

ERROR = LastError("server_error", "gone")
FAILING = (RunStatus.QUEUED, RunStatus.IN_PROGRESS)
CANCELLING = (RunStatus.CANCELLING,)


@pytest.fixture
def store(db: peewee.Database) -> ReplicaStore:
    return ReplicaStore(db, lease_seconds=0.5)


def started_run(repo: Repository) -> str:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    thread, _ = repo.create_thread({}, {}, [user_message("hi")])
    run, _ = repo.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
    repo.transition_run(run.id, RunStatus.IN_PROGRESS, [RunStatus.QUEUED])
    THREADS[run.id] = thread.id
    return run.id


# Run id -> its thread's id, for the runs `started_run` made.
THREADS: dict[str, str] = {}


def test_a_lease_holds_while_renewed_and_runs_out_without(store: ReplicaStore) -> None:
    store.register("rep_a")
    store.register("rep_b")
    assert store.alive_replicas() == ["rep_a", "rep_b"]
    time.sleep(0.3)
    assert store.renew("rep_a")
    time.sleep(0.3)
    assert store.alive_replicas() == ["rep_a"]
    store.retire("rep_a")
    # A replica taken for gone (its row removed) is registered again by its next renewal.
    assert not store.renew("rep_a")
    assert store.alive_replicas() == ["rep_a"]


def test_each_claim_of_a_run_is_its_next_stretch(store: ReplicaStore, repo: Repository) -> None:
    run_id = started_run(repo)
    store.register("rep_a")
    assert store.claim(run_id, "rep_a") == 1
    assert store.claim(run_id, "rep_b") == 2
    owner = store.owner(run_id)
    assert owner is not None
    assert (owner.replica_id, owner.stretch, owner.alive) == ("rep_b", 2, False)
    store.register("rep_b")
    assert store.owner(run_id).alive  # type: ignore[union-attr]
    assert store.owner("run_unknown") is None


def test_the_event_log_numbers_each_stretch_and_refuses_a_number_twice(store: ReplicaStore, repo: Repository) -> None:
    run_id = started_run(repo)
    store.append_events(run_id, 1, 1, [("thread.run.created", '{"a":1}'), ("done", None)])
    store.append_events(run_id, 2, 1, [("thread.run.queued", None)])
    assert [(e.number, e.name, e.data) for e in store.events(run_id, 1)] == [
        (1, "thread.run.created", '{"a":1}'),
        (2, "done", None),
    ]
    assert [e.number for e in store.events(run_id, 1, after=1)] == [2]
    assert [e.name for e in store.events(run_id, 2)] == ["thread.run.queued"]
    with pytest.raises(peewee.IntegrityError):
        store.append_events(run_id, 1, 2, [("done", None)])


def test_only_the_runs_of_replicas_gone_are_ended_with_what_they_left_open(
    store: ReplicaStore, repo: Repository
) -> None:
    live, gone, unclaimed, stopping = (started_run(repo) for _ in range(4))
    store.register("rep_live")
    store.register("rep_gone")
    store.register("rep_stopping")
    for run_id, replica in ((live, "rep_live"), (gone, "rep_gone"), (stopping, "rep_stopping")):
        store.claim(run_id, replica)
    run = repo.transition_run(gone, RunStatus.IN_PROGRESS, [RunStatus.IN_PROGRESS]).record
    message, step = repo.open_reply(run)
    store.append_events(gone, 1, 1, [("thread.run.created", None)] * 3)
    time.sleep(0.3)
    store.renew("rep_live")
    store.renew("rep_stopping")
    time.sleep(0.3)

    ended = store.end_orphaned_runs(ERROR, failing=FAILING, cancelling=CANCELLING)
    assert sorted(run.run.id for run in ended) == sorted([gone, unclaimed])
    mine = store.end_orphaned_runs(ERROR, failing=FAILING, cancelling=CANCELLING, owner="rep_stopping")
    assert [run.run.id for run in mine] == [stopping]
    assert store.end_orphaned_runs(ERROR, failing=FAILING, cancelling=CANCELLING) == []

    ended_gone = next(run for run in ended if run.run.id == gone)
    assert (ended_gone.run.status, ended_gone.run.last_error) == (RunStatus.FAILED, ERROR)
    assert ended_gone.run.failed_at is not None
    assert [(s.id, s.status) for s in ended_gone.steps] == [(step.id, StepStatus.FAILED)]
    assert [(m.id, m.status) for m in ended_gone.messages] == [(message.id, MessageStatus.INCOMPLETE)]
    assert (ended_gone.stretch, ended_gone.last_number) == (1, 3)
    thread_id = ended_gone.run.thread_id
    assert repo.get_message(thread_id, message.id).incomplete_details.reason == "run_failed"  # type: ignore[union-attr]
    assert repo.get_run(THREADS[live], live).status is RunStatus.IN_PROGRESS


def test_a_cancelling_run_of_a_replica_gone_ends_cancelled(store: ReplicaStore, repo: Repository) -> None:
    run_id = started_run(repo)
    repo.transition_run(run_id, RunStatus.CANCELLING, [RunStatus.IN_PROGRESS])
    store.claim(run_id, "rep_never_registered")
    [ended] = store.end_orphaned_runs(ERROR, failing=FAILING, cancelling=CANCELLING)
    assert (ended.run.status, ended.run.last_error) == (RunStatus.CANCELLED, None)


def test_only_the_unfinished_responses_of_replicas_gone_are_failed(store: ReplicaStore, repo: Repository) -> None:
    store.register("rep_live")
    store.register("rep_gone")
    time.sleep(0.3)
    store.renew("rep_live")
    time.sleep(0.3)
    created = {
        name: (stored_response(status=status), replica_id)
        for name, status, replica_id in (
            ("live", ResponseStatus.IN_PROGRESS, "rep_live"),
            ("gone", ResponseStatus.IN_PROGRESS, "rep_gone"),
            ("queued", ResponseStatus.QUEUED, "rep_never_registered"),
            ("finished", ResponseStatus.COMPLETED, "rep_gone"),
            ("unowned", ResponseStatus.IN_PROGRESS, None),
        )
    }
    for record, replica_id in created.values():
        repo.create_response(record, replica_id=replica_id)
    ids = {name: record.id for name, (record, _) in created.items()}

    failed = store.end_orphaned_responses(ERROR, UNFINISHED_RESPONSES)
    assert sorted(failed) == sorted([ids["gone"], ids["queued"]])
    # A response of no recorded replica only when the caller knows every process that wrote one is gone.
    assert store.end_orphaned_responses(ERROR, UNFINISHED_RESPONSES, unowned=True) == [ids["unowned"]]
    assert store.end_orphaned_responses(ERROR, UNFINISHED_RESPONSES, unowned=True) == []
    statuses = {name: repo.get_response(ids[name]) for name in ids}
    assert {name: record.status for name, record in statuses.items()} == {
        "live": ResponseStatus.IN_PROGRESS,
        "gone": ResponseStatus.FAILED,
        "queued": ResponseStatus.FAILED,
        "finished": ResponseStatus.COMPLETED,
        "unowned": ResponseStatus.FAILED,
    }
    assert statuses["gone"].error == ERROR


def test_token_buckets_refill_over_their_window_and_refuse_when_short(store: ReplicaStore) -> None:
    capacities = {"requests": 2, "tokens": 100}
    first = store.draw("key_a", capacities, window=60, require=["requests"], take={"requests": 1})
    assert first.short is None
    assert first.levels["requests"] == pytest.approx(1, abs=0.01)
    store.draw("key_a", capacities, window=60, require=["requests"], take={"requests": 1})
    refused = store.draw("key_a", capacities, window=60, require=["requests"], take={"requests": 1})
    assert refused.short == "requests"
    assert refused.levels["requests"] < 1
    # Tokens may overdraw; the key then waits for them.
    store.draw("key_a", {"tokens": 100}, window=60, take={"tokens": 130})
    tokens = store.draw("key_a", capacities, window=60, require=["requests", "tokens"])
    assert tokens.levels["tokens"] < 0
    # A short window refills quickly; a changed limit starts a fresh bucket.
    time.sleep(0.2)
    assert store.draw("key_a", capacities, window=0.1, require=["requests"]).short is None
    assert store.draw("key_a", {"requests": 5}, window=60, require=["requests"]).levels["requests"] == 5


def test_work_for_one_replica_at_a_time_is_skipped_while_another_does_it(store: ReplicaStore) -> None:
    if not is_shared(store.database):
        assert store.exclusively("sweep", lambda: 1) == (True, 1)
        return
    inside, release = threading.Event(), threading.Event()
    results: list[tuple[bool, int | None]] = []

    def hold() -> int:
        inside.set()
        release.wait(10)
        return 1

    holder = threading.Thread(target=lambda: results.append(store.exclusively("sweep", hold)))
    holder.start()
    assert inside.wait(10)
    assert store.exclusively("sweep", lambda: 2) == (False, None)
    assert store.exclusively("other", lambda: 3) == (True, 3)
    release.set()
    holder.join()
    assert results == [(True, 1)]
    assert store.exclusively("sweep", lambda: 4) == (True, 4)


def test_notifications_reach_the_listeners_of_their_channel(store: ReplicaStore) -> None:
    if not is_shared(store.database):
        pytest.skip("notifications need PostgreSQL")
    listener = Listener(store.database)
    try:
        listener.listen("sovereign_rep_Ab1")
        store.notify("sovereign_rep_Ab1", "cancel run_1")
        store.notify("sovereign_other", "cancel run_2")
        deadline = time.monotonic() + 5
        received: list[tuple[str, str]] = []
        while not received and time.monotonic() < deadline:
            received += listener.received()
            time.sleep(0.01)
        assert received == [("sovereign_rep_Ab1", "cancel run_1")]
        with pytest.raises(ValueError, match="not a channel name"):
            listener.listen('x"; DROP TABLE runs; --')
    finally:
        listener.close()


def test_events_keep_their_types_through_the_log(repo: Repository) -> None:
    run_id = started_run(repo)
    run = repo.transition_run(
        run_id,
        RunStatus.REQUIRES_ACTION,
        [RunStatus.IN_PROGRESS],
        {"required_action": SubmitToolOutputs((FunctionCall("call_1", "f", "{}"),)), "usage": Usage(3, 4)},
    ).record
    message, step = repo.open_reply(run)
    thread = repo.get_thread(run.thread_id)
    tool_step = repo.update_step(step.id, {"step_details": ToolCalls((FunctionCall("c", "g", '{"a": 1}', "out"),))})
    events = [
        Event(EventName.THREAD_CREATED, thread),
        Event(EventName.RUN_REQUIRES_ACTION, run),
        Event(EventName.MESSAGE_CREATED, message),
        Event(EventName.STEP_CREATED, step),
        Event(EventName.STEP_COMPLETED, tool_step),
        Event(EventName.MESSAGE_DELTA, MessageDelta(message.id, "héllo \u0000 $type", 0)),
        Event(EventName.STEP_DELTA, ToolCallDelta(step.id, 0, "call_1", "f", "{")),
        Event(EventName.ERROR, StreamError("boom")),
        DONE,
    ]
    for event in events:
        assert decode(*encode(event)) == event
    with_metadata = repo.update_run(run.thread_id, run.id, {"metadata": {"$type": "RunRecord", "$dict": "x"}})
    assert decode(*encode(Event(EventName.RUN_COMPLETED, with_metadata))).data == with_metadata
    done = repo.transition_message(
        message.id, MessageStatus.COMPLETED, [MessageStatus.IN_PROGRESS], content=[TextContent("t")]
    )
    assert decode(*encode(Event(EventName.MESSAGE_COMPLETED, done.record))).data == done.record
