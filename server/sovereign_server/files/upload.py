"""`POST /v1/files`: a `multipart/form-data` body parsed as its chunks arrive, the `file` part
written straight to the file directory and the small fields (`purpose`, `expires_after[...]`) kept.

The body is never held whole: each chunk is parsed and written, then dropped. A body over the size
limit is read to its end without being stored, so that the client (still sending) gets the 413
instead of a broken connection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from sovereign_server.errors import InvalidRequestError, PayloadTooLargeError
from sovereign_storage import BlobStore, BlobWriter

# Form fields other than the file are short; a longer one is not ours.
MAX_FIELD_BYTES = 4096
MAX_FIELDS = 16


@dataclass
class Upload:
    """What a multipart body held: the file (committed to the blob store) and the form's fields."""

    filename: str | None = None
    sha256: str | None = None
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)


class _Parts:
    """The parser's callbacks: the current part's headers, then its data."""

    def __init__(self, blobs: BlobStore, max_file_bytes: int) -> None:
        self._blobs = blobs
        self._max = max_file_bytes
        self.upload = Upload()
        self.too_large = False
        self.writer: BlobWriter | None = None
        self._headers: dict[str, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._name: str | None = None
        self._value = bytearray()
        self._is_file = False

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._value = bytearray()
        self._is_file = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        # Raw bytes: a header may hold UTF-8 (names of fields and files) that latin-1 cannot re-encode.
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name")
        self._name = name.decode("utf-8", "replace") if name is not None else None
        filename = options.get(b"filename")
        if self._name == "file":
            if self.writer is not None:
                raise InvalidRequestError("Only one file may be uploaded per request.", param="file")
            self._is_file = True
            self.upload.filename = filename.decode("utf-8", "replace") if filename is not None else "upload"
            self.writer = self._blobs.writer()

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._is_file:
            assert self.writer is not None
            if self.too_large or self.writer.size + len(piece) > self._max:
                self.too_large = True
                return
            self.writer.write(piece)
        elif self._name is not None:
            if len(self._value) + len(piece) > MAX_FIELD_BYTES:
                raise InvalidRequestError(f"The form field '{self._name}' is too long.", param=self._name)
            self._value += piece

    def on_part_end(self) -> None:
        if self._is_file or self._name is None:
            return
        if len(self.upload.fields) >= MAX_FIELDS:
            raise InvalidRequestError("Too many form fields.")
        try:
            self.upload.fields[self._name] = self._value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequestError(f"The form field '{self._name}' is not valid UTF-8.", param=self._name) from None


def _boundary(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequestError(
            "The body must be multipart/form-data with a 'file' and a 'purpose' field.",
            code="invalid_content_type",
        )
    return boundary


async def receive_upload(chunks: AsyncIterator[tuple[str, bytes]], blobs: BlobStore, max_file_bytes: int) -> Upload:
    """Parses a multipart body from `(content_type, data)` chunks (the content type is read from
    the first), writing its `file` part to `blobs`. Raises InvalidRequestError for a malformed body
    and PayloadTooLargeError for a file over `max_file_bytes` (nothing is stored then)."""
    parts = _Parts(blobs, max_file_bytes)
    parser: MultipartParser | None = None
    try:
        async for content_type, data in chunks:
            if parser is None:
                parser = MultipartParser(_boundary(content_type), callbacks=_callbacks(parts))
            if data:
                parser.write(data)
        if parser is None:
            raise InvalidRequestError(
                "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
            )
        parser.finalize()
        if parts.too_large:
            raise PayloadTooLargeError(
                f"File is too large: the maximum file size is {max_file_bytes} bytes.", param="file"
            )
        upload = parts.upload
        if parts.writer is not None:
            upload.size = parts.writer.size
            upload.sha256 = parts.writer.commit()
        return upload
    except (MultipartParseError, ValueError) as error:
        # ValueError covers UnicodeError: headers that are neither latin-1 nor UTF-8.
        raise InvalidRequestError(f"The multipart body could not be parsed: {error}.") from None
    finally:
        if parts.writer is not None:
            parts.writer.discard()


def _callbacks(parts: _Parts) -> Any:
    return {
        "on_part_begin": parts.on_part_begin,
        "on_part_data": parts.on_part_data,
        "on_part_end": parts.on_part_end,
        "on_header_field": parts.on_header_field,
        "on_header_value": parts.on_header_value,
        "on_header_end": parts.on_header_end,
        "on_headers_finished": parts.on_headers_finished,
    }
