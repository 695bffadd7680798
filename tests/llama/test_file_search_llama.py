"""Files and search against real llama.cpp servers on the tiny model: a second `llama-server
--embeddings` embeds the chunks (hybrid search: full-text fused with vector similarity), and runs on
the OpenAI-compatible engine search before generating (`prefetch`, for a model without tool calls),
the answer citing the file it was given."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI

from sovereign_server.gateway import Gateway
from sovereign_storage import open_database
from tests.conftest import ServerThread
from tests.llama.conftest import LlamaServer, start_llama_server
from tests.llama.tiny_model import TinyModelAnswers

pytestmark = pytest.mark.llama

NOTES = b"The return policy allows refunds within thirty days of purchase."
PRICES = b"The premium plan costs forty dollars a month."
# Small chunks: the tiny model reads one byte a token, and embeds a chunk in one batch.
SMALL_CHUNKS = {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 20}}


@pytest.fixture(scope="module")
def embeddings_server(
    tiny_model: tuple[Path, TinyModelAnswers], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    path, answers = tiny_model
    log = tmp_path_factory.mktemp("llama-embeddings") / "llama-server.log"
    server = start_llama_server(path, log, answers, "--embeddings", "--pooling", "mean", "-b", "2048", "-ub", "2048")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_options(llama_server: LlamaServer, embeddings_server: LlamaServer) -> dict[str, Any]:
    return {
        "engine": "openai",
        "engine_url": llama_server.base_url,
        "embeddings_url": embeddings_server.base_url,
        "embeddings_model": "tiny",
        "file_search_mode": "prefetch",
    }


@pytest.fixture(scope="module")
def sdk(gateway: Gateway) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.base_url, api_key="sk-local", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def store(sdk: OpenAI) -> Any:
    ids = [
        sdk.files.create(file=(name, io.BytesIO(data)), purpose="assistants").id
        for name, data in (("notes.txt", NOTES), ("prices.txt", PRICES))
    ]
    store = sdk.vector_stores.create(file_ids=ids, chunking_strategy=SMALL_CHUNKS)  # type: ignore[arg-type]
    deadline = time.monotonic() + 60
    while store.status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.1)
        store = sdk.vector_stores.retrieve(store.id)
    assert (store.status, store.file_counts.completed) == ("completed", 2)
    return store


def test_chunks_are_embedded_and_search_is_hybrid(sdk: OpenAI, store: Any, grpc_server: ServerThread) -> None:
    assert grpc_server.server is not None
    assert grpc_server.server.files is not None
    assert grpc_server.server.files.search_service.hybrid
    # Plain SQL: models are bound process-wide, to the server's database.
    database = open_database(grpc_server.config.database)
    try:
        query = f"SELECT length(embedding) FROM file_chunks WHERE vector_store_id = {database.param}"
        execute: Any = database.execute_sql  # untyped in peewee's stubs
        sizes = [size for (size,) in execute(query, (store.id,)).fetchall()]
    finally:
        database.close()
    assert len(sizes) == 2
    assert all(size and size % 4 == 0 for size in sizes)

    results = sdk.vector_stores.search(store.id, query="refunds within thirty days")
    assert results.data[0].filename == "notes.txt"
    assert 0 < results.data[0].score <= 1
    assert {result.filename for result in results.data} == {"notes.txt", "prices.txt"}


def test_a_prefetched_search_is_cited_in_the_answer(sdk: OpenAI, store: Any, llama_server: LlamaServer) -> None:
    assistant = sdk.beta.assistants.create(
        model="tiny", tools=[{"type": "file_search"}], tool_resources={"file_search": {"vector_store_ids": [store.id]}}
    )
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": "How long do refunds take?"}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error

    steps = list(sdk.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc"))
    assert [step.type for step in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]  # type: ignore[union-attr]
    assert call.type == "file_search"
    results = call.file_search.results  # type: ignore[union-attr]
    assert results is not None
    assert results[0].file_name == "notes.txt"

    reply = sdk.beta.threads.messages.list(thread.id, run_id=run.id).data[0]
    text = reply.content[0].text  # type: ignore[union-attr]
    assert text.value.startswith(llama_server.answers.plain_reply)
    assert text.annotations
    assert text.annotations[0].file_citation.file_id == results[0].file_id  # type: ignore[union-attr]
    assert text.value.endswith(text.annotations[-1].text)


def test_a_response_searches_first_and_cites_the_file(sdk: OpenAI, store: Any, llama_server: LlamaServer) -> None:
    """The Responses API's `file_search` on the same search: prefetched, as the model calls no tools."""
    response = sdk.responses.create(
        model="tiny",
        input="How long do refunds take?",
        tools=[{"type": "file_search", "vector_store_ids": [store.id]}],
        include=["file_search_call.results"],
    )
    assert response.status == "completed", response.error
    search, message = response.output
    assert search.type == "file_search_call"
    assert search.queries == ["How long do refunds take?"]
    assert search.results is not None
    assert search.results[0].filename == "notes.txt"
    assert message.type == "message"
    text = message.content[0]
    assert text.type == "output_text"
    assert text.text.startswith(llama_server.answers.plain_reply)
    assert text.annotations
    citation = text.annotations[0]
    assert citation.type == "file_citation"
    assert citation.file_id == search.results[0].file_id
