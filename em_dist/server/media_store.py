"""Media records on the server: a run folder's ``media/rank-<r>.jsonl`` by byte offset, and a rank's
journal's media records by number, each stored once.

A record is kept as the JSON document the run folder holds (an image names its PNG by ``sha256``;
the PNG is a blob of the blob store, sent first and deduplicated like an artifact's files). A
peer's record carries its number (``n``, ``attempt``): one that arrives by the folder and by the
rank's journal is stored once (:mod:`em_dist.server.numbered_records` and a unique index). Every
document is checked against :mod:`em_dist.limits`; a bad one is an :class:`IngestError` (400).
"""

from __future__ import annotations

import base64
import datetime as dt
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from em_dist.limits import (
    MAX_HISTOGRAM_BINS,
    MAX_IMAGE_FILE_BYTES,
    MAX_IMAGE_PIXELS,
    MAX_MEDIA_RECORD_BYTES,
    MAX_NAME_CHARS,
    MAX_STEP,
    MAX_TABLE_CELLS,
    MAX_TABLE_COLUMNS,
    MAX_TEXT_CHARS,
    MAX_TYPE_CHARS,
    json_problem,
    text_problem,
)
from em_dist.server import blob_records
from em_dist.server.blobs import BlobStore, is_sha256
from em_dist.server.metric_store import ChunkConflict, IngestError, OffsetConflict, offset_row, touch_run
from em_dist.server.models import Blob, BlobOwner, MediaOffset, MediaRecord

KINDS = ("histogram", "image", "table", "text")
MAX_READ_RECORDS = 10_000
"""Media records one read returns at most."""
MAX_READ_BYTES = 32 * 1024 * 1024
"""About the most bytes of media records one read returns (the rest come with ``after``)."""


