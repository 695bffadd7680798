"""The `files` section of `make bench`: what ingesting files costs (text extracted, chunked and
indexed, in MB/s of file bytes), and search latency over 10,000 chunks, full-text (SQLite FTS5) and
hybrid (fused with exact vector search). In process, on a real SQLite file and file directory: the
figures are the storage and search code's, without HTTP.

Hybrid search needs an embeddings backend; a hashing embedder (words hashed into 256 dimensions)
stands in for it, so that the figure is the search's cost, not a model's."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sovereign_server.files import FileService, FileSettings, SearchRequest
from sovereign_server.files.embeddings import normalized
from sovereign_storage import (
    FileStore,
    IndexJob,
    NewChunk,
    NewFile,
    NewVectorStore,
    StoreFileSpec,
    migrate,
    open_database,
)

Row = dict[str, Any]
DIMENSIONS = 256
SEARCH_CHUNKS = 10_000
_WORDS = [
    "refund", "policy", "shipping", "invoice", "premium", "plan", "account", "password", "warranty", "battery",
    "screen", "delivery", "order", "price", "discount", "support", "contract", "renewal", "license", "storage",
    "backup", "network", "router", "printer", "keyboard", "monitor", "cable", "adapter", "charger", "speaker",
]  # fmt: skip


class HashingEmbedder:
    """Words hashed into a fixed number of dimensions: deterministic, instant, no model."""

    name = "hashing"

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        return normalized(np.stack([_hash_vector(text) for text in texts]))

    async def aclose(self) -> None:
        pass


def _hash_vector(text: str) -> np.ndarray:
    vector = np.zeros(DIMENSIONS, dtype=np.float32)
    for word in text.lower().split():
        vector[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "little") % DIMENSIONS] += 1.0
    return vector


# A vocabulary with a long tail, as prose has: a few words everywhere, most words rare.
_VOCABULARY = _WORDS + [f"{a}{b}" for a in _WORDS for b in ("ly", "er", "ment", "ness", "al", "ous", "ist", "ive")]
_WEIGHTS = [1.0 / (rank + 1) for rank in range(len(_VOCABULARY))]


def _text(rng: random.Random, words: int) -> str:
    lines = []
    for _ in range(max(1, words // 12)):
        lines.append(" ".join(rng.choices(_VOCABULARY, _WEIGHTS, k=12)) + ".")
    return "\n".join(lines)


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _row(path: str, figure: str, value: str, n: int) -> Row:
    return {
        "section": "files",
        "path": path,
        "c": 1,
        "delay_ms": 0,
        "figure": figure,
        "value": value,
        "vs": "",
        "target": "",
        "passed": None,
        "n": n,
        "errors": 0,
    }


async def measure_files(quick: bool, workdir: Path, raw: dict[str, Any]) -> list[Row]:
    database = open_database(str(workdir / "files.sqlite3"))
    migrate(database)
    store = FileStore(database)
    rng = random.Random(7)
    rows: list[Row] = []

    # Ingest: files written to the file directory, then indexed by the background indexer.
    files = FileService(store, FileSettings(str(workdir / "files")))
    count, words = (8, 20_000) if quick else (32, 40_000)
    specs = []
    total = 0
    for index in range(count):
        data = _text(rng, words).encode()
        total += len(data)
        with files.blobs.writer() as writer:
            writer.write(data)
            digest = writer.commit()
        record = store.create_file(NewFile(f"doc{index}.txt", "assistants", len(data), digest))
        specs.append(StoreFileSpec(record.id))
    started = time.perf_counter()
    await files.start()
    await files.create_vector_store(store.project_id, NewVectorStore(name="ingest"), specs)
    await files.indexer.idle(600)
    seconds = time.perf_counter() - started
    await files.stop()
    rate = total / seconds / 1e6
    raw["files_ingest"] = {"bytes": total, "files": count, "seconds": seconds, "mb_per_s": rate}
    rows.append(_row("ingest (txt, auto chunks)", "MB/s of file bytes", f"{rate:.1f} MB/s", count))

    # Search over SEARCH_CHUNKS chunks of one store.
    embedder = HashingEmbedder()
    search_store = store.create_vector_store(NewVectorStore(name="search"))
    file = store.create_file(NewFile("corpus.txt", "assistants", 0, "0" * 64))
    store.add_files(search_store.id, [StoreFileSpec(file.id)])
    texts = [_text(rng, 120) for _ in range(SEARCH_CHUNKS)]
    vectors = await embedder.embed(texts)
    chunks = [NewChunk(text, 120, vector.tobytes()) for text, vector in zip(texts, vectors, strict=True)]
    job = IndexJob(
        store.project_id, search_store.id, file.id, "corpus.txt", "0" * 64, StoreFileSpec(file.id).chunking_strategy
    )
    store.finish_indexing(job, chunks)
    queries = [" ".join(rng.sample(_VOCABULARY, 3)) for _ in range(60 if quick else 300)]
    for name, service in (
        ("lexical (FTS5 BM25)", FileService(store, FileSettings(str(workdir / "files"))).search_service),
        (
            "hybrid (BM25 + vectors, RRF)",
            FileService(store, FileSettings(str(workdir / "files")), embedder).search_service,
        ),
    ):
        request = SearchRequest((search_store.id,), (queries[0],), max_num_results=10)
        await service.search(store.project_id, request)  # warm: caches the store's embeddings
        times = []
        for query in queries:
            begun = time.perf_counter()
            hits = await service.search(store.project_id, SearchRequest((search_store.id,), (query,), 10))
            times.append(time.perf_counter() - begun)
            assert hits, "a search over the benchmark corpus found nothing"
        p50, p99 = _percentile(times, 50) * 1000, _percentile(times, 99) * 1000
        raw.setdefault("files_search", []).append({"path": name, "p50_ms": p50, "p99_ms": p99, "n": len(times)})
        rows.append(_row(name, f"search p50 / p99, {SEARCH_CHUNKS} chunks", f"{p50:.1f} / {p99:.1f} ms", len(times)))
    database.close()
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        results: dict[str, Any] = {}
        for row in asyncio.run(measure_files(True, Path(directory), results)):
            print(row["path"], row["figure"], row["value"])
