"""Search over vector stores, for every API that needs it: `POST /v1/vector_stores/{id}/search`, the
`file_search` tool of Assistants runs, and the Responses API's `file_search` tool.

Full-text ranking always (SQLite FTS5's BM25, or PostgreSQL's full-text rank); with an embeddings
backend, also vector similarity (exact: a matrix product over the store's embeddings, cached per
store until its chunks change), the rankings fused by reciprocal rank fusion.

Scores are 0..1, higher is better. Full-text only: half how many of the query's words the chunk
holds, half its rank score relative to the best hit. Fused: the reciprocal rank fusion score
relative to the best possible one (1.0 for a chunk first in every ranking).
"""

from __future__ import annotations

import asyncio
import re
from asyncio import to_thread
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sovereign_server.files.embeddings import Embedder
from sovereign_server.files.filters import matches
from sovereign_storage import AttributeValue, FileStore, SearchableFile

# Reciprocal rank fusion's constant (the value of the method's authors).
RRF_K = 60
_WORDS = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class SearchRequest:
    vector_store_ids: tuple[str, ...]
    queries: tuple[str, ...]
    max_num_results: int = 10
    score_threshold: float = 0.0
    # A filter as `filters.check_filter` returns it.
    filters: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class SearchHit:
    """One chunk that matched."""

    file_id: str
    filename: str
    score: float
    text: str
    attributes: dict[str, AttributeValue] | None = None
    vector_store_id: str = ""


@dataclass
class _Embeddings:
    version: tuple[int, int]
    chunk_ids: np.ndarray
    file_ids: list[str]
    matrix: np.ndarray


@dataclass
class _Fused:
    scores: dict[int, float] = field(default_factory=dict)
    rankings: int = 0

    def add(self, ranking: Sequence[int]) -> None:
        self.rankings += 1
        for rank, chunk_id in enumerate(ranking):
            self.scores[chunk_id] = self.scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank + 1)


