"""The blob store contract: content-addressed bytes, committed only under their true sha256.

A store holds each blob once, under its lowercase sha256 hex. Uploads stream through
:meth:`BlobStore.write_stream`, which hashes as the bytes arrive and lets the store's
:class:`BlobWriter` make them visible only when the digest matches; whatever ends the
request otherwise (a mismatch, a client disconnect, a cancellation) aborts the writer,
so no half-received upload is ever kept. Two implementations:
:class:`em_dist.server.blobs_dir.DirectoryBlobStore` (a local directory) and
:class:`em_dist.server.blobs_s3.S3BlobStore` (an S3-compatible bucket); :func:`open_blob_store`
picks one from a location string.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterable, Iterator

import anyio

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BATCH_BYTES = 1024 * 1024
STALE_UPLOAD_S = 3600.0
"""A temporary upload this old belongs to a server process that died (live uploads keep writing)."""


class DigestMismatch(Exception):
    """The received bytes do not hash to the announced sha256."""

    def __init__(self, expected: str, actual: str, size: int) -> None:
        super().__init__(f"content hashes to {actual}, not {expected} ({size} bytes received)")
        self.actual = actual


class BlobStoreUnavailable(Exception):
    """The blob store cannot be used (no such bucket, no credentials, endpoint unreachable)."""


def is_sha256(text: str) -> bool:
    """True for a lowercase 64-digit hex string."""
    return bool(_SHA256.match(text))


@dataclass(frozen=True)
class StoredBlob:
    """One blob as the store sees it: hash, size, last write (seconds since the epoch)."""

    sha256: str
    size: int
    modified: float


class BlobWriter(ABC):
    """One upload in progress. Bytes go in with :meth:`write` (called on a worker thread,
    in order); only :meth:`commit` makes them visible under the hash."""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Append ``data`` to the pending upload."""

    @abstractmethod
    def commit(self) -> None:
        """Make the written bytes the blob (called once, only after the digest matched)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop whatever was written; idempotent, a no-op after :meth:`commit`, never raises."""


class BlobStore(ABC):
    """Blobs addressed by lowercase sha256 hex. Methods other than :meth:`write_stream` block
    (disk or network): async callers run them on a worker thread."""

    location: str
    """Where the blobs live, for messages (a directory path or ``s3://bucket/prefix``)."""

    @abstractmethod
    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""

    @abstractmethod
    def stat(self, sha256: str) -> StoredBlob | None:
        """Size and last write of the blob, or None when it is not stored."""

    @abstractmethod
    def read(self, sha256: str, start: int = 0, end: int | None = None, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of the blob (``end=None``: to its end), in chunks."""

    @abstractmethod
    def iter_blobs(self) -> Iterator[StoredBlob]:
        """Every stored blob (temporary uploads excluded), in no particular order."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the blob; no error when it is already gone."""

    @abstractmethod
    def remove_stale_uploads(self, older_than_s: float = STALE_UPLOAD_S) -> int:
        """Remove temporary uploads older than ``older_than_s`` that a killed server left
        behind (only old ones: another server process may share the store). Returns how many."""

    @abstractmethod
    def _writer(self, sha256: str) -> BlobWriter:
        """A writer whose commit stores the bytes as ``sha256``."""

    def write_bytes(self, sha256: str, data: bytes) -> None:
        """Store ``data`` (already hashed by the caller: ``sha256`` is its digest), unless it is stored.
        Blocks; for small blobs only (a journal record's image)."""
        if self.exists(sha256):
            return
        writer = self._writer(sha256)
        try:
            writer.write(data)
            writer.commit()
        finally:
            writer.abort()

    async def write_stream(self, sha256: str, chunks: AsyncIterable[bytes]) -> int:
        """Store the streamed bytes as ``sha256``; returns the size. Raises DigestMismatch.

        Hashing and store writes run on a worker thread in batches of about 1 MiB, so the
        event loop keeps serving other requests. When the blob is already stored the bytes
        are only hashed (proving the sender holds them), not written again.
        """
        exists = await anyio.to_thread.run_sync(self.exists, sha256)
        writer = None if exists else await anyio.to_thread.run_sync(self._writer, sha256)
        digest = hashlib.sha256()
        size = 0

        def absorb(batch: list[bytes]) -> None:
            data = b"".join(batch)
            digest.update(data)
            if writer is not None:
                writer.write(data)

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
            actual = digest.hexdigest()
            if actual != sha256:
                raise DigestMismatch(sha256, actual, size)
            if writer is not None:
                await anyio.to_thread.run_sync(writer.commit)
        finally:
            if writer is not None:
                # shielded: a cancelled request (client gone) must still clean up its temporary upload
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(writer.abort)
        return size


def open_blob_store(location: str | Path, *, s3_endpoint_url: str | None = None) -> BlobStore:
    """The store at ``location``: ``s3://bucket/prefix`` (through boto3; credentials and region
    from the standard AWS variables, endpoint from ``s3_endpoint_url`` or ``AWS_ENDPOINT_URL``),
    otherwise a local directory (a path, or ``file://`` + path)."""
    text = str(location)
    if text.startswith("s3://"):
        from em_dist.server.blobs_s3 import S3BlobStore  # boto3 only where S3 is used

        return S3BlobStore.from_url(text, endpoint_url=s3_endpoint_url)
    from em_dist.server.blobs_dir import DirectoryBlobStore

    return DirectoryBlobStore(Path(text.removeprefix("file://")).expanduser())
