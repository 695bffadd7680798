"""Image bytes as engines and checks read them: the formats vision models take, recognised by their
first bytes, and the `data:` URLs that carry images inline (how a stored file reaches a model server).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

__all__ = ["IMAGE_TYPES", "MAX_IMAGE_BYTES", "InlineImage", "data_url", "image_type", "parse_data_url"]

# What OpenAI accepts, and what llama.cpp, vLLM and Ollama decode: PNG, JPEG, GIF (its first frame), WebP.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
# OpenAI's limit for one image.
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def image_type(data: bytes) -> str | None:
    """The media type of an image in one of `IMAGE_TYPES`, told by its signature; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


@dataclass(frozen=True)
class InlineImage:
    """The content of a base64 `data:` URL: its declared media type and its bytes."""

    media_type: str
    data: bytes


def parse_data_url(url: str) -> InlineImage | None:
    """A `data:<media type>;base64,<data>` URL's content; None if `url` is not one (or its data is not base64)."""
    comma = url.find(",", 0, 512) if url.startswith("data:") else -1
    header = url[5:comma]
    if comma < 0 or not header.lower().endswith(";base64"):
        return None
    try:
        data = base64.b64decode(url[comma + 1 :], validate=True)
    except (binascii.Error, ValueError):
        return None
    return InlineImage(header.partition(";")[0].lower(), data)


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"
