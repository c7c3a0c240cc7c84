"""``em server gc`` against its races, in process on a real SQLite database and blob directory."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import anyio
import pytest

from em_dist.server import admin, blob_gc, blob_records, migrate
from em_dist.server.blobs_dir import DirectoryBlobStore
from em_dist.server.config import ServerConfig
from em_dist.server.db import Database, open_database
from em_dist.server.models import User
from tests.server.harness import database_url, run_async


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    config = ServerConfig.build(tmp_path / "server", database_url(request.param, request))
    migrate.upgrade(config)
    db = open_database(config)
    admin.add_user(db, "alice")
    with db.read_session() as session:
        user_id = session.query(User).filter_by(name="alice").one().id
    try:
        yield db, DirectoryBlobStore(config.data_dir / "blobs"), user_id
    finally:
        db.dispose()


async def _stream(data: bytes, midway=None):  # type: ignore[no-untyped-def]
    yield data[: len(data) // 2]
    if midway is not None:
        await anyio.to_thread.run_sync(midway)
    yield data[len(data) // 2:]


def _upload(db: Database, store: DirectoryBlobStore, user_id: str, data: bytes, midway=None) -> bool:  # type: ignore[no-untyped-def]
    sha = hashlib.sha256(data).hexdigest()
    blob_records.renew(db, sha)
    size = run_async(store.write_stream, sha, _stream(data, midway))
    return blob_records.record(db, store, user_id, sha, size)


def test_bytes_collected_while_an_upload_only_hashed_them_are_not_recorded(world) -> None:  # type: ignore[no-untyped-def]
    db, store, user_id = world
    data = os.urandom(4000)
    sha = hashlib.sha256(data).hexdigest()
    assert _upload(db, store, user_id, data)
    # a second upload finds the bytes stored and only hashes; gc (grace 0) takes them meanwhile
    collected = []
    assert not _upload(db, store, user_id, data, midway=lambda: collected.append(blob_gc.collect(db, store, grace_s=0)))
    assert collected[0].blobs == 1 and not store.exists(sha)  # answered 503: the client sends it again
    assert _upload(db, store, user_id, data) and store.exists(sha)


def test_a_fresh_upload_survives_and_orphans_and_dead_uploads_go(world) -> None:  # type: ignore[no-untyped-def]
    db, store, user_id = world
    fresh = os.urandom(3000)
    assert _upload(db, store, user_id, fresh)
    orphan_old, orphan_young = os.urandom(100), os.urandom(200)  # stored, never recorded (a killed server)
    for data in (orphan_old, orphan_young):
        run_async(store.write_stream, hashlib.sha256(data).hexdigest(), _stream(data))
    old = time.time() - 7200
    os.utime(store.path(hashlib.sha256(orphan_old).hexdigest()), (old, old))
    dead = store._writer("ef" * 32)  # a temporary upload its dead server never finished
    dead.write(b"partial")
    os.utime(next(store.root.rglob(".upload-*")), (old, old))
    report = blob_gc.collect(db, store, grace_s=3600)
    assert (report.blobs, report.bytes, report.stale_uploads) == (1, 100, 1)
    assert store.exists(hashlib.sha256(fresh).hexdigest()) and store.exists(hashlib.sha256(orphan_young).hexdigest())
    assert not list(store.root.rglob(".upload-*"))
