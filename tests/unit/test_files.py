"""The pieces of file indexing and search on their own: chunk windows, text extraction per file
type, attribute filters, and the multipart parser fed in arbitrary pieces."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from sovereign_server.errors import InvalidRequestError, PayloadTooLargeError
from sovereign_server.files.chunking import chunk_text
from sovereign_server.files.extract import ExtractionError, extract_text
from sovereign_server.files.filters import check_filter, matches
from sovereign_server.files.upload import receive_upload
from sovereign_storage import BlobStore, ChunkingStrategy

pytestmark = pytest.mark.unit


def test_chunks_overlap_and_the_last_one_ends_the_text() -> None:
    text = " ".join(f"w{i}" for i in range(250))
    chunks = list(chunk_text(text, ChunkingStrategy(100, 40)))
    assert [chunk.tokens for chunk in chunks] == [100, 100, 100, 70]
    assert chunks[0].text.startswith("w0 ")
    assert chunks[1].text.startswith("w60 ")
    assert chunks[-1].text.endswith("w249")
    assert next(iter(chunk_text("short text", ChunkingStrategy()))).text == "short text"


def _pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    body = b"%PDF-1.4\n"
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return body


@pytest.mark.parametrize(
    ("name", "data", "expected"),
    [
        ("a.txt", b"plain words", "plain words"),
        ("a.md", b"# Title\n\nBody", "# Title\n\nBody"),
        (
            "a.html",
            b"<html><head><style>x{}</style></head><body><p>Hello</p><script>no()</script>there</body>",
            "Hello\nthere",
        ),
        ("a.json", b'{"k": ["v"]}', json.dumps({"k": ["v"]}, indent=2)),
        ("a.csv", b"a,b\n1,2\n", "a,b\n1,2\n"),
        ("a.py", b"print('code is text')", "print('code is text')"),
        ("report.pdf", _pdf("Refunds within thirty days"), "Refunds within thirty days"),
    ],
)
def test_text_is_extracted_by_file_type(name: str, data: bytes, expected: str) -> None:
    assert extract_text(name, data).strip() == expected.strip()


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("a.bin", b"\x00\x01\x02", "unsupported_file"),
        ("a.txt", b"   \n", "invalid_file"),
        ("a.json", b"{not json", "invalid_file"),
        ("a.pdf", b"%PDF-1.4 broken", "invalid_file"),
    ],
)
def test_unreadable_files_fail_with_openai_codes(name: str, data: bytes, code: str) -> None:
    with pytest.raises(ExtractionError) as caught:
        extract_text(name, data)
    assert caught.value.code == code


ATTRIBUTES: dict[str, Any] = {"team": "support", "year": 2024, "public": True}


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        ({"type": "eq", "key": "team", "value": "support"}, True),
        ({"type": "ne", "key": "team", "value": "support"}, False),
        ({"type": "gt", "key": "year", "value": 2023}, True),
        ({"type": "lte", "key": "year", "value": 2023}, False),
        ({"type": "gt", "key": "team", "value": 1}, False),
        ({"type": "in", "key": "team", "value": ["sales", "support"]}, True),
        ({"type": "nin", "key": "missing", "value": ["x"]}, True),
        ({"type": "eq", "key": "public", "value": True}, True),
        ({"type": "eq", "key": "year", "value": True}, False),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "public", "value": True},
                    {"type": "or", "filters": [{"type": "lt", "key": "year", "value": 2000}]},
                ],
            },
            False,
        ),
    ],
)
def test_filters_compare_attributes_as_openai_does(check: dict[str, Any], expected: bool) -> None:
    assert matches(check_filter(check), ATTRIBUTES) is expected


@pytest.mark.parametrize(
    ("check", "param"),
    [
        ({"type": "near", "key": "k", "value": 1}, "filters.type"),
        ({"type": "eq", "key": "k"}, "filters.value"),
        ({"type": "in", "key": "k", "value": "x"}, "filters.value"),
        ({"type": "and", "filters": [{"type": "eq", "key": 1, "value": 1}]}, "filters.filters[0].key"),
        ({"type": "eq", "key": "k", "value": 1, "extra": 1}, "filters.extra"),
    ],
)
def test_bad_filters_name_their_param(check: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_filter(check)
    assert caught.value.param == param


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ") -> bytes:
    body = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


async def _pieces(body: bytes, size: int) -> AsyncIterator[tuple[str, bytes]]:
    for start in range(0, len(body), size):
        yield "multipart/form-data; boundary=XyZ", body[start : start + size]


@pytest.mark.parametrize("piece", [1, 7, 4096])
def test_an_upload_parses_whatever_the_pieces(piece: int, tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    data = bytes(range(256)) * 20
    body = _multipart([("purpose", None, b"assistants"), ("file", "r\u00e9sum\u00e9.bin", data)])
    upload = asyncio.run(receive_upload(_pieces(body, piece), blobs, 10_000))
    assert (upload.filename, upload.size, upload.fields) == (
        "r\u00e9sum\u00e9.bin",
        len(data),
        {"purpose": "assistants"},
    )
    assert upload.sha256 is not None
    assert blobs.read_all(upload.sha256) == data


def test_an_upload_over_the_limit_stores_nothing(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    body = _multipart([("file", "big.txt", b"x" * 2000)])
    with pytest.raises(PayloadTooLargeError):
        asyncio.run(receive_upload(_pieces(body, 100), blobs, 1000))
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []
