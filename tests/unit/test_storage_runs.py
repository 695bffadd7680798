"""Behaviour of the storage layer for runs and run steps, against a real SQLite file."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import peewee
import pytest

from sovereign_storage import (
    ACTIVE_RUN_STATUSES,
    LATEST_VERSION,
    TERMINAL_RUN_STATUSES,
    ActiveRunError,
    FunctionCall,
    IncompleteDetails,
    InvalidCursorError,
    LastError,
    MessageCreation,
    MessageRecord,
    MessageStatus,
    NewMessage,
    NewRun,
    NewStep,
    NotFoundError,
    PageRequest,
    Repository,
    RunRecord,
    RunStatus,
    StepStatus,
    StorageError,
    SubmitToolOutputs,
    TextContent,
    ToolCalls,
    Transition,
    TruncationStrategy,
    Usage,
    migrate,
    open_database,
)
from sovereign_storage.models import Run, RunStep
from tests.unit.conftest import sql, user_message

pytestmark = pytest.mark.unit

# What the run layer's table passes: a run waiting for the client (or for a worker) expires.
EXPIRING = (RunStatus.REQUIRES_ACTION, RunStatus.QUEUED)


def end_interrupted(repo: Repository, error: LastError) -> list[str]:
    return repo.end_interrupted_runs(
        error, failing=[RunStatus.QUEUED, RunStatus.IN_PROGRESS], cancelling=[RunStatus.CANCELLING]
    )


def text_of(message: MessageRecord) -> str:
    part = message.content[0]
    assert isinstance(part, TextContent)
    return part.value


def new_run(**kwargs: Any) -> NewRun:
    return NewRun(assistant_id=kwargs.pop("assistant_id", "asst_a"), model=kwargs.pop("model", "llama"), **kwargs)


def set_status(repo: Repository, run: RunRecord, status: str) -> RunRecord:
    """Puts a run in `status` whatever its current one (the run layer's table is not under test here)."""
    changed = repo.transition_run(run.id, RunStatus(status), list(RunStatus))
    assert changed.applied
    return changed.record


def finish(repo: Repository, run: RunRecord, status: str = "completed") -> None:
    set_status(repo, run, status)


def new_step(run: RunRecord, **kwargs: Any) -> NewStep:
    return NewStep(
        run_id=run.id,
        thread_id=run.thread_id,
        assistant_id=run.assistant_id,
        type=kwargs.pop("type", "message_creation"),
        step_details=kwargs.pop("step_details", MessageCreation("m")),
        **kwargs,
    )


# Creating runs


def test_a_run_is_stored_queued_after_its_additional_messages(repo: Repository, frozen_clock: Any) -> None:
    frozen_clock([900, 1000])
    thread, (earlier,) = repo.create_thread({}, {}, [user_message("earlier")])
    run, added = repo.create_run(
        thread.id,
        new_run(
            instructions="Be brief.",
            tools=[{"type": "function", "function": {"name": "f"}}],
            metadata={"k": "v"},
            temperature=0.2,
            top_p=0.9,
            max_prompt_tokens=500,
            max_completion_tokens=100,
            truncation_strategy=TruncationStrategy("last_messages", 3),
            tool_choice="required",
            parallel_tool_calls=False,
            response_format={"type": "json_object"},
        ),
        additional_messages=[user_message("one"), user_message("two")],
        expires_in=60,
    )

    assert run.id.startswith("run_")
    assert (run.thread_id, run.assistant_id, run.status, run.model, run.instructions) == (
        thread.id,
        "asst_a",
        "queued",
        "llama",
        "Be brief.",
    )
    assert (run.created_at, run.expires_at) == (1000, 1060)
    assert (run.tools, run.metadata, run.temperature, run.top_p) == (
        [{"type": "function", "function": {"name": "f"}}],
        {"k": "v"},
        0.2,
        0.9,
    )
    assert (run.max_prompt_tokens, run.max_completion_tokens, run.truncation_strategy) == (
        500,
        100,
        TruncationStrategy("last_messages", 3),
    )
    assert (run.tool_choice, run.parallel_tool_calls, run.response_format) == (
        "required",
        False,
        {"type": "json_object"},
    )
    assert (run.started_at, run.completed_at, run.required_action, run.last_error, run.usage) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert repo.get_run(thread.id, run.id) == run

    assert [text_of(m) for m in added] == ["one", "two"]
    assert all(m.thread_id == thread.id and m.created_at == 1000 for m in added)
    assert repo.thread_messages(thread.id) == [earlier, *added]


def test_the_default_expiry_is_ten_minutes_and_a_run_may_come_without_messages(
    repo: Repository, frozen_clock: Any
) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    frozen_clock([50])
    run, added = repo.create_run(thread.id, new_run())
    assert added == []
    assert run.expires_at == 650
    assert (run.tool_choice, run.parallel_tool_calls, run.response_format, run.tools) == (None, True, None, [])


def test_a_run_needs_an_existing_thread(repo: Repository) -> None:
    with pytest.raises(NotFoundError, match=r"^No thread found with id 'thread_nope'\.$"):
        repo.create_run("thread_nope", new_run(), [user_message("lost")])
    assert Run.select().count() == 0


@pytest.mark.parametrize("status", ACTIVE_RUN_STATUSES)
def test_a_thread_with_an_active_run_refuses_another(repo: Repository, status: str) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    first, _ = repo.create_run(thread.id, new_run())
    set_status(repo, first, status)

    with pytest.raises(ActiveRunError) as refused:
        repo.create_run(thread.id, new_run(), [user_message("not stored")])

    assert str(refused.value) == f"Thread {thread.id} already has an active run {first.id}."
    assert (refused.value.thread_id, refused.value.run_id) == (thread.id, first.id)
    assert isinstance(refused.value, StorageError)
    assert repo.thread_messages(thread.id) == []
    assert [r.id for r in repo.list_runs(thread.id, PageRequest()).items] == [first.id]
    with pytest.raises(ActiveRunError):
        repo.create_message(thread.id, user_message("busy"))


@pytest.mark.parametrize("status", TERMINAL_RUN_STATUSES)
def test_a_new_run_may_start_once_the_previous_one_ended(repo: Repository, status: str) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    first, _ = repo.create_run(thread.id, new_run())
    finish(repo, first, status)
    second, _ = repo.create_run(thread.id, new_run())
    assert repo.active_run(thread.id) == second
    assert second.id != first.id


def test_runs_on_other_threads_do_not_block_a_thread(repo: Repository) -> None:
    busy, _ = repo.create_thread({}, {}, [])
    idle, _ = repo.create_thread({}, {}, [])
    repo.create_run(busy.id, new_run())
    run, _ = repo.create_run(idle.id, new_run())
    assert repo.active_run(idle.id) == run
    repo.create_message(busy.id, user_message("x"), allow_active_run=True)


def test_of_many_threads_racing_to_start_a_run_on_one_thread_exactly_one_wins(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    workers = 8
    start = threading.Barrier(workers)
    won: list[RunRecord] = []
    refused: list[ActiveRunError] = []
    unexpected: list[BaseException] = []

    def race(worker: int) -> None:
        try:
            start.wait()
            run, _ = repo.create_run(thread.id, new_run(), [user_message(f"from {worker}")])
            won.append(run)
        except ActiveRunError as error:
            refused.append(error)
        except BaseException as error:  # collected and asserted on below
            unexpected.append(error)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(workers)]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join()

    assert unexpected == []
    assert len(won) == 1
    assert len(refused) == workers - 1
    assert all(error.run_id == won[0].id for error in refused)
    assert [r.id for r in repo.list_runs(thread.id, PageRequest()).items] == [won[0].id]
    assert len(repo.thread_messages(thread.id)) == 1  # the refused creators stored no message


def test_a_thread_and_its_run_are_created_together(repo: Repository, frozen_clock: Any) -> None:
    frozen_clock([70])
    thread, run = repo.create_thread_and_run(
        {"code_interpreter": {"file_ids": []}}, {"t": "1"}, [user_message("a"), user_message("b")], new_run()
    )
    assert (thread.tool_resources, thread.metadata, thread.created_at) == (
        {"code_interpreter": {"file_ids": []}},
        {"t": "1"},
        70,
    )
    assert (run.thread_id, run.status, run.expires_at) == (thread.id, "queued", 670)
    assert [text_of(m) for m in repo.thread_messages(thread.id)] == ["a", "b"]
    assert repo.active_run(thread.id) == run
    _, other = repo.create_thread_and_run({}, {}, [], new_run(), expires_in=5)
    assert other.expires_at == 75


# Reading and listing runs


def test_runs_are_only_found_through_their_own_existing_thread(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    other, _ = repo.create_thread({}, {}, [])
    run, _ = repo.create_run(thread.id, new_run())

    with pytest.raises(NotFoundError, match=r"^No thread found with id 'thread_missing'\.$"):
        repo.get_run("thread_missing", run.id)
    with pytest.raises(NotFoundError, match=rf"^No run found with id '{run.id}'\.$") as foreign:
        repo.get_run(other.id, run.id)
    assert (foreign.value.kind, foreign.value.id) == ("run", run.id)
    with pytest.raises(NotFoundError, match="No run found"):
        repo.get_run(thread.id, "run_missing")
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.list_runs("thread_missing", PageRequest())
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.active_run("thread_missing")
    assert repo.active_run(other.id) is None


def test_runs_are_listed_page_by_page_newest_first(repo: Repository, frozen_clock: Any) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    # Equal timestamps: the order then follows creation.
    frozen_clock([10, 20, 20, 20, 30])
    runs = []
    for _ in range(5):
        run, _ = repo.create_run(thread.id, new_run())
        finish(repo, run)
        runs.append(run.id)

    first = repo.list_runs(thread.id, PageRequest(limit=2))
    assert [r.id for r in first.items] == [runs[4], runs[3]]
    assert first.has_more
    second = repo.list_runs(thread.id, PageRequest(limit=2, after=runs[3]))
    assert [r.id for r in second.items] == [runs[2], runs[1]]
    assert second.has_more
    last = repo.list_runs(thread.id, PageRequest(limit=2, after=runs[1]))
    assert ([r.id for r in last.items], last.has_more) == ([runs[0]], False)

    asc = repo.list_runs(thread.id, PageRequest(order="asc", limit=2, before=runs[3]))
    assert ([r.id for r in asc.items], asc.has_more) == ([runs[1], runs[2]], True)
    bounded = repo.list_runs(thread.id, PageRequest(order="asc", after=runs[0], before=runs[4]))
    assert [r.id for r in bounded.items] == runs[1:4]


def test_a_run_cursor_must_name_a_run_of_the_same_thread(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    other, _ = repo.create_thread({}, {}, [])
    foreign, _ = repo.create_run(other.id, new_run())
    with pytest.raises(InvalidCursorError) as after:
        repo.list_runs(thread.id, PageRequest(after="run_unknown"))
    assert (after.value.param, after.value.value) == ("after", "run_unknown")
    with pytest.raises(InvalidCursorError) as before:
        repo.list_runs(thread.id, PageRequest(before=foreign.id))
    assert (before.value.param, before.value.value) == ("before", foreign.id)


@pytest.mark.sqlite_only
def test_the_active_run_lookup_uses_the_thread_status_index(
    repo: Repository, db: peewee.Database, caplog: pytest.LogCaptureFixture
) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        repo.active_run(thread.id)
    queries: list[tuple[str, list[Any]]] = [
        r.msg for r in caplog.records if isinstance(r.msg, tuple) and 'FROM "runs"' in r.msg[0]
    ]
    assert len(queries) == 1
    query, params = queries[0]
    plan = " | ".join(row[-1] for row in sql(db, "EXPLAIN QUERY PLAN " + query, params))
    assert "runs_thread_id_status" in plan, plan


# Updating runs


def test_a_run_update_applies_the_given_fields_but_never_the_status(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    run, _ = repo.create_run(thread.id, new_run())
    updated = repo.update_run(thread.id, run.id, {"metadata": {"k": "v"}, "usage": Usage(1, 2)})
    assert (updated.status, updated.metadata, updated.usage) == ("queued", {"k": "v"}, Usage(1, 2))
    assert updated.model == run.model
    assert repo.get_run(thread.id, run.id) == updated
    assert repo.update_run(thread.id, run.id, {}) == updated

    with pytest.raises(ValueError, match="thread_id"):
        repo.update_run(thread.id, run.id, {"thread_id": "thread_x"})
    with pytest.raises(ValueError, match="status"):
        repo.update_run(thread.id, run.id, {"status": "failed"})
    with pytest.raises(NotFoundError, match=r"^No run found with id 'run_missing'\.$"):
        repo.update_run(thread.id, "run_missing", {"metadata": {}})
    with pytest.raises(NotFoundError):
        repo.transition_run("run_missing", RunStatus.FAILED, [RunStatus.QUEUED])


def test_a_transition_applies_only_from_the_given_statuses(repo: Repository, frozen_clock: Any) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    frozen_clock([5, 7, 9, 11])
    run, _ = repo.create_run(thread.id, new_run())

    started = repo.transition_run(run.id, RunStatus.IN_PROGRESS, [RunStatus.QUEUED])
    assert started.applied
    assert (started.record.status, started.record.started_at) == ("in_progress", 7)

    action = SubmitToolOutputs(())
    waiting = repo.transition_run(
        run.id, RunStatus.REQUIRES_ACTION, [RunStatus.IN_PROGRESS], {"required_action": action}
    )
    assert (waiting.applied, waiting.record.required_action) == (True, action)
    cancelling = repo.transition_run(run.id, RunStatus.CANCELLING, ACTIVE_RUN_STATUSES, {"required_action": None})
    assert (cancelling.applied, cancelling.record.status, cancelling.record.required_action) == (
        True,
        "cancelling",
        None,
    )

    # The executor's late change loses against the cancellation: nothing changes, and it is told
    # the run as it is.
    late = repo.transition_run(run.id, RunStatus.COMPLETED, [RunStatus.IN_PROGRESS], {"usage": Usage(1, 1)})
    assert (late.applied, late.record) == (False, cancelling.record)
    assert repo.get_run(thread.id, run.id) == cancelling.record
    assert not repo.transition_run(run.id, RunStatus.FAILED, []).applied

    # Entering in_progress again keeps the first start; ending stamps its own time.
    cancelled = repo.transition_run(run.id, RunStatus.CANCELLED, [RunStatus.CANCELLING])
    assert (cancelled.record.started_at, cancelled.record.cancelled_at, cancelled.record.completed_at) == (7, 11, None)


def test_a_compare_and_set_race_has_a_single_winner(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    run, _ = repo.create_run(thread.id, new_run())
    workers = 6
    start = threading.Barrier(workers)
    results: list[Transition[RunRecord]] = []
    unexpected: list[BaseException] = []

    def transition(worker: int) -> None:
        try:
            start.wait()
            results.append(repo.transition_run(run.id, RunStatus.IN_PROGRESS, [RunStatus.QUEUED]))
        except BaseException as error:  # collected and asserted on below
            unexpected.append(error)

    threads = [threading.Thread(target=transition, args=(n,)) for n in range(workers)]
    for worker in threads:
        worker.start()
    for worker in threads:
        worker.join()

    assert unexpected == []
    winners = [r for r in results if r.applied]
    assert len(winners) == 1
    assert all(r.record.status == "in_progress" for r in results)
    assert repo.get_run(thread.id, run.id) == winners[0].record


# Messages during a run


def test_a_busy_thread_refuses_messages_except_from_its_run(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    run, _ = repo.create_run(thread.id, new_run())

    with pytest.raises(ActiveRunError, match=rf"^Thread {thread.id} already has an active run {run.id}\.$"):
        repo.create_message(thread.id, user_message("interrupting"))
    reply = repo.create_message(
        thread.id,
        NewMessage(
            role="assistant", content=(), status=MessageStatus.IN_PROGRESS, assistant_id="asst_a", run_id=run.id
        ),
        allow_active_run=True,
    )
    assert (reply.run_id, reply.status, reply.completed_at) == (run.id, "in_progress", None)
    assert repo.thread_messages(thread.id) == [reply]
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.create_message("thread_missing", user_message("x"), allow_active_run=True)

    finish(repo, run)
    assert repo.create_message(thread.id, user_message("after")).status == "completed"


def test_a_reply_grows_then_ends_completed_or_incomplete_with_its_stamp(repo: Repository, frozen_clock: Any) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    frozen_clock([100, 105, 110, 120])
    growing = NewMessage(role="assistant", content=(), status=MessageStatus.IN_PROGRESS)
    streaming = repo.create_message(thread.id, growing)
    cut = repo.create_message(thread.id, growing)
    in_progress = [MessageStatus.IN_PROGRESS]

    repo.update_growing_messages({streaming.id: (TextContent("Hel"),), cut.id: (TextContent("Pa"),)})
    partial = repo.get_message(thread.id, streaming.id)
    assert (partial.content, partial.status, partial.completed_at) == ((TextContent("Hel"),), "in_progress", None)
    done = repo.transition_message(streaming.id, MessageStatus.COMPLETED, in_progress, content=(TextContent("Hello"),))
    assert done.applied
    assert (done.record.content, done.record.status, done.record.completed_at, done.record.incomplete_at) == (
        (TextContent("Hello"),),
        "completed",
        110,
        None,
    )
    assert repo.get_message(thread.id, streaming.id) == done.record
    # A late snapshot of a finished reply does not overwrite its final text.
    repo.update_growing_messages({streaming.id: (TextContent("Hel"),)})
    assert repo.get_message(thread.id, streaming.id) == done.record

    stopped = repo.transition_message(
        cut.id,
        MessageStatus.INCOMPLETE,
        in_progress,
        content=(TextContent("Part"),),
        incomplete_details=IncompleteDetails("max_tokens"),
    ).record
    assert (stopped.status, stopped.incomplete_at, stopped.incomplete_details, stopped.completed_at) == (
        "incomplete",
        120,
        IncompleteDetails("max_tokens"),
        None,
    )
    assert not repo.transition_message(cut.id, MessageStatus.COMPLETED, in_progress).applied
    with pytest.raises(NotFoundError, match=r"^No message found with id 'msg_missing'\.$"):
        repo.transition_message("msg_missing", MessageStatus.COMPLETED, in_progress)


def test_thread_messages_come_oldest_first_and_the_newest_items_newest_first(
    repo: Repository, frozen_clock: Any
) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    other, _ = repo.create_thread({}, {}, [user_message("elsewhere")])
    # Out-of-order and equal timestamps: the order is (created_at, creation).
    frozen_clock([5, 3, 5, 5, 9])
    created = [repo.create_message(thread.id, user_message(str(i))) for i in range(5)]
    expected = ["1", "0", "2", "3", "4"]

    assert [text_of(m) for m in repo.thread_messages(thread.id)] == expected
    assert [text_of(m) for m in repo.newest_items(thread.id, 3)] == expected[:-4:-1]
    assert [text_of(m) for m in repo.newest_items(thread.id, 1)] == ["4"]
    assert repo.newest_items(thread.id, 0) == []
    assert len(repo.newest_items(thread.id, 50)) == len(created)
    assert [text_of(m) for m in repo.thread_messages(other.id)] == ["elsewhere"]
    with pytest.raises(ValueError, match="count"):
        repo.newest_items(thread.id, -1)
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.thread_messages("thread_missing")


# Run steps


def test_a_step_is_created_read_updated_and_listed(repo: Repository, frozen_clock: Any) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    frozen_clock([40])
    run, _ = repo.create_run(thread.id, new_run())
    step = repo.create_step(new_step(run))
    assert step.id.startswith("step_")
    assert (step.run_id, step.thread_id, step.assistant_id, step.type, step.status) == (
        run.id,
        thread.id,
        "asst_a",
        "message_creation",
        "in_progress",
    )
    assert (step.created_at, step.completed_at, step.last_error, step.metadata, step.usage) == (
        40,
        None,
        None,
        {},
        None,
    )
    assert repo.get_step(thread.id, run.id, step.id) == step

    details = ToolCalls((FunctionCall("call_1", "f", "{}"),))
    updated = repo.update_step(step.id, {"step_details": details, "usage": Usage(1, 2)})
    assert (updated.status, updated.step_details, updated.usage) == ("in_progress", details, Usage(1, 2))
    assert repo.get_step(thread.id, run.id, step.id) == updated
    assert repo.update_step(step.id, {}) == updated
    frozen_clock([45])
    completed = repo.transition_step(step.id, StepStatus.COMPLETED, [StepStatus.IN_PROGRESS])
    assert (completed.applied, completed.record.status, completed.record.completed_at) == (True, "completed", 45)
    assert not repo.transition_step(step.id, StepStatus.FAILED, [StepStatus.IN_PROGRESS]).applied
    assert repo.get_step(thread.id, run.id, step.id) == completed.record

    frozen_clock([40])
    done = repo.create_step(new_step(run, type="tool_calls", step_details=details, status=StepStatus.COMPLETED))
    assert (done.type, done.status, done.completed_at) == ("tool_calls", "completed", 40)
    assert [s.id for s in repo.list_steps(thread.id, run.id, PageRequest()).items] == [done.id, step.id]

    with pytest.raises(ValueError, match="run_id"):
        repo.update_step(step.id, {"run_id": "run_x"})
    with pytest.raises(ValueError, match="status"):
        repo.update_step(step.id, {"status": "failed"})
    with pytest.raises(NotFoundError, match=r"^No step found with id 'step_missing'\.$"):
        repo.update_step("step_missing", {})
    with pytest.raises(NotFoundError, match=r"^No run found with id 'run_missing'\.$"):
        repo.create_step(NewStep("run_missing", thread.id, "asst_a", "message_creation", MessageCreation("m")))


def test_steps_are_only_found_through_their_own_thread_and_run(repo: Repository) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    run, _ = repo.create_run(thread.id, new_run())
    step = repo.create_step(new_step(run))
    finish(repo, run)
    other_run, _ = repo.create_run(thread.id, new_run())
    other_thread, _ = repo.create_thread({}, {}, [])

    with pytest.raises(NotFoundError, match="No thread found"):
        repo.get_step("thread_missing", run.id, step.id)
    with pytest.raises(NotFoundError, match="No run found"):
        repo.get_step(other_thread.id, run.id, step.id)
    with pytest.raises(NotFoundError, match=rf"^No step found with id '{step.id}'\.$"):
        repo.get_step(thread.id, other_run.id, step.id)
    with pytest.raises(NotFoundError, match="No thread found"):
        repo.list_steps("thread_missing", run.id, PageRequest())
    with pytest.raises(NotFoundError, match="No run found"):
        repo.list_steps(other_thread.id, run.id, PageRequest())
    assert repo.list_steps(thread.id, other_run.id, PageRequest()).items == []


def test_steps_are_listed_page_by_page(repo: Repository, frozen_clock: Any) -> None:
    thread, _ = repo.create_thread({}, {}, [])
    run, _ = repo.create_run(thread.id, new_run())
    other, _ = repo.create_thread({}, {}, [])
    other_run, _ = repo.create_run(other.id, new_run())
    foreign = repo.create_step(new_step(other_run))
    frozen_clock([3, 3, 1, 3, 8])
    steps = [repo.create_step(new_step(run)).id for _ in range(5)]
    expected_asc = [steps[2], steps[0], steps[1], steps[3], steps[4]]

    page = repo.list_steps(thread.id, run.id, PageRequest(order="asc", limit=2))
    assert ([s.id for s in page.items], page.has_more) == (expected_asc[:2], True)
    rest = repo.list_steps(thread.id, run.id, PageRequest(order="asc", limit=10, after=expected_asc[1]))
    assert ([s.id for s in rest.items], rest.has_more) == (expected_asc[2:], False)
    newest = repo.list_steps(thread.id, run.id, PageRequest(limit=2, before=expected_asc[2]))
    assert [s.id for s in newest.items] == expected_asc[::-1][:2]
    with pytest.raises(InvalidCursorError) as cursor:
        repo.list_steps(thread.id, run.id, PageRequest(after=foreign.id))
    assert (cursor.value.param, cursor.value.value) == ("after", foreign.id)


# Recovery and expiry


def test_interrupted_runs_fail_or_cancel_with_their_steps_and_partial_messages(
    repo: Repository, frozen_clock: Any
) -> None:
    def run_with_work(status: str) -> tuple[RunRecord, str, str, str, str]:
        thread, _ = repo.create_thread({}, {}, [])
        run, (question,) = repo.create_run(thread.id, new_run(), [user_message("q")])
        done_step = repo.create_step(new_step(run, status=StepStatus.COMPLETED))
        open_step = repo.create_step(new_step(run))
        reply = repo.create_message(
            thread.id,
            NewMessage(
                role="assistant", content=(TextContent("par"),), status=MessageStatus.IN_PROGRESS, run_id=run.id
            ),
            allow_active_run=True,
        )
        set_status(repo, run, status)
        return run, question.id, done_step.id, open_step.id, reply.id

    frozen_clock([10])
    queued, *_ = run_with_work("queued")
    running, question, done_step, open_step, reply = run_with_work("in_progress")
    cancelling, _, _, cancel_step, cancel_reply = run_with_work("cancelling")
    waiting, _, _, waiting_step, waiting_reply = run_with_work("requires_action")
    completed, _, _, completed_step, completed_reply = run_with_work("completed")

    frozen_clock([99])
    error = LastError("server_error", "The server restarted while the run was in progress.")
    ended = end_interrupted(repo, error)

    assert sorted(ended) == sorted([queued.id, running.id, cancelling.id])

    failed = repo.get_run(running.thread_id, running.id)
    assert (failed.status, failed.failed_at, failed.last_error, failed.cancelled_at) == ("failed", 99, error, None)
    assert repo.get_run(queued.thread_id, queued.id).status == "failed"
    failed_step = repo.get_step(running.thread_id, running.id, open_step)
    assert (failed_step.status, failed_step.failed_at, failed_step.last_error) == ("failed", 99, error)
    assert repo.get_step(running.thread_id, running.id, done_step).status == "completed"
    partial = repo.get_message(running.thread_id, reply)
    assert (partial.status, partial.incomplete_at, partial.incomplete_details, partial.content) == (
        "incomplete",
        99,
        IncompleteDetails("run_failed"),
        (TextContent("par"),),
    )
    assert repo.get_message(running.thread_id, question).status == "completed"

    cancelled = repo.get_run(cancelling.thread_id, cancelling.id)
    assert (cancelled.status, cancelled.cancelled_at, cancelled.failed_at, cancelled.last_error) == (
        "cancelled",
        99,
        None,
        None,
    )
    cancelled_step = repo.get_step(cancelling.thread_id, cancelling.id, cancel_step)
    assert (cancelled_step.status, cancelled_step.cancelled_at, cancelled_step.failed_at) == ("cancelled", 99, None)
    cancelled_reply = repo.get_message(cancelling.thread_id, cancel_reply)
    assert (cancelled_reply.status, cancelled_reply.incomplete_details) == (
        "incomplete",
        IncompleteDetails("run_cancelled"),
    )

    # Runs waiting for the client, and finished ones, are left alone.
    for untouched, step_id, reply_id in (
        (waiting, waiting_step, waiting_reply),
        (completed, completed_step, completed_reply),
    ):
        assert repo.get_run(untouched.thread_id, untouched.id).failed_at is None
        assert repo.get_step(untouched.thread_id, untouched.id, step_id).status == "in_progress"
        assert repo.get_message(untouched.thread_id, reply_id).status == "in_progress"
    assert repo.get_run(waiting.thread_id, waiting.id).status == "requires_action"
    assert repo.get_run(completed.thread_id, completed.id).status == "completed"

    # The threads are free again, and a second pass finds nothing.
    repo.create_run(running.thread_id, new_run())
    assert end_interrupted(repo, error) != []
    assert end_interrupted(repo, error) == []


def test_waiting_runs_expire_with_their_steps(repo: Repository, frozen_clock: Any) -> None:
    frozen_clock([100])

    def run_in(status: str, expires_in: int) -> tuple[RunRecord, str]:
        thread, _ = repo.create_thread({}, {}, [])
        run, _ = repo.create_run(thread.id, new_run(), expires_in=expires_in)
        step = repo.create_step(new_step(run, type="tool_calls", step_details=ToolCalls()))
        repo.transition_run(run.id, RunStatus(status), list(RunStatus), {"required_action": SubmitToolOutputs(())})
        return run, step.id

    due, due_step = run_in("requires_action", 10)
    queued, _ = run_in("queued", 5)
    later, later_step = run_in("requires_action", 60)
    running, running_step = run_in("in_progress", 1)

    expired = repo.expire_runs(110, EXPIRING)

    assert [r.id for r in expired] == [due.id, queued.id]
    assert all(r.status == "expired" and r.required_action is None for r in expired)
    assert expired[0] == repo.get_run(due.thread_id, due.id)
    step = repo.get_step(due.thread_id, due.id, due_step)
    assert (step.status, step.expired_at) == ("expired", 110)
    assert repo.get_run(later.thread_id, later.id).status == "requires_action"
    assert repo.get_step(later.thread_id, later.id, later_step).status == "in_progress"
    assert repo.get_run(running.thread_id, running.id).status == "in_progress"
    assert repo.get_step(running.thread_id, running.id, running_step).status == "in_progress"
    assert repo.active_run(due.thread_id) is None
    assert repo.expire_runs(110, EXPIRING) == []
    assert [r.id for r in repo.expire_runs(160, EXPIRING)] == [later.id]


# Deletion and schema


def test_deleting_a_thread_removes_its_runs_and_steps(repo: Repository) -> None:
    doomed, _ = repo.create_thread({}, {}, [])
    kept, _ = repo.create_thread({}, {}, [])
    doomed_run, _ = repo.create_run(doomed.id, new_run(), [user_message("bye")])
    repo.create_step(new_step(doomed_run))
    kept_run, _ = repo.create_run(kept.id, new_run())
    kept_step = repo.create_step(new_step(kept_run))

    repo.delete_thread(doomed.id)

    assert [r.id for r in Run.select()] == [kept_run.id]
    assert [s.id for s in RunStep.select()] == [kept_step.id]
    with pytest.raises(NotFoundError):
        repo.get_run(doomed.id, doomed_run.id)
    assert repo.list_steps(kept.id, kept_run.id, PageRequest()).items == [kept_step]


@pytest.mark.sqlite_only
def test_upgrading_adds_the_run_indexes_and_keeps_runs(tmp_path: Path) -> None:
    database = open_database(str(tmp_path / "old.sqlite3"))
    assert migrate(database, target=3) == 3
    assert "runs_thread_id_status" not in {i.name for i in database.get_indexes("runs")}
    sql(database, "INSERT INTO threads (id, created_at, tool_resources, metadata) VALUES ('thread_old', 1, '{}', '{}')")
    sql(
        database,
        "INSERT INTO runs (id, thread_id, assistant_id, created_at, status, model, tools, metadata, expires_at)"
        " VALUES ('run_old', 'thread_old', 'asst_a', 1, 'requires_action', 'm', '[]', '{}', 601)",
    )

    assert migrate(database) == LATEST_VERSION >= 4
    assert migrate(database) == LATEST_VERSION

    indexes = {i.name: tuple(i.columns) for i in database.get_indexes("runs")}
    assert indexes["runs_thread_id_status"] == ("thread_id", "status")
    assert indexes["runs_status_expires_at"] == ("status", "expires_at")
    repo = Repository(database)
    active = repo.active_run("thread_old")
    assert active is not None
    assert (active.id, active.status, active.expires_at) == ("run_old", "requires_action", 601)
    with pytest.raises(ActiveRunError):
        repo.create_run("thread_old", new_run())
    assert [r.id for r in repo.expire_runs(601, EXPIRING)] == ["run_old"]
    database.close()
