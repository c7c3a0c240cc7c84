"""``em server gc``: remove blobs no artifact references, and uploads a dead server left.

A blob is garbage when no artifact file (nor a run's image, :mod:`em_dist.server.media_store`) references it and nobody uploaded or hash-checked
it for ``grace_s`` (a client uploads an artifact's blobs first and registers the artifact
after, so a fresh blob without references is an upload in flight, not garbage). Objects
in the store without a database row (a server killed between storing and recording) are
garbage once older than the grace period too. Each blob is decided and removed under its
lock (:mod:`em_dist.server.blob_records`), so a concurrent upload or artifact registration
either sees the blob gone (and sends it again) or keeps it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, exists, func, select
from sqlalchemy.exc import IntegrityError

from em_dist.server import blob_records
from em_dist.server.blobs import STALE_UPLOAD_S, BlobStore
from em_dist.server.db import Database
from em_dist.server.models import ArtifactFile, Blob, MediaRecord

GRACE_S = 24 * 3600.0
"""Default grace period: an unreferenced blob younger than this is kept (an upload in flight)."""


@dataclass
class GcReport:
    """What one collection did (or, with ``dry_run``, would do)."""

    blobs: int = 0
    bytes: int = 0
    stale_uploads: int = 0

    def __str__(self) -> str:
        return f"{self.blobs} blob(s), {self.bytes} bytes; {self.stale_uploads} abandoned upload(s)"


def _unreferenced(sha256_col):  # type: ignore[no-untyped-def]
    return ~exists().where(ArtifactFile.sha256 == sha256_col) & ~exists().where(MediaRecord.sha256 == sha256_col)


def _collect_one(db: Database, store: BlobStore, sha256: str, cutoff: dt.datetime, dry_run: bool) -> int | None:
    """Remove ``sha256`` if it is still garbage under its lock; its size, or None when kept."""
    with db.write_session() as session:
        blob_records.lock(session, sha256)
        row = session.execute(select(Blob).where(Blob.sha256 == sha256).with_for_update()).scalar_one_or_none()
        if row is not None:
            last = row.last_upload or row.created
            if last.tzinfo is None:  # SQLite returns naive UTC
                last = last.replace(tzinfo=dt.timezone.utc)
            referenced = session.scalar(select(exists().where(ArtifactFile.sha256 == sha256))) \
                or session.scalar(select(exists().where(MediaRecord.sha256 == sha256)))
            if referenced or last >= cutoff:
                return None
            size = row.size
            try:
                session.execute(delete(Blob).where(Blob.sha256 == sha256))
                session.flush()
            except IntegrityError:  # an artifact referenced it meanwhile
                session.rollback()
                return None
        else:
            found = store.stat(sha256)
            if found is None or found.modified >= cutoff.timestamp():
                return None
            size = found.size
        if dry_run:
            session.rollback()
            return size
        store.delete(sha256)  # before the commit: under the lock, an upload cannot record it meanwhile
        session.commit()
        return size


def collect(db: Database, store: BlobStore, *, grace_s: float = GRACE_S, dry_run: bool = False) -> GcReport:
    """Remove unreferenced blobs older than ``grace_s`` and abandoned temporary uploads."""
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=grace_s)
    with db.read_session() as session:
        candidates = set(session.scalars(
            select(Blob.sha256).where(_unreferenced(Blob.sha256),
                                      func.coalesce(Blob.last_upload, Blob.created) < cutoff)))
        known = set(session.scalars(select(Blob.sha256)))
    candidates.update(b.sha256 for b in store.iter_blobs()
                      if b.sha256 not in known and b.modified < cutoff.timestamp())
    report = GcReport()
    for sha256 in sorted(candidates):
        size = _collect_one(db, store, sha256, cutoff, dry_run)
        if size is not None:
            report.blobs += 1
            report.bytes += size
    if not dry_run:
        report.stale_uploads = store.remove_stale_uploads(STALE_UPLOAD_S)  # a live upload keeps writing
    return report

