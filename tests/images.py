"""Tiny real images for tests, made here: a PNG of one colour, as bytes or as a `data:` URL."""

from __future__ import annotations

import base64
import struct
import zlib


def png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid PNG (8-bit RGB, unfiltered rows) of `width` x `height` pixels of colour `rgb`."""
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def data_url(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def png_url(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 30, 30)) -> str:
    """A PNG (as `png` makes) as a base64 `data:` URL."""
    return data_url(png(width, height, rgb))
