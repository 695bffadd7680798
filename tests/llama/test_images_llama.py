"""Images read by a real llama.cpp `llama-server`: the tiny model with its tiny projector
(`--mmproj`, tests/llama/tiny_projector.py), whose prompt-token count shows every image it read.
Runs go through the official SDK, Envoy and our server; the local engine starts its own server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openai import OpenAI
from openai.types.beta import Assistant

from sovereign_server.caller import Caller
from sovereign_server.engines import ChatMessage, Finish, GenerationRequest, ImagePart, TextDelta, TextPart
from sovereign_server.engines.local import LocalEngine
from sovereign_server.engines.openai_compat import OpenAICompatibleEngine
from sovereign_server.gateway import Gateway
from sovereign_server.runs import RunManager, RunOptions, RunSettings
from sovereign_storage import (
    DEFAULT_PROJECT_ID,
    ImageFileContent,
    NewAssistant,
    NewMessage,
    Repository,
    TextContent,
)
from tests.databases import Databases, opened_beside_servers
from tests.images import png, png_url
from tests.llama.conftest import LlamaServer, start_llama_server
from tests.llama.tiny_model import TinyModelAnswers
from tests.llama.tiny_projector import IMAGE_TOKENS

pytestmark = pytest.mark.llama

QUESTION = "What does this chart show?"


@pytest.fixture(scope="module")
def seeing_server(
    tiny_model_path: Path,
    tiny_projector_path: Path,
    tiny_answers: TinyModelAnswers,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LlamaServer]:
    log = tmp_path_factory.mktemp("seeing-llama") / "llama-server.log"
    server = start_llama_server(tiny_model_path, log, tiny_answers, "--mmproj", str(tiny_projector_path), parallel=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server_options(
    seeing_server: LlamaServer, llama_server: LlamaServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    config = tmp_path_factory.mktemp("backends") / "backends.toml"
    config.write_text(
        'default = "seeing"\n'
        f'[backends.seeing]\nbase_url = "{seeing_server.base_url}"\nimage_tokens = {IMAGE_TOKENS}\n'
        f'[backends.blind]\nbase_url = "{llama_server.base_url}"\nvision = false\n'
        '[models]\n"blind-tiny" = "blind"\n'
    )
    return {"engine": "openai", "engine_config": str(config)}


@pytest.fixture(scope="module")
def sdk(gateway: Gateway) -> Iterator[OpenAI]:
    with OpenAI(base_url=gateway.base_url, api_key="sk-local", max_retries=0, timeout=60) as client:
        yield client


def run_with_image(sdk: OpenAI, assistant: Assistant, image: Any) -> Any:
    content: Any = [{"type": "text", "text": QUESTION}, image]
    thread = sdk.beta.threads.create(messages=[{"role": "user", "content": content}])
    run = sdk.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50)
    assert run.status == "completed", run.last_error
    return run


def test_an_inline_image_is_read_by_the_model(sdk: OpenAI, tiny_answers: TinyModelAnswers) -> None:
    run = run_with_image(
        sdk, sdk.beta.assistants.create(model="tiny"), {"type": "image_url", "image_url": {"url": png_url()}}
    )
    reply = sdk.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.content[0].text.value == tiny_answers.plain_reply  # type: ignore[union-attr]
    # The server's own count: the question's tokens and the image's embeddings.
    assert run.usage is not None
    assert run.usage.prompt_tokens == tiny_answers.prompt_tokens(QUESTION) + IMAGE_TOKENS


def test_a_text_only_model_reads_the_placeholder(sdk: OpenAI, tiny_answers: TinyModelAnswers) -> None:
    run = run_with_image(
        sdk, sdk.beta.assistants.create(model="blind-tiny"), {"type": "image_url", "image_url": {"url": png_url()}}
    )
    assert run.usage is not None
    assert run.usage.prompt_tokens == tiny_answers.prompt_tokens(f"{QUESTION}\n[image: image/png data]")


class Files:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read(self, project_id: str, file_id: str) -> tuple[bytes, str] | None:
        data = self.files.get(file_id) if project_id == DEFAULT_PROJECT_ID else None
        return None if data is None else (data, "image/png")


async def test_a_stored_image_file_is_read_by_the_model(
    seeing_server: LlamaServer, tiny_answers: TinyModelAnswers, databases: Databases
) -> None:
    target = databases.new()
    with opened_beside_servers(target) as database:
        await _read_a_stored_image_file(Repository(database), seeing_server, tiny_answers)
    databases.drop(target)


async def _read_a_stored_image_file(
    repository: Repository, seeing_server: LlamaServer, tiny_answers: TinyModelAnswers
) -> None:
    engine = OpenAICompatibleEngine.for_url(seeing_server.base_url, image_tokens=IMAGE_TOKENS)
    files = Files({"file-chart": png(64, 48, (0, 90, 200))})
    manager = RunManager(repository, engine, RunSettings(expiry_sweep_interval=60), image_files=files)
    await manager.start()
    try:
        assistant = repository.create_assistant(NewAssistant(model="tiny"))
        content = (TextContent(QUESTION), ImageFileContent("file-chart"))
        thread, _ = repository.create_thread({}, {}, [NewMessage("user", content)])
        run, channel = await manager.create_run(Caller(DEFAULT_PROJECT_ID), thread.id, RunOptions(assistant.id))
        [event async for batch in channel.follow() for event in batch]
        ended = repository.get_run(thread.id, run.id)
        assert ended.status == "completed", ended.last_error
        assert ended.usage is not None
        assert ended.usage.prompt_tokens == tiny_answers.prompt_tokens(QUESTION) + IMAGE_TOKENS
    finally:
        await manager.stop()


async def test_the_local_engine_with_a_projector_shows_the_model_images(
    tiny_model_path: Path, tiny_projector_path: Path, tiny_answers: TinyModelAnswers
) -> None:
    request = GenerationRequest("tiny", (ChatMessage("user", (TextPart(QUESTION), ImagePart(png_url()))),))
    seeing = LocalEngine(str(tiny_model_path), mmproj_path=str(tiny_projector_path), parallel=1, threads=1)
    blind = LocalEngine(str(tiny_model_path), parallel=1, threads=1)
    for engine in (seeing, blind):
        await engine.start()
    try:
        for engine, prompt in (
            (seeing, tiny_answers.prompt_tokens(QUESTION) + IMAGE_TOKENS),
            (blind, tiny_answers.prompt_tokens(f"{QUESTION}\n[image: image/png data]")),
        ):
            chunks = [chunk async for chunk in engine.generate(request)]
            assert "".join(chunk.text for chunk in chunks if isinstance(chunk, TextDelta)) == tiny_answers.plain_reply
            finish = chunks[-1]
            assert isinstance(finish, Finish)
            assert finish.usage is not None
            assert finish.usage.prompt_tokens == prompt
    finally:
        for engine in (seeing, blind):
            await engine.aclose()
