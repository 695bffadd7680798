"""The JSON the server renders itself (streams, the non-streamed run) is the JSON the gateway
prints for the same object's message: two renderings, held equal here across every shape."""

from __future__ import annotations

from typing import Any

import pytest

from sovereign_server import convert
from sovereign_server.runs.model import StreamError, ToolCallDelta
from sovereign_storage import (
    FileSearchCall,
    FileSearchResult,
    FunctionCall,
    ImageFileContent,
    ImageUrlContent,
    IncompleteDetails,
    LastError,
    MessageCreation,
    MessageRecord,
    MessageStatus,
    RunRecord,
    RunStatus,
    RunStepRecord,
    StepStatus,
    SubmitToolOutputs,
    TextContent,
    ThreadRecord,
    ToolCalls,
    TruncationStrategy,
    Usage,
)

pytestmark = pytest.mark.unit

CALL = FunctionCall("call_1", "get_price", '{"ticker": "AAPL"}')


def run(**fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "id": "run_1",
        "created_at": 1_700_000_000,
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "status": RunStatus.QUEUED,
        "model": "m",
        "instructions": None,
        "tools": [],
        "metadata": {},
        "required_action": None,
        "last_error": None,
        "expires_at": 1_700_000_600,
        "started_at": None,
        "cancelled_at": None,
        "failed_at": None,
        "completed_at": None,
        "incomplete_details": None,
        "usage": None,
        "temperature": None,
        "top_p": None,
        "max_prompt_tokens": None,
        "max_completion_tokens": None,
        "truncation_strategy": None,
        "tool_choice": None,
        "parallel_tool_calls": None,
        "response_format": None,
    }
    return RunRecord(**(values | fields))


RUNS = [
    run(),
    run(
        status=RunStatus.REQUIRES_ACTION,
        instructions="Be brief.",
        tools=[{"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}],
        metadata={"desk": "fx"},
        required_action=SubmitToolOutputs((CALL,)),
        started_at=1_700_000_001,
        temperature=0.5,
        top_p=0.9,
        max_prompt_tokens=1000,
        max_completion_tokens=300,
        truncation_strategy=TruncationStrategy("last_messages", 3),
        tool_choice={"type": "function", "function": {"name": "get_price"}},
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
    ),
    run(status=RunStatus.FAILED, last_error=LastError("server_error", "x"), failed_at=5, usage=Usage(7, 2)),
    run(status=RunStatus.INCOMPLETE, incomplete_details=IncompleteDetails("max_completion_tokens"), expires_at=None),
    run(status=RunStatus.COMPLETED, completed_at=9, usage=Usage(10, 3), tool_choice="required"),
]

STEPS = [
    RunStepRecord(
        "step_1", 1, "run_1", "thread_1", "asst_1", "message_creation", StepStatus.IN_PROGRESS,
        MessageCreation("msg_1"), None, None, None, None, None, {}, None,
    ),
    RunStepRecord(
        "step_2", 1, "run_1", "thread_1", "asst_1", "tool_calls", StepStatus.COMPLETED,
        ToolCalls((FunctionCall("call_1", "f", "{}", "42"), CALL)), None, None, None, None, 3, {}, Usage(5, 1),
    ),
    RunStepRecord(
        "step_3", 1, "run_1", "thread_1", "asst_1", "tool_calls", StepStatus.FAILED,
        ToolCalls(()), LastError("rate_limit_exceeded", "slow down"), None, None, 4, None, {}, None,
    ),
    RunStepRecord(
        "step_4", 1, "run_1", "thread_1", "asst_1", "tool_calls", StepStatus.COMPLETED,
        ToolCalls((FileSearchCall("fs_1", "refunds", (FileSearchResult("file-1", "notes.txt", 0.5, "thirty days"),)),)),
        None, None, None, None, 5, {}, None,
    ),
]  # fmt: skip

MESSAGES = [
    MessageRecord(
        "msg_1", 1, "thread_1", MessageStatus.COMPLETED, None, 2, None, "user",
        (TextContent("hé"), ImageUrlContent("https://x/c.png", "low"), ImageFileContent("file-1")),
        None, None, [{"file_id": "file-1", "tools": [{"type": "file_search"}]}], {"k": "v"},
    ),
    MessageRecord(
        "msg_2", 1, "thread_1", MessageStatus.INCOMPLETE, IncompleteDetails("max_tokens"), None, 3, "assistant",
        (TextContent("part"),), "asst_1", "run_1", [], {},
    ),
]  # fmt: skip


@pytest.mark.parametrize("record", RUNS, ids=lambda r: str(r.status))
def test_a_run_renders_as_the_gateway_prints_it(record: RunRecord) -> None:
    assert convert.run_json(record) == convert.openai_json(convert.run_message(record))


@pytest.mark.parametrize("search_content", [False, True], ids=["plain", "with-content"])
@pytest.mark.parametrize("record", STEPS, ids=lambda s: s.id)
def test_a_step_renders_as_the_gateway_prints_it(record: RunStepRecord, search_content: bool) -> None:
    rendered = convert.step_json(record, search_content)
    assert rendered == convert.openai_json(convert.step_message(record, search_content))
    if record.id == "step_4":
        result = rendered["step_details"]["tool_calls"][0]["file_search"]["results"][0]
        assert ("content" in result) is search_content


@pytest.mark.parametrize("record", MESSAGES, ids=lambda m: m.id)
def test_a_message_renders_as_the_gateway_prints_it(record: MessageRecord) -> None:
    assert convert.message_json(record) == convert.openai_json(convert.message_message(record))


def test_a_thread_a_step_delta_and_an_error_render_as_the_gateway_prints_them() -> None:
    thread = ThreadRecord("thread_1", 1, {"code_interpreter": {"file_ids": []}}, {"k": "v"})
    assert convert.thread_json(thread) == convert.openai_json(convert.thread_message(thread))
    for delta in (ToolCallDelta("step_1", 0, "call_1", "f", ""), ToolCallDelta("step_1", 0, None, None, '{"a"')):
        assert convert.step_delta_json(delta) == convert.openai_json(convert.step_delta(delta))
    error = StreamError("The server had an error while processing the run.")
    assert convert.error_json(error) == convert.openai_json(convert.error_object(error))
