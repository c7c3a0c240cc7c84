"""SQLAlchemy 2 models of the tracking server.

Metric points are not rows: each series (run, rank, type, name) holds a few chunk rows
whose columns are packed little-endian numpy arrays, and ``RankOffset`` remembers how
many bytes of each rank's ``metrics/rank-<r>.jsonl`` were ingested (idempotent resume).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    Index,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def new_id() -> str:
    """A fresh UUID4 string, the id of server-side objects."""
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base of every server table."""


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    revoked: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Folder(Base):
    __tablename__ = "folders"
    __table_args__ = (UniqueConstraint("owner_id", "path", name="uq_folder_owner_path"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(1000))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class FolderShare(Base):
    __tablename__ = "folder_shares"

    folder_id: Mapped[str] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    permission: Mapped[str] = mapped_column(String(8))  # "view" | "edit"


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    folder_id: Mapped[str] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500), index=True)
    local_name: Mapped[str] = mapped_column(String(500))
    alternative_name: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    labels: Mapped[list] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    start_timestamp: Mapped[str | None] = mapped_column(String(64), nullable=True)
    end_timestamp: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hparams: Mapped[dict] = mapped_column(JSON, default=dict)
    hparams_ranks: Mapped[dict] = mapped_column(JSON, default=dict)
    platform: Mapped[dict] = mapped_column(JSON, default=dict)
    git: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    world: Mapped[dict] = mapped_column(JSON, default=dict)
    lost_ranks: Mapped[list] = mapped_column(JSON, default=list)
    extra: Mapped[dict] = mapped_column(JSON, default=dict)
    archived: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    edited: Mapped[list | None] = mapped_column(JSON, nullable=True)
    """Metadata fields a user edited (``name``, ``labels``, ``description``): uploads keep them."""
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class RankOffset(Base):
    __tablename__ = "rank_offsets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    lines: Mapped[int] = mapped_column(BigInteger, default=0)


class MetricSeries(Base):
    __tablename__ = "metric_series"
    __table_args__ = (UniqueConstraint("run_id", "rank", "type", "name", name="uq_series"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    count: Mapped[int] = mapped_column(BigInteger, default=0)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_value: Mapped[float | None] = mapped_column(Float, nullable=True)


class MetricChunk(Base):
    __tablename__ = "metric_chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    series_id: Mapped[int] = mapped_column(
        ForeignKey("metric_series.id", ondelete="CASCADE"), index=True
    )
    n: Mapped[int] = mapped_column(Integer)
    steps: Mapped[bytes] = mapped_column(LargeBinary)
    values: Mapped[bytes] = mapped_column(LargeBinary)
    times: Mapped[bytes] = mapped_column(LargeBinary)
    epochs: Mapped[bytes] = mapped_column(LargeBinary)


class Blob(Base):
    """A blob the store holds. ``last_upload`` (None before 0004: then ``created``) starts the
    garbage collector's grace period; every upload of the bytes, or a hash check of them, renews it."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    last_upload: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True, default=_now)


class Artifact(Base):
    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    folder_id: Mapped[str] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"), index=True)
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    alternative_name: Mapped[str] = mapped_column(String(500))
    labels: Mapped[list] = mapped_column(JSON, default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    created_timestamp: Mapped[str | None] = mapped_column(String(64), nullable=True)
    references: Mapped[list] = mapped_column(JSON, default=list)
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class ArtifactFile(Base):
    __tablename__ = "artifact_files"

    artifact_id: Mapped[str] = mapped_column(
        ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)


class LineageEdge(Base):
    """A run's use of an artifact: role ``output`` (run -> artifact) or ``input`` (artifact -> run).

    ``artifact_id`` is not a foreign key: a run may name an artifact the server does not hold.
    ``rank`` is the rank that made or marked it in a multi-rank run (None: rank 0 or unknown).
    """

    __tablename__ = "lineage_edges"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    artifact_id: Mapped[str] = mapped_column(String(36), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    artifact_name: Mapped[str] = mapped_column(String(500), default="")
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ConsoleSession(Base):
    """A console sign-in: the SHA-256 of a random token, the key it came from, its expiry.

    Deleted at sign-out and when its key is revoked; a session only ever reads.
    """

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    expires: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class BlobOwner(Base):
    """A user who uploaded (or, before 0002, attached) a blob: they may reference it by hash."""

    __tablename__ = "blob_owners"

    sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)


class LogOffset(Base):
    """How much of a rank's captured output the server took (logical bytes, see em_dist.store.logs)
    and how much it dropped to stay under the limit (newest kept)."""

    __tablename__ = "log_offsets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    held_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class LogLine(Base):
    """One captured line of one rank (``logs/rank-<r>.log``), in the order printed (``id``)."""

    __tablename__ = "log_lines"
    __table_args__ = (Index("ix_log_lines_run_rank", "run_id", "rank", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    time: Mapped[float] = mapped_column(Float)
    stream: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    n: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The record number of a line merged from a rank's journal (None: from the run folder's log)."""


class RankRecords(Base):
    """Which numbered records of a rank (and attempt) the server holds, so each lands exactly once
    whichever way it comes: the run folder's upload (rank 0's copy) or the rank's own journal.

    A rank's records are numbered 1, 2, ... and travel in order, so two high-water marks say it
    all: ``held``, the newest the run folder holds (its numbered metric lines, and rank 0's
    ``delivery`` claim); ``merged``, the newest taken from journal uploads.
    """

    __tablename__ = "rank_records"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    held: Mapped[int] = mapped_column(BigInteger, default=0)
    merged: Mapped[int] = mapped_column(BigInteger, default=0)
    folder_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    """Rank 0 had every record of the rank (its ``delivery`` said ``complete``)."""
    journal_last: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The newest number of the rank's closed journal (all it ever logged), once one was uploaded."""
    journal: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    """``host:path`` of the journal holding the rest (rank 0's ``delivery``, or the last journal uploaded)."""


class MediaRecord(Base):
    """One logged media value (``em.Histogram``, ``em.Image``, ``em.Table``, ``em.Text``) of a rank:
    its JSON document as the run folder's ``media/rank-<r>.jsonl`` holds it (an image names its PNG
    by ``sha256``, a blob of the blob store). ``n``/``attempt``: a peer's record number, unique per
    run and rank, so a record that comes by the folder and by the journal is stored once."""

    __tablename__ = "media_records"
    __table_args__ = (
        UniqueConstraint("run_id", "rank", "attempt", "n", name="uq_media_number"),
        Index("ix_media_run_rank", "run_id", "rank", "id"),
        Index("ix_media_sha256", "sha256"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    rank: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    n: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(500))
    step: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    doc: Mapped[str] = mapped_column(Text)


class MediaOffset(Base):
    """How many bytes of each rank's ``media/rank-<r>.jsonl`` a folder upload sent (its resume point)."""

    __tablename__ = "media_offsets"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
