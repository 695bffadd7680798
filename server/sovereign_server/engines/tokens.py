"""Token counts when the model's own tokenizer is out of reach: an estimate that errs on the safe side.

A prompt estimated too small is refused by the model server (or, by Ollama, silently cut at its
start), while one estimated too large only leaves some of the window unused; so the estimate counts
generously: a token per three letters of a word, per digit, per punctuation mark or line break, per
space before a digit or mark, and per extra UTF-8 byte of other characters. Against SmolLM2's
tokenizer it comes out at or above the true count on English prose, figures, code, German and
Japanese (tests/llama/test_context_llama.py checks it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from sovereign_server.engines.base import GenerationRequest

__all__ = ["DEFAULT_CONTEXT_WINDOW", "IMAGE_TOKENS", "EstimatingTokenizer", "estimate_tokens"]

# The window assumed for a model whose server does not say, and for which none is configured:
# what Ollama and LM Studio give a model by default.
DEFAULT_CONTEXT_WINDOW = 4096

# The tokens one image is assumed to take in a prompt, where the backend states no other figure:
# no server tells before it reads an image, and models differ (LLaVA 1.5 576, Gemma 3 256, Qwen2-VL
# about 1,000 for a 1024x768 chart; OpenAI bills up to 1,105 on gpt-4o and caps patch-based models at
# 1,536). The most of these, so that a fitted prompt is not refused.
IMAGE_TOKENS = 1536

# Words, digits, line breaks, a space before a digit or mark (tokenizers that split digits leave it
# alone), other characters, marks.
_PIECES = re.compile(r"[A-Za-z]+|\d|\n|[ \t](?=[^\sA-Za-z])|[^\x00-\x7f]|[^\w\s]")


def estimate_tokens(text: str) -> int:
    count = 0
    for match in _PIECES.finditer(text):
        piece = match.group()
        if piece.isascii():
            count += math.ceil(len(piece) / 3) if piece[0].isalpha() else 1
        else:
            count += max(1, len(piece.encode()) - 1)
    return count


class EstimatingTokenizer:
    """Estimates; not worth storing, so it has no `key`, and it cannot count a whole prompt exactly.
    An image costs `image_tokens` (0 for a model sent placeholders instead)."""

    key: str | None = None

    def __init__(self, image_tokens: int = IMAGE_TOKENS) -> None:
        self.image_tokens = image_tokens

    async def count(self, texts: Sequence[str]) -> list[int]:
        return [estimate_tokens(text) for text in texts]

    async def count_prompt(self, request: GenerationRequest) -> int | None:
        return None
