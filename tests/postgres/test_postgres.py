"""The same storage and service on PostgreSQL: migrations, pagination, the one-active-run rule
under concurrency, cascading deletes, and whole runs through the SDK."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
from openai import OpenAI

import sovereign_storage.repository as repository_module
from sovereign_server import ServerConfig
from sovereign_server.gateway import Gateway, GatewayConfig
from sovereign_storage import (
    LATEST_VERSION,
    ActiveRunError,
    NewAssistant,
    NewMessage,
    NewRun,
    NotFoundError,
    PageRequest,
    Repository,
    TextContent,
    migrate,
    open_database,
)
from tests.conftest import ServerThread

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[peewee.Database]:
    db = open_database(postgres_url)
    assert migrate(db) == LATEST_VERSION
    assert migrate(db) == LATEST_VERSION
    yield db
    db.close()


@pytest.fixture
def repo(database: peewee.Database) -> Repository:
    return Repository(database)


def text(value: str) -> NewMessage:
    return NewMessage(role="user", content=(TextContent(value),))


def test_pages_are_stable_when_many_rows_share_a_second(repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository_module, "_now", lambda: 1_700_000_000)
    thread, messages = repo.create_thread({}, {}, [text(str(i)) for i in range(25)])
    ids = [m.id for m in messages]
    walked: list[str] = []
    after = None
    while True:
        page = repo.list_messages(thread.id, PageRequest(limit=7, order="asc", after=after))
        walked += [m.id for m in page.items]
        if not page.has_more:
            break
        after = walked[-1]
    assert walked == ids
    before = repo.list_messages(thread.id, PageRequest(limit=3, order="desc", before=ids[10]))
    assert [m.id for m in before.items] == ids[13:10:-1]


def test_of_concurrent_run_creators_exactly_one_wins(repo: Repository) -> None:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    thread, _ = repo.create_thread({}, {}, [text("hi")])
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait()
        try:
            repo.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
            outcomes.append("created")
        except ActiveRunError:
            outcomes.append("refused")

    workers = [threading.Thread(target=create) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(outcomes) == ["created"] + ["refused"] * 5


def test_deleting_a_thread_deletes_its_messages_runs_and_steps(repo: Repository) -> None:
    assistant = repo.create_assistant(NewAssistant(model="m"))
    thread, _ = repo.create_thread({}, {}, [text("hi")])
    run, _ = repo.create_run(thread.id, NewRun(assistant_id=assistant.id, model="m"))
    repo.open_reply(run)
    repo.delete_thread(thread.id)
    with pytest.raises(NotFoundError):
        repo.get_run(thread.id, run.id)


@pytest.fixture(scope="module")
def sdk(postgres_url: str) -> Iterator[OpenAI]:
    server = ServerThread(ServerConfig(grpc_port=0, metrics_port=0, database=postgres_url)).start()
    try:
        with (
            Gateway(GatewayConfig(grpc_port=server.port, http_port=0)) as gateway,
            OpenAI(base_url=gateway.base_url, api_key="sk-local", max_retries=0) as client,
        ):
            yield client
    finally:
        server.stop()


def test_runs_stream_and_tool_calls_end_to_end(sdk: OpenAI) -> None:
    tool: Any = {"type": "function", "function": {"name": "get_price", "parameters": {"type": "object"}}}
    assistant = sdk.beta.assistants.create(model="builtin", tools=[tool])
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "hello postgres"}])
    events = [
        e.event for e in sdk.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    ]
    assert events[-1] == "thread.run.completed"
    sdk.beta.threads.messages.create(thread.id, role="user", content="get_price please")
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20)
    assert run.status == "requires_action"
    assert run.required_action is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]
    done = sdk.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "1"}], poll_interval_ms=20
    )
    assert done.status == "completed"
    texts = [m.content[0].text.value for m in sdk.beta.threads.messages.list(thread.id, order="asc")]  # type: ignore[union-attr]
    assert texts == ["hello postgres", "You said: hello postgres", "get_price please", "get_price returned: 1"]
    started = time.monotonic()
    assert sdk.beta.threads.delete(thread.id).deleted
    assert time.monotonic() - started < 5


def test_responses_and_conversations_end_to_end(sdk: OpenAI) -> None:
    tool: Any = {"type": "function", "name": "get_price", "parameters": {"type": "object"}}
    conversation = sdk.conversations.create(items=[{"role": "user", "content": "hello postgres"}])
    call = sdk.responses.create(
        model="builtin", input='get_price {"t": 1}', tools=[tool], conversation=conversation.id
    ).output[0]
    assert call.type == "function_call"
    answer = sdk.responses.create(
        model="builtin",
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "1"}],
        conversation=conversation.id,
    )
    assert answer.output_text == "get_price returned: 1"
    kinds = [item.type for item in sdk.conversations.items.list(conversation.id, order="asc")]
    assert kinds == ["message", "message", "function_call", "function_call_output", "message"]
    chained = sdk.responses.create(model="builtin", input="and then?", previous_response_id=answer.id)
    assert chained.output_text == "You said: and then?"
    assert sdk.responses.retrieve(chained.id).status == "completed"
    sdk.responses.delete(chained.id)
    assert sdk.conversations.delete(conversation.id).deleted
