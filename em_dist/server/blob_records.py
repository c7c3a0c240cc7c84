"""The database side of a blob's life, safe with several server processes and ``em server gc``.

One rule orders everything that writes a blob row or the blob's bytes: a per-blob lock
held to the end of the transaction (:func:`lock`; PostgreSQL advisory lock, SQLite's
single writer). Under it an upload records the blob only if the store still holds it,
and the garbage collector deletes a blob only if no artifact references it and nobody
uploaded or hash-checked it within the grace period. An artifact registration holds its
blobs' rows with a shared row lock (:func:`hold`), so the collector cannot take a blob
between the check "uploaded" and the insert of the reference (nor after: the foreign key).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from em_dist.server.blobs import BlobStore
from em_dist.server.db import Database
from em_dist.server.models import Blob, BlobOwner

_BATCH = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def lock(session: Session, sha256: str) -> None:
    """Hold blob ``sha256``'s lock until the session's transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int(sha256[:15], 16)})
    # SQLite: a write transaction (BEGIN IMMEDIATE, see db.py) already excludes every other writer.


def hold(session: Session, hashes: Iterable[str]) -> None:
    """Share-lock the rows of ``hashes`` until the transaction ends (the collector waits)."""
    wanted = sorted(set(hashes))
    for start in range(0, len(wanted), _BATCH):
        session.execute(select(Blob.sha256).where(Blob.sha256.in_(wanted[start:start + _BATCH]))
                        .with_for_update(read=True)).all()


def renew(db: Database, sha256: str) -> None:
    """Restart ``sha256``'s grace period (an upload of it begins). Commits."""
    with db.write_session() as session:
        lock(session, sha256)
        session.execute(update(Blob).where(Blob.sha256 == sha256).values(last_upload=_now()))
        session.commit()


def record(db: Database, store: BlobStore, user_id: str, sha256: str, size: int) -> bool:
    """Record that ``user_id`` uploaded ``sha256`` (idempotent, safe against concurrent twins).

    False when the store no longer holds the bytes (the collector took them after the
    upload found them there and only hashed what it received): the caller must send them again.
    """
    with db.write_session() as session:
        lock(session, sha256)
        if not store.exists(sha256):
            session.rollback()
            return False
        row = session.get(Blob, sha256)
        if row is None:
            session.add(Blob(sha256=sha256, size=size, last_upload=_now()))
        else:
            row.last_upload = _now()
        session.flush()
        if session.get(BlobOwner, (sha256, user_id)) is None:
            session.add(BlobOwner(sha256=sha256, user_id=user_id))
        session.commit()
    return True
