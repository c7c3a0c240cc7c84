"""Content-addressed blob store on the local file system.

A blob lives at ``<root>/<sha[:2]>/<sha>``. Writes stream into a temporary file in the
same directory while hashing, and are renamed into place only when the digest matches,
so a half-received or corrupt upload never becomes visible.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import AsyncIterable, Iterator

import anyio

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BATCH_BYTES = 1024 * 1024


class DigestMismatch(Exception):
    """The received bytes do not hash to the announced sha256."""

    def __init__(self, expected: str, actual: str, size: int) -> None:
        super().__init__(f"content hashes to {actual}, not {expected} ({size} bytes received)")
        self.actual = actual


def is_sha256(text: str) -> bool:
    """True for a lowercase 64-digit hex string."""
    return bool(_SHA256.match(text))


class BlobStore:
    """Blobs under one directory, addressed by lowercase sha256 hex."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._remove_stale_uploads()

    def _remove_stale_uploads(self, older_than_s: float = 3600.0) -> None:
        """Delete temporary files a killed server left behind (only old ones: another
        server process may share the directory)."""
        cutoff = time.time() - older_than_s
        for tmp in self.root.glob("*/.upload-*"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
            except OSError:
                continue

    def path(self, sha256: str) -> Path:
        """Where the blob ``sha256`` lives (whether or not it exists)."""
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def write_stream(self, sha256: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the streamed bytes as ``sha256``; returns the size. Raises DigestMismatch.

        Hashing and disk writes run on a worker thread in batches of about 1 MiB, so the
        event loop keeps serving other requests. When the blob is already on disk the
        bytes are only hashed (proving the sender holds them), not written again. The
        temporary file is removed whenever the request ends without a match, a client
        disconnect or a cancellation included.
        """
        target = self.path(sha256)
        keep = not target.is_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-") if keep else (-1, "")
        fh = os.fdopen(fd, "wb") if keep else None

        def absorb(batch: list[bytes]) -> None:
            data = b"".join(batch)
            digest.update(data)
            if fh is not None:
                fh.write(data)

        try:
            batch: list[bytes] = []
            pending = 0
            async for chunk in chunks:
                batch.append(chunk)
                pending += len(chunk)
                size += len(chunk)
                if pending >= _BATCH_BYTES:
                    await anyio.to_thread.run_sync(absorb, batch)
                    batch, pending = [], 0
            await anyio.to_thread.run_sync(absorb, batch)
            if fh is not None:
                fh.close()
            actual = digest.hexdigest()
            if actual != sha256:
                raise DigestMismatch(sha256, actual, size)
            if keep:
                os.replace(tmp, target)
        finally:
            if fh is not None:
                fh.close()
            if keep:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
        return size

    def iter_bytes(self, sha256: str, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The blob's content in chunks (for streaming downloads)."""
        with open(self.path(sha256), "rb") as fh:
            while True:
                chunk = fh.read(chunk_size)
                if not chunk:
                    return
                yield chunk