class SearchService:
    """Searches the vector stores of a project (see the module docstring)."""

    def __init__(self, store: FileStore, embedder: Embedder | None = None) -> None:
        self._store = store
        self.embedder = embedder
        self._cache: dict[str, _Embeddings] = {}
        self._cache_lock = asyncio.Lock()

    @property
    def hybrid(self) -> bool:
        return self.embedder is not None

    async def search(self, project_id: str, request: SearchRequest) -> list[SearchHit]:
        store = self._store.scoped(project_id)
        live = await to_thread(store.touch_vector_stores, request.vector_store_ids)
        files = await to_thread(store.searchable_files, live)
        if request.filters is not None:
            files = [file for file in files if matches(request.filters, file.attributes)]
        queries = [query for query in request.queries if query.strip()]
        if not files or not queries:
            return []
        by_key = {(file.vector_store_id, file.file_id): file for file in files}
        allowed = None if request.filters is None else {file.file_id for file in files}
        stores = sorted({file.vector_store_id for file in files})
        candidates = max(50, request.max_num_results * 4)

        lexical = [await to_thread(store.lexical_search, stores, query, candidates, allowed) for query in queries]
        if self.embedder is None:
            return await self._lexical_hits(store, queries, lexical, by_key, request)
        fused = _Fused()
        for hits in lexical:
            fused.add([hit.chunk_id for hit in hits])
        vectors = await self.embedder.embed(queries)
        for vector in vectors:
            fused.add(await self._nearest(store, stores, vector, candidates, allowed))
        best = fused.rankings / (RRF_K + 1)
        ranked = sorted(fused.scores.items(), key=lambda item: (-item[1], item[0]))
        scored = [(chunk_id, min(1.0, score / best)) for chunk_id, score in ranked]
        return await self._hits(store, scored, by_key, request)

    async def _lexical_hits(
        self,
        store: FileStore,
        queries: Sequence[str],
        lexical: Sequence[Sequence[Any]],
        by_key: Mapping[tuple[str, str], SearchableFile],
        request: SearchRequest,
    ) -> list[SearchHit]:
        ranks: dict[int, float] = {}
        for hits in lexical:
            top = max((hit.score for hit in hits), default=0.0) or 1.0
            for hit in hits:
                ranks[hit.chunk_id] = max(ranks.get(hit.chunk_id, 0.0), hit.score / top)
        chunks = await to_thread(store.chunks, list(ranks))
        terms = [_words(query) for query in queries]
        scored = []
        for chunk_id, relative in ranks.items():
            chunk = chunks.get(chunk_id)
            if chunk is None:
                continue
            # A word counts when its stem occurs in the chunk: a substring test, fast enough to run
            # on every candidate (splitting each chunk into words cost tens of milliseconds a search).
            text = chunk.text.lower()
            coverage = max((sum(term in text for term in query) / len(query) for query in terms if query), default=0.0)
            scored.append((chunk_id, round(0.5 * coverage + 0.5 * relative, 6)))
        scored.sort(key=lambda item: (-item[1], item[0]))
        return await self._hits(store, scored, by_key, request, chunks)

    async def _hits(
        self,
        store: FileStore,
        scored: Sequence[tuple[int, float]],
        by_key: Mapping[tuple[str, str], SearchableFile],
        request: SearchRequest,
        chunks: Mapping[int, Any] | None = None,
    ) -> list[SearchHit]:
        kept = [(chunk_id, score) for chunk_id, score in scored if score >= request.score_threshold]
        kept = kept[: request.max_num_results]
        if chunks is None:
            chunks = await to_thread(store.chunks, [chunk_id for chunk_id, _ in kept])
        assert chunks is not None
        hits = []
        for chunk_id, score in kept:
            chunk = chunks.get(chunk_id)
            file = None if chunk is None else by_key.get((chunk.vector_store_id, chunk.file_id))
            if chunk is None or file is None:
                continue
            hits.append(
                SearchHit(file.file_id, file.filename, score, chunk.text, file.attributes, file.vector_store_id)
            )
        return hits

    async def _nearest(
        self, store: FileStore, store_ids: Sequence[str], vector: np.ndarray, limit: int, allowed: set[str] | None
    ) -> list[int]:
        ids: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for store_id in store_ids:
            embeddings = await self._embeddings(store, store_id)
            if embeddings is None or embeddings.matrix.shape[1] != vector.shape[0]:
                continue
            similarity = embeddings.matrix @ vector
            if allowed is not None:
                mask = np.fromiter(
                    (file_id in allowed for file_id in embeddings.file_ids), bool, len(embeddings.file_ids)
                )
                similarity = np.where(mask, similarity, -np.inf)
            ids.append(embeddings.chunk_ids)
            scores.append(similarity)
        if not ids:
            return []
        all_ids = np.concatenate(ids)
        all_scores = np.concatenate(scores)
        count = min(limit, len(all_ids))
        top = np.argpartition(-all_scores, count - 1)[:count]
        top = top[np.argsort(-all_scores[top], kind="stable")]
        return [int(all_ids[index]) for index in top if np.isfinite(all_scores[index])]

    async def _embeddings(self, store: FileStore, store_id: str) -> _Embeddings | None:
        version = await to_thread(store.chunk_version, store_id)
        async with self._cache_lock:
            cached = self._cache.get(store_id)
            if cached is not None and cached.version == version:
                return cached
            rows = await to_thread(store.chunk_embeddings, store_id)
            if not rows:
                self._cache.pop(store_id, None)
                return None
            matrix = np.stack([np.frombuffer(blob, dtype=np.float32) for _, _, blob in rows])
            entry = _Embeddings(
                version, np.asarray([row[0] for row in rows], dtype=np.int64), [row[1] for row in rows], matrix
            )
            self._cache[store_id] = entry
            return entry

    def forget(self, store_id: str) -> None:
        self._cache.pop(store_id, None)


def _words(text: str) -> set[str]:
    return {_stem(word) for word in _WORDS.findall(text.lower())}


def _stem(word: str) -> str:
    # Plurals and common endings: "prices" matches "price", "running" matches "run".
    for suffix in ("ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word
