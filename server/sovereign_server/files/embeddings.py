"""Embeddings from any OpenAI-compatible `/v1/embeddings` server (vLLM, llama.cpp's `llama-server
--embeddings`, Ollama), for vector search beside full-text ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx2
import numpy as np
import openai

# Texts per request: large enough to amortise a request, small enough for any server's batch limit.
BATCH_SIZE = 32


class EmbeddingError(Exception):
    """The embeddings backend failed or answered something unusable."""


class Embedder(Protocol):
    """Turns texts into unit vectors (float32), one row per text."""

    name: str

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class EmbeddingsConfig:
    base_url: str
    # The model name sent upstream.
    model: str = "default"
    api_key: str = "not-needed"
    timeout: float = 60.0


class OpenAIEmbedder:
    """An `Embedder` over an OpenAI-compatible server."""

    def __init__(self, config: EmbeddingsConfig) -> None:
        self.name = config.model
        self._config = config
        self._client = openai.AsyncOpenAI(
            base_url=config.base_url,
            api_key=config.api_key,
            max_retries=2,
            timeout=httpx2.Timeout(config.timeout, connect=5.0),
        )

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = [text or " " for text in texts[start : start + BATCH_SIZE]]
            try:
                response = await self._client.embeddings.create(model=self._config.model, input=batch)
            except openai.OpenAIError as error:
                raise EmbeddingError(f"The embeddings backend failed: {error}") from error
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbeddingError(f"The embeddings backend returned {len(data)} vectors for {len(batch)} texts.")
            rows.extend(list(item.embedding) for item in data)
        return normalized(np.asarray(rows, dtype=np.float32).reshape(len(rows), -1))

    async def aclose(self) -> None:
        await self._client.close()


def normalized(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), so a dot product is a cosine."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    result: np.ndarray = (matrix / norms).astype(np.float32)
    return result
