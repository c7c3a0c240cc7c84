"""One contract suite for both blob stores: a local directory and S3 (``rclone serve s3``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from em_dist.server.blobs import BlobStore, DigestMismatch, open_blob_store
from em_dist.server.blobs_dir import DirectoryBlobStore
from em_dist.server.blobs_s3 import S3BlobStore
from tests.server.harness import run_async

MiB = 1024 * 1024


@pytest.fixture(params=["dir", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> BlobStore:
    if request.param == "dir":
        return open_blob_store(tmp_path / "blobs")
    s3 = request.getfixturevalue("s3_server")
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    found = open_blob_store(f"s3://{s3.new_bucket()}/team/blobs")
    assert isinstance(found, S3BlobStore)
    found.part_bytes = 5 * MiB  # S3's smallest part: an 11 MiB blob goes up in three
    return found


def leftovers(store: BlobStore) -> list:
    """Temporary uploads the store holds (files or open multipart uploads)."""
    if isinstance(store, DirectoryBlobStore):
        return list(store.root.rglob(".upload-*"))
    assert isinstance(store, S3BlobStore)
    return store.pending_uploads()


async def _chunks(data: bytes, size: int = 256 * 1024, fail_after: int | None = None):
    for i, start in enumerate(range(0, len(data), size)):
        if fail_after is not None and i == fail_after:
            raise ConnectionResetError("the client went away")
        yield data[start:start + size]


def put(store: BlobStore, data: bytes, sha: str | None = None, fail_after: int | None = None) -> int:
    """Stream ``data`` into ``store``; ``fail_after`` breaks the stream after that many quarters."""
    sha = sha or hashlib.sha256(data).hexdigest()
    size = 256 * 1024 if fail_after is None else max(1, len(data) // 4)
    return run_async(store.write_stream, sha, _chunks(data, size, fail_after=fail_after))


@pytest.mark.parametrize("size", [0, 3000, 11 * MiB + 7])
def test_a_blob_is_stored_read_in_ranges_listed_and_deleted(store: BlobStore, size: int) -> None:
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    assert not store.exists(sha) and store.stat(sha) is None
    assert put(store, data) == size
    assert store.exists(sha) and store.stat(sha).size == size
    assert b"".join(store.read(sha)) == data
    if size:
        assert b"".join(store.read(sha, 1, size - 1)) == data[1:size - 1]
        assert b"".join(store.read(sha, size // 2)) == data[size // 2:]
    assert b"".join(store.read(sha, 0, 0)) == b""
    assert [(b.sha256, b.size) for b in store.iter_blobs()] == [(sha, size)]
    assert leftovers(store) == []
    store.delete(sha)
    store.delete(sha)  # already gone: no error
    assert not store.exists(sha) and list(store.iter_blobs()) == []


@pytest.mark.parametrize("size", [3000, 11 * MiB])
def test_wrong_bytes_and_broken_streams_leave_nothing(store: BlobStore, size: int) -> None:
    data = os.urandom(size)
    sha = hashlib.sha256(data).hexdigest()
    with pytest.raises(DigestMismatch):
        put(store, data, sha="0" * 64)
    with pytest.raises(ConnectionResetError):
        put(store, data, fail_after=3)  # 11 MiB: after a part went up
    assert not store.exists("0" * 64) and not store.exists(sha)
    assert list(store.iter_blobs()) == [] and leftovers(store) == []


def test_bytes_already_held_are_hashed_not_written_again(store: BlobStore) -> None:
    data = b"held" * 1000
    sha = hashlib.sha256(data).hexdigest()
    put(store, data)
    before = store.stat(sha)
    with pytest.raises(DigestMismatch):  # a sender must still prove it holds the bytes
        put(store, b"other", sha=sha)
    assert put(store, data) == len(data)
    assert store.stat(sha) == before and b"".join(store.read(sha)) == data


def test_stale_temporary_uploads_are_removed(store: BlobStore) -> None:
    writer = store._writer("ab" * 32)
    writer.write(os.urandom(6 * MiB))  # a server killed mid-upload: never committed nor aborted
    assert len(leftovers(store)) == 1
    assert store.remove_stale_uploads(older_than_s=3600) == 0  # young: maybe another process's live upload
    assert store.remove_stale_uploads(older_than_s=-60) == 1
    assert leftovers(store) == [] and not store.exists("ab" * 32)
