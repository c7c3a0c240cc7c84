"""The blob store on a local directory: ``<root>/<sha[:2]>/<sha>``.

An upload streams into ``<root>/<sha[:2]>/.upload-*`` and is renamed into place when its
digest matches (a rename is atomic, so a reader sees the whole blob or none).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from em_dist.server.blobs import STALE_UPLOAD_S, BlobStore, BlobWriter, StoredBlob, is_sha256

_TEMP_PREFIX = ".upload-"


class _FileWriter(BlobWriter):
    def __init__(self, target: Path) -> None:
        self._target = target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX)
        self._tmp = tmp
        self._fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self._fh.write(data)

    def commit(self) -> None:
        self._fh.close()
        os.replace(self._tmp, self._target)

    def abort(self) -> None:
        try:
            self._fh.close()
            os.unlink(self._tmp)
        except OSError:  # committed (renamed away) or already gone
            pass


class DirectoryBlobStore(BlobStore):
    """Blobs under one local directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_stale_uploads()

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (whether or not it exists)."""
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def stat(self, sha256: str) -> StoredBlob | None:
        try:
            st = self.path(sha256).stat()
        except FileNotFoundError:
            return None
        return StoredBlob(sha256, st.st_size, st.st_mtime)

    def read(self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        with open(self.path(sha256), "rb") as fh:
            fh.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = fh.read(chunk_size if left is None else min(chunk_size, left))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    def iter_blobs(self) -> Iterator[StoredBlob]:
        for sub in self.root.iterdir():
            if not sub.is_dir():
                continue
            for entry in sub.iterdir():
                if is_sha256(entry.name) and entry.name[:2] == sub.name:
                    found = self.stat(entry.name)
                    if found is not None:
                        yield found

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def remove_stale_uploads(self, older_than_s: float = STALE_UPLOAD_S) -> int:
        cutoff = time.time() - older_than_s
        removed = 0
        for tmp in self.root.glob(f"*/{_TEMP_PREFIX}*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    removed += 1
            except OSError:
                continue
        return removed

    def _writer(self, sha256: str) -> BlobWriter:
        target = self.path(sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        return _FileWriter(target)