class MissingBlobs(ChunkConflict):
    """Images of a chunk whose PNG the caller has not uploaded (HTTP 409 with ``missing``)."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"{len(missing)} image blob(s) not uploaded yet")
        self.missing = missing

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "missing": self.missing}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(raw: bytes | str, where: str) -> dict[str, Any]:
    """One media record's document, checked (kind, names, step, the kind's fields, limits)."""
    if len(raw) > MAX_MEDIA_RECORD_BYTES:
        raise IngestError(f"{where} is over {MAX_MEDIA_RECORD_BYTES} bytes")
    try:
        doc = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise IngestError(f"{where} is not a JSON media record") from None
    if not isinstance(doc, dict):
        raise IngestError(f"{where} is not a JSON object")
    problem = _problem(doc)
    if problem:
        raise IngestError(f"{where}: {problem}")
    return doc


def _is_int(value: Any, lo: int, hi: int) -> bool:
    return type(value) is int and lo <= value <= hi


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _problem(doc: dict[str, Any]) -> str | None:
    kind, type_, name = doc.get("kind"), doc.get("type"), doc.get("name")
    if kind not in KINDS:
        return f"'kind' must be one of {', '.join(KINDS)}"
    if not isinstance(type_, str) or not type_ or text_problem(type_, max_chars=MAX_TYPE_CHARS):
        return f"'type' must be a string of 1..{MAX_TYPE_CHARS} characters"
    if not isinstance(name, str) or not name or text_problem(name, max_chars=MAX_NAME_CHARS):
        return f"'name' must be a string of 1..{MAX_NAME_CHARS} characters"
    if not _is_int(doc.get("step"), 0, MAX_STEP):
        return "'step' must be an integer in 0..2**63-1"
    for key in ("epoch", "time"):
        if doc.get(key) is not None and not _is_number(doc[key]):
            return f"'{key}' must be a number or null"
    for key in ("n", "attempt"):
        if key in doc and not _is_int(doc[key], 0, 2**62):
            return f"'{key}' must be a non-negative integer"
    problem = _KIND_CHECKS[kind](doc)
    return problem or json_problem(doc)


def _image_problem(doc: dict[str, Any]) -> str | None:
    if not (isinstance(doc.get("sha256"), str) and is_sha256(doc["sha256"])) and not isinstance(doc.get("png"), str):
        return "an image names its PNG by 'sha256' (lowercase hex)"
    w, h = doc.get("width"), doc.get("height")
    if not _is_int(w, 1, MAX_IMAGE_PIXELS) or not _is_int(h, 1, MAX_IMAGE_PIXELS) or w * h > MAX_IMAGE_PIXELS:  # type: ignore[operator]
        return f"an image's 'width' x 'height' must be at most {MAX_IMAGE_PIXELS} pixels"
    caption = doc.get("caption")
    if caption is not None and (not isinstance(caption, str) or len(caption) > MAX_TEXT_CHARS):
        return f"an image's 'caption' must be a string of at most {MAX_TEXT_CHARS} characters"
    return None


def _histogram_problem(doc: dict[str, Any]) -> str | None:
    bins, counts = doc.get("bins"), doc.get("counts")
    if not isinstance(counts, list) or not 1 <= len(counts) <= MAX_HISTOGRAM_BINS \
            or not all(_is_int(c, 0, 2**62) for c in counts):
        return f"a histogram's 'counts' must be 1..{MAX_HISTOGRAM_BINS} non-negative integers"
    if not isinstance(bins, list) or len(bins) != len(counts) + 1 or not all(_is_number(b) for b in bins):
        return "a histogram's 'bins' must be len(counts) + 1 numbers"
    if not _is_int(doc.get("nonfinite", 0), 0, 2**62):
        return "a histogram's 'nonfinite' must be a non-negative integer"
    return None


def _table_problem(doc: dict[str, Any]) -> str | None:
    columns, rows = doc.get("columns"), doc.get("rows")
    if not isinstance(columns, list) or not 1 <= len(columns) <= MAX_TABLE_COLUMNS \
            or not all(isinstance(c, str) for c in columns):
        return f"a table's 'columns' must be 1..{MAX_TABLE_COLUMNS} strings"
    if not isinstance(rows, list) or len(rows) * len(columns) > MAX_TABLE_CELLS:
        return f"a table's 'rows' must be a list of at most {MAX_TABLE_CELLS} cells"
    for row in rows:
        if not isinstance(row, list) or len(row) != len(columns) \
                or not all(c is None or type(c) in (str, int, float, bool) for c in row):
            return "a table row must be a list of one str / number / bool / null per column"
    return None


def _text_problem(doc: dict[str, Any]) -> str | None:
    text = doc.get("text")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        return f"a text's 'text' must be a string of at most {MAX_TEXT_CHARS} characters"
    return None


_KIND_CHECKS = {"histogram": _histogram_problem, "image": _image_problem, "table": _table_problem, "text": _text_problem}


def row_for(run_id: str, rank: int, doc: dict[str, Any]) -> dict[str, Any]:
    doc.pop("path", None)  # the run folder's own file name: the server names an image by sha256
    return {"run_id": run_id, "rank": rank, "attempt": doc.get("attempt", 0) if "n" in doc else 0,
            "n": doc.get("n"), "kind": doc["kind"], "type": doc["type"], "name": doc["name"], "step": doc["step"],
            "sha256": doc.get("sha256") if doc["kind"] == "image" else None, "doc": json.dumps(doc, separators=(",", ":"), allow_nan=False)}


def insert_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert media rows; a numbered record the server holds already is skipped (the unique index)."""
    if not rows:
        return
    insert_ = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert_(MediaRecord).on_conflict_do_nothing(), rows)


def store_png(session: Session, blobs: BlobStore, user_id: str, png: bytes) -> str:
    """Store an image's PNG (from a journal record) as a blob owned by ``user_id``; its sha256."""
    if len(png) > MAX_IMAGE_FILE_BYTES:
        raise IngestError(f"an image's PNG is over {MAX_IMAGE_FILE_BYTES} bytes")
    digest = hashlib.sha256(png).hexdigest()
    blob_records.lock(session, digest)
    blobs.write_bytes(digest, png)
    if session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(png), last_upload=dt.datetime.now(dt.timezone.utc)))
        session.flush()
    if session.get(BlobOwner, (digest, user_id)) is None:
        session.add(BlobOwner(sha256=digest, user_id=user_id))
    return digest


def journal_doc(session: Session, blobs: BlobStore, user_id: str, text: str, where: str) -> dict[str, Any]:
    """A journal's media record (its mark taken off): checked, an image's inline PNG stored as a blob."""
    doc = parse(text, where)
    if doc["kind"] == "image":
        if not isinstance(doc.get("png"), str):  # a hash alone would name a blob the sender may not hold
            raise IngestError(f"{where}: a journal's image carries its PNG ('png', base64)")
        try:
            png = base64.b64decode(doc.pop("png"), validate=True)
        except (binascii.Error, ValueError):
            raise IngestError(f"{where}: an image's 'png' is not base64") from None
        doc["sha256"] = store_png(session, blobs, user_id, png)
    return doc


@dataclass
class MediaIngest:
    offset: int
    records: int


