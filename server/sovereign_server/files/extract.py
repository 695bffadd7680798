"""Text from the files a vector store indexes: plain text and Markdown, HTML, JSON, CSV and PDF
(`pypdf`). Other files whose bytes are UTF-8 text (source code, logs) are read as text; anything
else is an `unsupported_file`."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import PurePosixPath

TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".csv", ".tsv", ".text", ".rst", ".log"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})


class ExtractionError(Exception):
    """The file's text cannot be read; `code` is OpenAI's `unsupported_file` or `invalid_file`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def extract_text(filename: str, data: bytes) -> str:
    """The file's text. Raises ExtractionError."""
    extension = PurePosixPath(filename.lower()).suffix
    if extension == ".pdf" or data.startswith(b"%PDF-"):
        text = _pdf_text(data)
    elif extension in HTML_EXTENSIONS:
        text = _html_text(_decode(data, filename))
    elif extension == ".json":
        text = _json_text(_decode(data, filename))
    elif extension in TEXT_EXTENSIONS or _looks_like_text(data):
        text = _decode(data, filename)
    else:
        raise ExtractionError("unsupported_file", f"Files of type '{extension or filename}' are not supported.")
    if not text.strip():
        raise ExtractionError("invalid_file", "The file contains no text.")
    return text


def _looks_like_text(data: bytes) -> bool:
    sample = data[:65536]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as error:
        # The sample may end inside a character.
        return error.start >= len(sample) - 4
    return True


def _decode(data: bytes, filename: str) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExtractionError("invalid_file", f"The file '{filename}' is not valid UTF-8 text.") from None


def _json_text(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError:
        raise ExtractionError("invalid_file", "The file is not valid JSON.") from None
    # Indented, so that chunk boundaries fall between values rather than inside one long line.
    return json.dumps(value, indent=2, ensure_ascii=False)


class _HtmlText(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED and self._skipping:
            self._skipping -= 1
        elif tag in self._BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.pieces.append(data)


def _html_text(html: str) -> str:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.pieces).splitlines())
    return "\n".join(line for line in lines if line)


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as error:
        raise ExtractionError("invalid_file", f"The PDF could not be read: {error}") from None
