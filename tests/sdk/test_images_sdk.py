"""Images over Assistants runs, end to end: the official SDK through Envoy and our server, to
OpenAI-compatible model servers (scripted, so that the exact request they received is asserted):
one that sees images, and one declared text-only in the backends file."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai import OpenAI
from openai.types.beta import Assistant

from tests.chat_server import ChatServer
from tests.images import png, png_url

pytestmark = pytest.mark.sdk

CHART = "https://example.com/chart.png"
QUESTION = "What does this chart show?"
TEXT: Any = {"type": "text", "text": QUESTION}
# What the vision server reports: it counts the images it read.
SERVER_USAGE = (1210, 3)


@pytest.fixture(scope="module")
def vision_server() -> Iterator[ChatServer]:
    with ChatServer("Looks bullish.", usage=SERVER_USAGE) as server:
        yield server


@pytest.fixture(scope="module")
def text_server() -> Iterator[ChatServer]:
    with ChatServer("I cannot see it.") as server:
        yield server


@pytest.fixture(scope="module")
def server_options(
    vision_server: ChatServer, text_server: ChatServer, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    config = tmp_path_factory.mktemp("backends") / "backends.toml"
    config.write_text(
        'default = "vision"\n'
        f'[backends.vision]\nbase_url = "{vision_server.base_url}"\ncontext_window = 32768\n'
        f'[backends.text]\nbase_url = "{text_server.base_url}"\ncontext_window = 32768\nvision = false\n'
        '[models]\n"smol" = "text"\n'
    )
    return {"engine": "openai", "engine_config": str(config)}


@pytest.fixture(scope="module")
def vision_assistant(openai_client: OpenAI) -> Assistant:
    return openai_client.beta.assistants.create(model="llava", instructions="You read charts.")


def run_on(client: OpenAI, assistant: Assistant, content: Any, **run: Any) -> Any:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": content}])
    done = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50, **run
    )
    assert done.status == "completed", done.last_error
    return done


def test_an_image_url_reaches_a_vision_server_as_a_content_part(
    openai_client: OpenAI, vision_assistant: Assistant, vision_server: ChatServer
) -> None:
    content = [{"type": "text", "text": QUESTION}, {"type": "image_url", "image_url": {"url": CHART, "detail": "high"}}]
    run = run_on(openai_client, vision_assistant, content)
    assert vision_server.requests[-1]["messages"] == [
        {"role": "system", "content": "You read charts."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": QUESTION},
                {"type": "image_url", "image_url": {"url": CHART, "detail": "high"}},
            ],
        },
    ]
    # The server's own count, images included.
    assert run.usage is not None
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == SERVER_USAGE
    reply = openai_client.beta.threads.messages.list(run.thread_id).data[0]
    assert reply.content[0].text.value == "Looks bullish."  # type: ignore[union-attr]


def test_an_inline_image_of_an_added_message_reaches_it_as_sent(
    openai_client: OpenAI, vision_assistant: Assistant, vision_server: ChatServer
) -> None:
    thread = openai_client.beta.threads.create()
    image: Any = {"type": "image_url", "image_url": {"url": png_url(), "detail": "low"}}
    run = openai_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=vision_assistant.id,
        additional_messages=[{"role": "user", "content": [image, {"type": "text", "text": "And this one?"}]}],
        poll_interval_ms=50,
    )
    assert run.status == "completed", run.last_error
    assert vision_server.requests[-1]["messages"][-1] == {
        "role": "user",
        "content": [
            {"type": "image_url", "image_url": {"url": png_url(), "detail": "low"}},
            {"type": "text", "text": "And this one?"},
        ],
    }


def test_a_text_only_backend_gets_the_placeholder(openai_client: OpenAI, text_server: ChatServer) -> None:
    assistant = openai_client.beta.assistants.create(model="smol")
    content = [
        {"type": "text", "text": QUESTION},
        {"type": "image_url", "image_url": {"url": CHART}},
        {"type": "image_url", "image_url": {"url": png_url()}},
    ]
    run_on(openai_client, assistant, content)
    assert text_server.requests[-1]["messages"] == [
        {"role": "user", "content": f"{QUESTION}\n[image: {CHART}]\n[image: image/png data]"}
    ]


def test_an_image_file_reaches_a_vision_server_as_a_data_url(
    openai_client: OpenAI, vision_assistant: Assistant, vision_server: ChatServer
) -> None:
    chart = png(4, 3, (10, 200, 40))
    try:
        uploaded = openai_client.files.create(file=("chart.png", chart, "image/png"), purpose="vision")
    except openai.NotFoundError:
        pytest.skip("no Files API to upload an image file to (image_file is then a 400: see the next test)")
    content = [{"type": "text", "text": QUESTION}, {"type": "image_file", "image_file": {"file_id": uploaded.id}}]
    run_on(openai_client, vision_assistant, content)
    sent = vision_server.requests[-1]["messages"][-1]["content"]
    assert sent == [
        {"type": "text", "text": QUESTION},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(chart).decode()}},
    ]


def test_an_unknown_image_file_is_a_400_naming_its_param(
    openai_client: OpenAI, vision_assistant: Assistant, vision_server: ChatServer
) -> None:
    sent_before = len(vision_server.requests)
    image: Any = {"type": "image_file", "image_file": {"file_id": "file-unknown"}}
    thread = openai_client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.messages.create(thread.id, role="user", content=[TEXT, image])
    assert (caught.value.param, caught.value.type) == ("content[1].image_file.file_id", "invalid_request_error")
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.create(messages=[{"role": "user", "content": [image]}])
    assert caught.value.param == "messages[0].content[0].image_file.file_id"
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.runs.create(
            thread_id=thread.id,
            assistant_id=vision_assistant.id,
            additional_messages=[{"role": "user", "content": [image]}],
        )
    assert caught.value.param == "additional_messages[0].content[0].image_file.file_id"
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.create_and_run(
            assistant_id=vision_assistant.id, thread={"messages": [{"role": "user", "content": [image]}]}
        )
    assert caught.value.param == "thread.messages[0].content[0].image_file.file_id"
    # Nothing was stored, and nothing reached the model.
    assert openai_client.beta.threads.messages.list(thread.id).data == []
    assert len(vision_server.requests) == sent_before


@pytest.mark.parametrize(
    ("role", "part", "param", "code"),
    [
        ("assistant", {"type": "image_url", "image_url": {"url": CHART}}, "content[0].type", "invalid_value"),
        (
            "user",
            {"type": "image_url", "image_url": {"url": CHART, "detail": "ultra"}},
            "content[0].image_url.detail",
            "invalid_value",
        ),
        ("user", {"type": "image_url", "image_url": {"url": "ftp://h/c"}}, "content[0].image_url.url", "invalid_value"),
        (
            "user",
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"no").decode()}},
            "content[0].image_url.url",
            "invalid_image_format",
        ),
    ],
)
def test_malformed_image_parts_are_400s(openai_client: OpenAI, role: Any, part: Any, param: str, code: str) -> None:
    thread = openai_client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.beta.threads.messages.create(thread.id, role=role, content=[part])
    assert (caught.value.param, caught.value.code, caught.value.type) == (param, code, "invalid_request_error")


def test_the_thread_shows_its_images_as_sent(openai_client: OpenAI) -> None:
    content: Any = [{"type": "image_url", "image_url": {"url": CHART, "detail": "auto"}}]
    thread = openai_client.beta.threads.create(messages=[{"role": "user", "content": content}])
    (message,) = openai_client.beta.threads.messages.list(thread.id).data
    assert message.content[0].type == "image_url"
    assert message.content[0].image_url.url == CHART
    assert message.content[0].image_url.detail == "auto"
