"""Images on their way to a model: stored content parts as engine parts, stored files read into
`data:` URLs just before a request is sent, and the check that each `image_file` names an image
file of the caller's project.

Files come through `ImageFiles`, one small protocol that the Files API implements; `NoImageFiles`
knows no file, so until files can be uploaded every `image_file` is refused with a 400 naming its
param. Any API with messages in memory (the Responses API's `input_image`, say) converts its
checked parts (`validation.check_input_image`) with `engine_content`, checks their files with
`check_image_files`, and reads them with `read_image_files` once its request is fitted.
"""

from __future__ import annotations

import logging
from asyncio import to_thread
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Protocol

from sovereign_server.engines import ChatMessage, GenerationRequest, ImagePart, MessagePart, TextPart
from sovereign_server.engines.images import IMAGE_TYPES, MAX_IMAGE_BYTES, data_url, image_type
from sovereign_server.errors import InvalidRequestError
from sovereign_storage import ContentPart, ImageFileContent, ImageUrlContent, NewMessage, TextContent

__all__ = [
    "ImageFiles",
    "NoImageFiles",
    "check_image_files",
    "engine_content",
    "image_file_references",
    "read_image_files",
]

logger = logging.getLogger("sovereign.runs")


class ImageFiles(Protocol):
    """Where `image_file` parts are read from."""

    def read(self, project_id: str, file_id: str) -> tuple[bytes, str] | None:
        """Blocking: the bytes and media type of the file `file_id` of the project `project_id`;
        None when that project has no such file."""
        ...


class NoImageFiles:
    """No files at all: every `image_file` is unknown."""

    def read(self, project_id: str, file_id: str) -> tuple[bytes, str] | None:
        return None


def engine_content(content: Sequence[ContentPart]) -> str | tuple[MessagePart, ...]:
    """Stored content as an engine message's: text alone as one string (parts a line each), else
    parts. A stored file is an `ImagePart` with its `file_id` and an empty `url` until
    `read_image_files` reads it: only the files of the messages that are sent are read."""
    if all(isinstance(part, TextContent) for part in content):
        return "\n".join(part.value for part in content if isinstance(part, TextContent))
    parts: list[MessagePart] = []
    for part in content:
        if isinstance(part, TextContent):
            parts.append(TextPart(part.value))
        elif isinstance(part, ImageUrlContent):
            parts.append(ImagePart(part.url, part.detail))
        else:
            parts.append(ImagePart("", part.detail, file_id=part.file_id))
    return tuple(parts)


async def read_image_files(request: GenerationRequest, files: ImageFiles, project_id: str) -> GenerationRequest:
    """`request` with each stored file it shows read into a `data:` URL, in a worker thread. A file
    deleted since its message was written is sent as its placeholder text."""
    unread = {part.file_id for message in request.messages for part in message.images if part.file_id and not part.url}
    if not unread:
        return request
    urls = await to_thread(_read_all, files, project_id, unread)

    def read(part: MessagePart) -> MessagePart:
        if not isinstance(part, ImagePart) or part.file_id is None or part.url:
            return part
        url = urls.get(part.file_id)
        return TextPart(part.placeholder) if url is None else replace(part, url=url)

    def with_files(message: ChatMessage) -> ChatMessage:
        if not message.images:
            return message
        return replace(message, content=tuple(read(part) for part in message.parts))

    return replace(request, messages=tuple(with_files(message) for message in request.messages))


def _read_all(files: ImageFiles, project_id: str, file_ids: Iterable[str]) -> dict[str, str | None]:
    urls: dict[str, str | None] = {}
    for file_id in file_ids:
        found = files.read(project_id, file_id)
        if found is None:
            logger.warning("image file %s of project %s is gone: its placeholder is sent", file_id, project_id)
        urls[file_id] = None if found is None else data_url(image_type(found[0]) or found[1], found[0])
    return urls


def image_file_references(messages: Sequence[NewMessage], param: str | None = None) -> list[tuple[str, str]]:
    """The `(param, file_id)` of every `image_file` part of `messages`: `messages[i].content[j]...`
    under `param`, or `content[j]...` for a message of its own (`param` None)."""
    references = []
    for index, message in enumerate(messages):
        prefix = "" if param is None else f"{param}[{index}]."
        for number, part in enumerate(message.content):
            if isinstance(part, ImageFileContent):
                references.append((f"{prefix}content[{number}].image_file.file_id", part.file_id))
    return references


async def check_image_files(files: ImageFiles, project_id: str, references: Sequence[tuple[str, str]]) -> None:
    """Each `(param, file_id)` must name an image file of the project (PNG, JPEG, GIF or WebP, at
    most `MAX_IMAGE_BYTES`); else a 400 naming its param."""
    if references:
        await to_thread(_check_all, files, project_id, references)


def _check_all(files: ImageFiles, project_id: str, references: Sequence[tuple[str, str]]) -> None:
    checked: set[str] = set()
    for param, file_id in references:
        if file_id in checked:
            continue
        found = files.read(project_id, file_id)
        if found is None:
            raise InvalidRequestError(
                f"Invalid '{param}': no file with id '{file_id}' was found.", param=param, code="invalid_value"
            )
        data, media_type = found
        if image_type(data) is None:
            raise InvalidRequestError(
                f"Invalid '{param}': file '{file_id}' ({media_type}) is not an image of a supported type: "
                f"{', '.join(IMAGE_TYPES)}.",
                param=param,
                code="invalid_image_format",
            )
        if len(data) > MAX_IMAGE_BYTES:
            raise InvalidRequestError(
                f"Invalid '{param}': file '{file_id}' is {len(data)} bytes; an image may have at most "
                f"{MAX_IMAGE_BYTES} bytes.",
                param=param,
                code="image_too_large",
            )
        checked.add(file_id)
