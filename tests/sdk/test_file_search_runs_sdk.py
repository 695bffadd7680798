"""`file_search` inside Assistants runs, through the official SDK: the built-in engine calls the
tool when the message names it, the server searches the vector stores of the thread and the
assistant, records a `file_search` tool-call step, feeds the results back, and the answer carries
`file_citation` annotations, streamed to `AssistantEventHandler` too."""

from __future__ import annotations

import io
import time
from typing import Any, Final

import pytest
from openai import AssistantEventHandler, OpenAI
from openai.types.beta.assistant_stream_event import ThreadRunStepCompleted

pytestmark = pytest.mark.sdk

NOTES = b"The return policy allows refunds within thirty days of purchase.\nShipping takes five days.\n"
SEARCH_CONTENT: Final = "step_details.tool_calls[*].file_search.results[*].content"
QUESTION = 'Use file_search to answer: how long do refunds take? {"query": "refund policy days"}'


def _wait_indexed(client: OpenAI, store_id: str) -> None:
    deadline = time.monotonic() + 20
    while client.vector_stores.retrieve(store_id).status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def notes_id(openai_client: OpenAI) -> str:
    file = openai_client.files.create(file=("notes.txt", io.BytesIO(NOTES)), purpose="assistants")
    return file.id


@pytest.fixture(scope="module")
def assistant(openai_client: OpenAI, notes_id: str) -> Any:
    """An assistant whose vector store is made inline from a file (the `vector_stores` helper)."""
    assistant = openai_client.beta.assistants.create(
        model="builtin",
        tools=[{"type": "file_search", "file_search": {"max_num_results": 5}}],
        tool_resources={"file_search": {"vector_stores": [{"file_ids": [notes_id], "metadata": {"k": "v"}}]}},
    )
    store_ids: Any = assistant.tool_resources.file_search.vector_store_ids  # type: ignore[union-attr]
    assert len(store_ids) == 1
    _wait_indexed(openai_client, store_ids[0])
    return assistant


def test_a_run_searches_and_answers_with_citations(openai_client: OpenAI, assistant: Any, notes_id: str) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed"
    assert run.usage is not None

    steps = list(openai_client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc"))
    assert [step.type for step in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert call.type == "file_search"
    results = call.file_search.results  # type: ignore[union-attr]
    assert results is not None
    assert results[0].file_id == notes_id
    assert results[0].file_name == "notes.txt"
    assert results[0].content is None
    with_content = openai_client.beta.threads.runs.steps.retrieve(
        steps[0].id,
        thread_id=thread.id,
        run_id=run.id,
        include=[SEARCH_CONTENT],
    )
    found = with_content.step_details.tool_calls[0].file_search.results  # type: ignore[union-attr]
    assert found is not None
    assert found[0].content is not None
    assert "thirty days" in (found[0].content[0].text or "")

    reply = openai_client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    text = reply.content[0].text  # type: ignore[union-attr]
    assert text.value.startswith("file_search returned: 【0:0†notes.txt】")
    assert "thirty days" in text.value
    citation = text.annotations[0]
    assert citation.type == "file_citation"
    assert citation.file_citation.file_id == notes_id  # type: ignore[union-attr]
    assert text.value[citation.start_index : citation.end_index] == citation.text == "【0:0†notes.txt】"


def test_the_stream_carries_the_search_step_and_the_annotations(
    openai_client: OpenAI, assistant: Any, notes_id: str
) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
    events: list[str] = []
    tool_calls: list[str] = []

    class Handler(AssistantEventHandler):
        def on_event(self, event: Any) -> None:
            events.append(event.event)

        def on_tool_call_created(self, tool_call: Any) -> None:
            tool_calls.append(tool_call.type)

    with openai_client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=Handler()
    ) as stream:
        stream.until_done()
        final = stream.get_final_messages()
    assert tool_calls == ["file_search"]
    assert "thread.run.step.completed" in events
    assert events[-1] == "thread.run.completed"
    annotations = final[-1].content[0].text.annotations  # type: ignore[union-attr]
    assert [a.file_citation.file_id for a in annotations] == [notes_id]  # type: ignore[union-attr]


@pytest.mark.parametrize("include", [[], [SEARCH_CONTENT]], ids=["plain", "with-content"])
def test_a_streamed_run_carries_the_results_text_in_its_steps_when_included(
    openai_client: OpenAI, assistant: Any, include: list[Any]
) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": QUESTION}])
    stream = openai_client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, stream=True, include=include
    )
    completed: list[Any] = [
        event.data for event in stream if isinstance(event, ThreadRunStepCompleted) and event.data.type == "tool_calls"
    ]
    results = completed[0].step_details.tool_calls[0].file_search.results
    assert results
    contents = [result.content for result in results]
    if include:
        assert "thirty days" in contents[0][0].text
    else:
        assert contents == [None] * len(results)


def test_a_reply_that_cites_nothing_gets_the_files_appended(openai_client: OpenAI, notes_id: str) -> None:
    """The thread's own store (made inline), and a tool_choice forcing the search: the built-in
    engine then answers from the tool result, whose markers it repeats."""
    store = openai_client.vector_stores.create(file_ids=[notes_id])
    _wait_indexed(openai_client, store.id)
    assistant = openai_client.beta.assistants.create(model="builtin", tools=[{"type": "file_search"}])
    thread = openai_client.beta.threads.create(
        messages=[{"role": "user", "content": "refunds"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice={"type": "file_search"}, poll_interval_ms=50
    )
    assert run.status == "completed"
    reply = openai_client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    text = reply.content[0].text  # type: ignore[union-attr]
    assert [a.file_citation.file_id for a in text.annotations] == [notes_id]  # type: ignore[union-attr]


def test_a_message_that_names_no_tool_gets_a_plain_answer(openai_client: OpenAI, assistant: Any) -> None:
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed"
    steps = list(openai_client.beta.threads.runs.steps.list(run.id, thread_id=thread.id))
    assert [step.type for step in steps] == ["message_creation"]
    reply = openai_client.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    assert reply.content[0].text.annotations == []  # type: ignore[union-attr]