def ingest(session: Session, run_id: str, rank: int, offset: int, data: bytes, *,
           usable: dict[str, int], blobs: BlobStore) -> MediaIngest:
    """Store the complete lines of ``data``, bytes from ``offset`` of rank ``rank``'s ``media/rank-<r>.jsonl``.
    ``usable``: the image hashes the caller may reference. The caller commits. Raises IngestError,
    OffsetConflict or MissingBlobs (nothing stored)."""
    from em_dist.server import numbered_records  # it imports this module

    row = offset_row(session, MediaOffset, run_id, rank, offset=0)
    held = row.offset
    if offset > held:
        raise OffsetConflict(f"rank {rank}: the server holds {held} bytes of media records, not {offset}", held)
    skip = held - offset
    if skip >= len(data):
        return MediaIngest(held, 0)
    if skip and data[skip - 1:skip] != b"\n":
        raise OffsetConflict(f"rank {rank}: byte {held} is not a line boundary of this chunk", held)
    data = data[skip:]
    if not data.endswith(b"\n"):
        raise IngestError("a media chunk must end with a newline (complete lines only)")
    docs = [parse(raw, f"media line {number}") for number, raw in enumerate(data.split(b"\n")[:-1], 1) if raw.strip()]
    for doc in docs:
        if doc["kind"] == "image" and "png" in doc:
            raise IngestError("a run folder's image names its PNG by 'sha256'; send the PNG as a blob first")
    hashes = sorted({d["sha256"] for d in docs if d["kind"] == "image"})
    blob_records.hold(session, hashes)
    missing = [h for h in hashes if h not in usable or not blobs.exists(h)]
    if missing:
        raise MissingBlobs(missing)
    kept = numbered_records.from_folder(session, run_id, rank, docs)
    insert_rows(session, [row_for(run_id, rank, doc) for doc in kept])
    done = session.execute(
        update(MediaOffset).where(MediaOffset.run_id == run_id, MediaOffset.rank == rank, MediaOffset.offset == held)
        .values(offset=held + len(data)).execution_options(synchronize_session=False))
    if cast(CursorResult, done).rowcount != 1:
        raise OffsetConflict(f"rank {rank}: another upload of this run moved the offset; retry", held)
    if kept:
        touch_run(session, run_id)
    return MediaIngest(held + len(data), len(kept))


def offsets(session: Session, run_id: str) -> dict[str, int]:
    """Bytes of each rank's ``media/rank-<r>.jsonl`` the server took (the upload's resume points)."""
    rows = session.scalars(select(MediaOffset).where(MediaOffset.run_id == run_id).order_by(MediaOffset.rank))
    return {str(r.rank): r.offset for r in rows}


def read(session: Session, run_id: str, *, type: str | None = None, name: str | None = None,
         rank: int | None = None, kind: str | None = None, after: int | None = None,
         limit: int = MAX_READ_RECORDS, max_bytes: int = MAX_READ_BYTES) -> tuple[list[dict[str, Any]], bool]:
    """Media records ``{id, rank, ...document}``, rank by rank in the order stored (a peer's by number),
    at most ``limit`` of them and about ``max_bytes`` (at least one); True when more remain."""
    q = select(MediaRecord).where(MediaRecord.run_id == run_id)
    for column, value in ((MediaRecord.type, type), (MediaRecord.name, name), (MediaRecord.rank, rank),
                          (MediaRecord.kind, kind)):
        if value is not None:
            q = q.where(column == value)
    if after is not None:
        q = q.where(MediaRecord.id > after)
    out: list[dict[str, Any]] = []
    size = 0
    for r in session.scalars(q.order_by(MediaRecord.id).limit(limit + 1)):
        if len(out) == limit or (out and size + len(r.doc) > max_bytes):
            return out, True
        out.append({**json.loads(r.doc), "id": r.id, "rank": r.rank})
        size += len(r.doc)
    return out, False


def has_image(session: Session, run_id: str, sha256: str) -> bool:
    """True when the run logged an image with this PNG (a hash alone is no capability)."""
    return session.scalar(select(MediaRecord.id).where(MediaRecord.run_id == run_id, MediaRecord.sha256 == sha256)
                          .limit(1)) is not None


def image_hashes(data: bytes) -> list[str]:
    """The image hashes a chunk names (a cheap scan before the lines are parsed: only these are looked up)."""
    out: set[str] = set()
    for raw in data.split(b"\n"):
        at = raw.find(b'"sha256":"')
        if at >= 0:
            candidate = raw[at + 10:at + 74].decode("ascii", "replace")
            if is_sha256(candidate):
                out.add(candidate)
    return sorted(out)
