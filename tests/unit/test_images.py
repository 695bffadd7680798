"""Images on their way to a model, layer by layer: the engine's parts and their placeholders, the
checks of image parts (Assistants `image_url` / `image_file`, Responses `input_image`), stored
files read through `ImageFiles` into `data:` URLs, the context window's allowance per image, and
what the built-in engine says it received. (Over the wire: tests/sdk/test_images_sdk.py.)"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from sovereign_assistant.v1 import message_pb2
from sovereign_server import convert, validation
from sovereign_server.caller import Caller
from sovereign_server.engines import ChatMessage, Finish, GenerationRequest, ImagePart, TextDelta, TextPart
from sovereign_server.engines.builtin import BuiltinEngine, split_tokens
from sovereign_server.engines.images import MAX_IMAGE_BYTES, image_type, parse_data_url
from sovereign_server.engines.tokens import IMAGE_TOKENS
from sovereign_server.errors import InvalidRequestError
from sovereign_server.runs import RunManager, RunOptions, RunSettings
from sovereign_server.runs.fitting import MESSAGE_OVERHEAD, PROMPT_OVERHEAD, fit_messages
from sovereign_server.runs.images import (
    NoImageFiles,
    check_image_files,
    engine_content,
    image_file_references,
    read_image_files,
)
from sovereign_storage import (
    DEFAULT_PROJECT_ID,
    ImageFileContent,
    ImageUrlContent,
    NewAssistant,
    NewMessage,
    Repository,
    TextContent,
    migrate,
    open_database,
)
from tests.images import data_url, png, png_url

pytestmark = pytest.mark.unit

CHART = "https://example.com/chart.png"


def rejected(call: Callable[[], object]) -> tuple[str | None, str | None]:
    with pytest.raises(InvalidRequestError) as caught:
        call()
    return caught.value.param, caught.value.code


async def rejected_async(call: Callable[[], Any]) -> tuple[str | None, str | None]:
    with pytest.raises(InvalidRequestError) as caught:
        await call()
    return caught.value.param, caught.value.code


class Files:
    """Image files by project, as the Files API keeps them; `reads` lists what was read."""

    def __init__(self, files: dict[tuple[str, str], tuple[bytes, str]]) -> None:
        self.files = files
        self.reads: list[str] = []

    def read(self, project_id: str, file_id: str) -> tuple[bytes, str] | None:
        self.reads.append(file_id)
        return self.files.get((project_id, file_id))


# ---------------------------------------------------------------- engine parts


def test_a_message_with_images_reads_as_text_with_placeholders() -> None:
    message = ChatMessage(
        "user",
        (TextPart("What is this?"), ImagePart(CHART, "high"), ImagePart(png_url()), ImagePart(png_url(), None, "f-1")),
    )
    assert message.text == f"What is this?\n[image: {CHART}]\n[image: image/png data]\n[image file: f-1]"
    assert [image.url[:5] for image in message.images] == ["https", "data:", "data:"]
    assert ChatMessage("user", "hi").parts == (TextPart("hi"),)
    assert ChatMessage("assistant", "").parts == ()
    assert ChatMessage("user", "hi").images == ()


def test_images_are_told_by_their_first_bytes() -> None:
    assert image_type(png()) == "image/png"
    assert image_type(b"\xff\xd8\xff\xe0" + bytes(8)) == "image/jpeg"
    assert image_type(b"GIF89a" + bytes(8)) == "image/gif"
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert image_type(b"%PDF-1.7") is None


def test_data_urls_are_base64_only() -> None:
    parsed = parse_data_url(png_url())
    assert parsed is not None
    assert (parsed.media_type, parsed.data) == ("image/png", png())
    with_name = parse_data_url("data:Image/PNG;name=chart.png;base64," + base64.b64encode(png()).decode())
    assert with_name is not None
    assert with_name.media_type == "image/png"
    assert parse_data_url("data:image/png,rawbytes") is None
    assert parse_data_url("data:image/png;base64,not base64!") is None
    assert parse_data_url(CHART) is None


# ---------------------------------------------------------------- checks of what callers send


def message_input(role: str, content: Any) -> message_pb2.MessageInput:
    message = message_pb2.MessageInput(role=role)
    message.content.CopyFrom(convert.to_value(content))
    return message


def image_url_part(url: str, **image: Any) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url, **image}}


def test_images_go_in_user_messages_only() -> None:
    parts = [{"type": "text", "text": "see"}, image_url_part(CHART)]
    assert convert.new_message(message_input("user", parts)).content == (TextContent("see"), ImageUrlContent(CHART))
    assert rejected(lambda: convert.new_message(message_input("assistant", parts))) == (
        "content[1].type",
        "invalid_value",
    )
    file_part = [{"type": "image_file", "image_file": {"file_id": "file-1"}}]
    assert rejected(
        lambda: convert.new_messages([message_input("user", "hi"), message_input("assistant", file_part)])
    ) == ("messages[1].content[0].type", "invalid_value")


@pytest.mark.parametrize(
    ("url", "code"),
    [
        (data_url(b"hello, not an image"), "invalid_image_format"),
        (data_url(png(), "text/plain"), "invalid_image_format"),
        ("data:image/png,raw", "invalid_value"),
        ("data:image/png;base64,@@@", "invalid_value"),
        ("ftp://example.com/chart.png", "invalid_value"),
        ("file:///etc/passwd", "invalid_value"),
    ],
)
def test_an_image_url_is_a_web_url_or_an_inline_image(url: str, code: str) -> None:
    part = image_url_part(url)
    assert rejected(lambda: validation.check_message_content([part])) == ("content[0].image_url.url", code)


def test_an_inline_image_has_a_size_limit() -> None:
    within = png() + bytes(MAX_IMAGE_BYTES - len(png()))
    assert validation.check_message_content([image_url_part(data_url(within))])
    part = image_url_part(data_url(within + b"\x00"))
    assert rejected(lambda: validation.check_message_content([part])) == ("content[0].image_url.url", "image_too_large")


def test_the_detail_of_an_image_is_auto_low_or_high() -> None:
    for detail in ("auto", "low", "high"):
        assert validation.check_message_content([image_url_part(CHART, detail=detail)])
    part = image_url_part(CHART, detail="original")
    assert rejected(lambda: validation.check_message_content([part])) == (
        "content[0].image_url.detail",
        "invalid_value",
    )


def test_input_images_of_the_responses_api_are_the_same_parts() -> None:
    check = validation.check_input_image
    param = "input[0].content[1]"
    assert check({"type": "input_image", "image_url": CHART, "detail": "low"}, param) == ImageUrlContent(CHART, "low")
    assert check({"type": "input_image", "image_url": png_url(), "detail": None}, param) == ImageUrlContent(
        png_url(), "auto"
    )
    # `original` has no chat-completions level: the nearest is sent.
    assert check({"type": "input_image", "file_id": "file-1", "detail": "original"}, param) == ImageFileContent(
        "file-1", "high"
    )
    cases: list[tuple[Any, tuple[str, str]]] = [
        ({"type": "input_image", "detail": "auto"}, (param, "missing_required_parameter")),
        ({"type": "input_image", "image_url": CHART, "file_id": "file-1"}, (param, "invalid_value")),
        ({"type": "input_image", "image_url": "ftp://x/y.png"}, (f"{param}.image_url", "invalid_value")),
        ({"type": "input_image", "image_url": data_url(b"text")}, (f"{param}.image_url", "invalid_image_format")),
        ({"type": "input_image", "image_url": CHART, "detail": "max"}, (f"{param}.detail", "invalid_value")),
        ({"type": "input_image", "file_id": 7}, (f"{param}.file_id", "invalid_type")),
        ({"type": "input_text", "text": "hi"}, (f"{param}.type", "invalid_value")),
        ({"type": "input_image", "image_url": CHART, "size": 1}, (f"{param}.size", "unknown_parameter")),
    ]
    for value, expected in cases:
        assert rejected(partial(check, value, param)) == expected, value


# ---------------------------------------------------------------- stored files


def test_image_files_are_referenced_by_the_param_that_names_them() -> None:
    looking = NewMessage("user", (TextContent("see"), ImageFileContent("file-1"), ImageFileContent("file-2")))
    plain = NewMessage("user", (TextContent("hi"),))
    assert image_file_references([looking]) == [
        ("content[1].image_file.file_id", "file-1"),
        ("content[2].image_file.file_id", "file-2"),
    ]
    assert image_file_references([plain, looking], "additional_messages") == [
        ("additional_messages[1].content[1].image_file.file_id", "file-1"),
        ("additional_messages[1].content[2].image_file.file_id", "file-2"),
    ]


async def test_an_image_file_must_be_an_image_of_the_callers_project() -> None:
    files = Files(
        {
            ("proj_a", "file-chart"): (png(), "image/png"),
            ("proj_b", "file-other"): (png(), "image/png"),
            ("proj_a", "file-notes"): (b"just text", "text/plain"),
            ("proj_a", "file-huge"): (png() + bytes(MAX_IMAGE_BYTES), "image/png"),
        }
    )
    param = "content[0].image_file.file_id"
    await check_image_files(files, "proj_a", [(param, "file-chart"), ("content[1].image_file.file_id", "file-chart")])
    assert files.reads == ["file-chart"]  # once, however often it is named
    assert await rejected_async(lambda: check_image_files(files, "proj_a", [(param, "file-other")])) == (
        param,
        "invalid_value",
    )
    assert await rejected_async(lambda: check_image_files(files, "proj_a", [(param, "file-notes")])) == (
        param,
        "invalid_image_format",
    )
    assert await rejected_async(lambda: check_image_files(files, "proj_a", [(param, "file-huge")])) == (
        param,
        "image_too_large",
    )


async def test_until_files_exist_every_image_file_is_unknown() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await check_image_files(NoImageFiles(), "proj_a", [("messages[0].content[0].image_file.file_id", "file-1")])
    assert caught.value.param == "messages[0].content[0].image_file.file_id"
    assert caught.value.error_type == "invalid_request_error"
    assert "file-1" in caught.value.message


def test_stored_content_becomes_text_or_parts() -> None:
    assert engine_content((TextContent("a"), TextContent("b"))) == "a\nb"
    assert engine_content(()) == ""
    assert engine_content((TextContent("see"), ImageUrlContent(CHART, "low"), ImageFileContent("file-1"))) == (
        TextPart("see"),
        ImagePart(CHART, "low"),
        ImagePart("", None, "file-1"),  # read when sent
    )


async def test_files_are_read_into_data_urls_when_sent() -> None:
    # A file whose stored type says nothing: its bytes tell.
    files = Files({("proj_a", "file-1"): (png(), "application/octet-stream")})
    request = GenerationRequest(
        "m",
        (
            ChatMessage("user", (TextPart("old"), ImagePart(CHART))),
            ChatMessage("user", (TextPart("see"), ImagePart("", "high", "file-1"), ImagePart("", None, "file-gone"))),
        ),
    )
    sent = await read_image_files(request, files, "proj_a")
    assert sent.messages[0] == request.messages[0]
    assert sent.messages[1].content == (
        TextPart("see"),
        ImagePart(png_url(), "high", "file-1"),
        TextPart("[image file: file-gone]"),  # deleted since: its placeholder
    )
    assert sorted(files.reads) == ["file-1", "file-gone"]
    text_only = GenerationRequest("m", (ChatMessage("user", "hi"),))
    assert await read_image_files(text_only, files, "proj_a") is text_only


# ---------------------------------------------------------------- the context window


class Words:
    """A token per word; a whole prompt costs `template` per message more, when set."""

    key: str | None = None

    def __init__(self, image_tokens: int, template: int | None = None) -> None:
        self.image_tokens = image_tokens
        self.template = template
        self.prompts: list[GenerationRequest] = []

    async def count(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        self.prompts.append(request)
        if self.template is None:
            return None
        return sum(len(message.text.split()) + self.template for message in request.messages)


LOOK = ChatMessage("user", (TextPart("look at this"), ImagePart(CHART)))
LOOK_TEXT_TOKENS = len(LOOK.text.split())  # "look at this [image: <url>]": 5


async def test_an_image_costs_its_allowance_in_the_context_window() -> None:
    request = GenerationRequest("m", (LOOK,))
    cost = LOOK_TEXT_TOKENS + MESSAGE_OVERHEAD + 500 + PROMPT_OVERHEAD
    fitted = await fit_messages(request, Words(500), cost)
    assert fitted is not None
    assert (fitted.prompt_tokens, fitted.exact) == (cost, False)
    assert await fit_messages(request, Words(500), cost - 1) is None
    # A model sent placeholders pays their text only.
    fitted = await fit_messages(request, Words(0), cost - 500)
    assert fitted is not None


async def test_a_prompt_with_images_is_counted_with_placeholders_plus_their_allowance() -> None:
    words = Words(500, template=3)
    fitted = await fit_messages(GenerationRequest("m", (LOOK, LOOK)), words, 10_000)
    assert fitted is not None
    # The tokenizer never sees an image: the server would fetch or decode it.
    assert all(not message.images for message in words.prompts[-1].messages)
    assert fitted.prompt_tokens == 2 * (LOOK_TEXT_TOKENS + 3) + 2 * 500
    assert fitted.exact is False
    assert fitted.request.messages == (LOOK, LOOK)


# ---------------------------------------------------------------- the built-in engine


async def answer(*messages: ChatMessage) -> tuple[str, Finish]:
    chunks = [chunk async for chunk in BuiltinEngine().generate(GenerationRequest("m", messages))]
    finish = chunks[-1]
    assert isinstance(finish, Finish)
    return "".join(chunk.text for chunk in chunks if isinstance(chunk, TextDelta)), finish


async def test_the_builtin_engine_names_the_images_it_received() -> None:
    digest = hashlib.sha256(png()).hexdigest()[:12]
    message = ChatMessage(
        "user",
        (
            TextPart("What do these show?"),
            ImagePart(CHART, "low"),
            ImagePart(png_url(), "high", "file-9"),
            ImagePart(png_url()),
        ),
    )
    text, finish = await answer(ChatMessage("user", (ImagePart(CHART),)), ChatMessage("assistant", "ok"), message)
    assert text == (
        "You said: What do these show?"
        f"\nImage 1: {CHART}, detail low"
        f"\nImage 2: file-9, image/png, {len(png())} bytes, sha256 {digest}, detail high"
        f"\nImage 3: image/png, {len(png())} bytes, sha256 {digest}"
    )
    assert finish.usage is not None
    images = 4
    words = sum(len(split_tokens(text)) for text in ("[image: " + CHART + "]", "ok", message.text))
    assert finish.usage.prompt_tokens == words + images * IMAGE_TOKENS


async def test_the_builtin_engine_reads_only_the_text_of_a_message_for_tools_and_markers() -> None:
    text, _ = await answer(ChatMessage("user", (TextPart("hello"), ImagePart(CHART))))
    assert text == f"You said: hello\nImage 1: {CHART}"


# ---------------------------------------------------------------- a run, through the protocol


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    database = open_database(str(tmp_path / "images.sqlite3"))
    migrate(database)
    return Repository(database)


async def run_reply(repository: Repository, files: Files, content: tuple[Any, ...]) -> str:
    manager = RunManager(repository, BuiltinEngine(), RunSettings(expiry_sweep_interval=60), image_files=files)
    assistant = repository.create_assistant(NewAssistant(model="m"))
    thread, _ = repository.create_thread({}, {}, [NewMessage("user", content)])
    run, channel = await manager.create_run(Caller(DEFAULT_PROJECT_ID), thread.id, RunOptions(assistant.id))
    [event async for batch in channel.follow() for event in batch]
    assert repository.get_run(thread.id, run.id).status == "completed"
    reply = repository.thread_messages(thread.id)[-1].content[0]
    assert isinstance(reply, TextContent)
    return reply.value


async def test_a_run_reads_a_stored_image_file_into_what_the_engine_receives(repository: Repository) -> None:
    image = png(3, 1, (0, 128, 255))
    files = Files({(DEFAULT_PROJECT_ID, "file-chart"): (image, "image/png")})
    reply = await run_reply(repository, files, (TextContent("Read this chart"), ImageFileContent("file-chart", "low")))
    digest = hashlib.sha256(image).hexdigest()[:12]
    described = f"file-chart, image/png, {len(image)} bytes, sha256 {digest}, detail low"
    assert reply == f"You said: Read this chart\nImage 1: {described}"


async def test_a_run_whose_image_file_is_gone_sends_its_placeholder(repository: Repository) -> None:
    reply = await run_reply(repository, Files({}), (TextContent("Read this chart"), ImageFileContent("file-chart")))
    assert reply == "You said: Read this chart\n[image file: file-chart]"
