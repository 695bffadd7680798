"""The file directory: file bytes stored by their SHA-256, written as they stream in.

Content-addressed: two uploads of the same bytes share one blob, which is removed when no file
refers to it any more. A blob is written to a temporary file in the same directory, hashed as it
grows, and renamed into place once complete, so a crash never leaves a partial blob under a name.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

_READ_CHUNK = 1024 * 1024


class BlobWriter:
    """One blob being written: `write` pieces, then `commit` (or `discard`)."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=store.temporary_dir)
        self._path = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self.size += len(data)

    def commit(self) -> str:
        """Moves the blob into place; returns its SHA-256 (hex)."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        digest = self._hash.hexdigest()
        target = self._store.path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path, target)
        return digest

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # A blob not committed by the end of the block is abandoned.
        if not self._file.closed:
            self.discard()


class BlobStore:
    """Blobs under `root`: `root/ab/cd/abcd...` for the SHA-256 `abcd...`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.temporary_dir = self.root / "tmp"
        self.temporary_dir.mkdir(parents=True, exist_ok=True)
        # Uploads a stopped process left half-written.
        for leftover in self.temporary_dir.glob("upload-*.part"):
            leftover.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a SHA-256 digest: {digest!r}")
        return self.root / digest[:2] / digest[2:4] / digest

    def writer(self) -> BlobWriter:
        return BlobWriter(self)

    def read(self, digest: str, chunk_size: int = _READ_CHUNK) -> Iterator[bytes]:
        with self.path(digest).open("rb") as file:
            while piece := file.read(chunk_size):
                yield piece

    def read_all(self, digest: str) -> bytes:
        return self.path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
