"""Splitting text into overlapping chunks of tokens, as OpenAI's static chunking strategy does.

Tokens here are words and punctuation marks (`\\w+` runs and single other characters), an
approximation of a model tokenizer that needs no model. A chunk is the original text from its first
token to its last, so it keeps its spacing and line breaks."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sovereign_storage import ChunkingStrategy

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


@dataclass(frozen=True)
class Chunk:
    text: str
    tokens: int


def count_tokens(text: str) -> int:
    return sum(1 for _ in _TOKEN.finditer(text))


def chunk_text(text: str, strategy: ChunkingStrategy) -> Iterator[Chunk]:
    """Windows of `max_chunk_size_tokens` tokens, each starting `max - overlap` tokens after the
    previous one; the last window ends with the text."""
    size = strategy.max_chunk_size_tokens
    step = max(1, size - strategy.chunk_overlap_tokens)
    window: list[tuple[int, int]] = []
    emitted_to = 0  # tokens already covered by an emitted chunk, counted from the window start
    for match in _TOKEN.finditer(text):
        window.append(match.span())
        if len(window) == size:
            yield Chunk(text[window[0][0] : window[-1][1]], size)
            del window[:step]
            emitted_to = len(window)
    if window and len(window) > emitted_to:
        yield Chunk(text[window[0][0] : window[-1][1]], len(window))
