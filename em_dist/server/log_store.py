"""Captured output on the server: lines of each rank's ``logs/rank-<r>.log``, taken by logical offset.

An upload sends complete lines starting at a *logical* byte offset of the rank's output
(:mod:`em_dist.store.logs`). Bytes the server already holds are acknowledged and skipped
(a resent chunk stores nothing twice); a chunk that starts past the server's offset is
output the client dropped under its limit before it could be sent: the gap is counted as
dropped. The server keeps at most :func:`em_dist.limits.log_max_bytes` per rank: past it
the oldest lines go until half is left, and a reader is told how many bytes were dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from em_dist.limits import text_problem
from em_dist.server.metric_store import IngestError, OffsetConflict, offset_row, touch_run
from em_dist.server.models import LogLine, LogOffset
from em_dist.store.lines import parse_output_line

MAX_READ_LINES = 50_000
"""Lines one read returns at most (a console page, a ``Client().logs`` call)."""


@dataclass
class LogIngest:
    offset: int
    lines: int


def _offset_row(session: Session, run_id: str, rank: int) -> LogOffset:
    return offset_row(session, LogOffset, run_id, rank, offset=0, held_bytes=0, dropped_bytes=0)


def _parse(run_id: str, rank: int, data: bytes) -> list[dict]:
    rows = []
    for number, raw in enumerate(data.split(b"\n")[:-1], 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise IngestError(f"log line {number} is not UTF-8") from None
        parsed = parse_output_line(line + "\n")
        if parsed is None:
            raise IngestError(f"log line {number} is not '<UTC time> <out|err|em> <text>'")
        problem = text_problem(parsed["text"])
        if problem:
            raise IngestError(f"log line {number} {problem}")
        rows.append({"run_id": run_id, "rank": rank, "size": len(raw) + 1, **parsed})
    return rows


def ingest(session: Session, run_id: str, rank: int, offset: int, data: bytes, limit: int) -> LogIngest:
    """Store the complete lines of ``data``, which starts at logical byte ``offset`` of rank ``rank``'s
    output. The caller commits. Raises IngestError (bad content) or OffsetConflict (not a line boundary, race)."""
    row = _offset_row(session, run_id, rank)
    held, held_bytes, dropped = row.offset, row.held_bytes, row.dropped_bytes
    if offset > held:  # the client no longer has [held, offset): dropped under its limit
        dropped += offset - held
        start = offset
    else:
        skip = held - offset
        if skip >= len(data):
            return LogIngest(held, 0)
        if skip and data[skip - 1:skip] != b"\n":
            raise OffsetConflict(f"rank {rank}: byte {held} is not a line boundary of this chunk", held)
        data, start = data[skip:], held
    if not data.endswith(b"\n"):
        raise IngestError("a log chunk must end with a newline (complete lines only)")
    rows = _parse(run_id, rank, data)
    session.execute(insert(LogLine), rows)
    held_bytes += len(data)
    if held_bytes > limit:
        gone = _drop_oldest(session, run_id, rank, held_bytes - limit // 2)
        held_bytes -= gone
        dropped += gone
    done = session.execute(
        update(LogOffset)
        .where(LogOffset.run_id == run_id, LogOffset.rank == rank, LogOffset.offset == held)
        .values(offset=start + len(data), held_bytes=held_bytes, dropped_bytes=dropped)
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult, done).rowcount != 1:  # an UPDATE answers a cursor result
        raise OffsetConflict(f"rank {rank}: another upload of this run moved the offset; retry", held)
    touch_run(session, run_id)
    return LogIngest(start + len(data), len(rows))


def _drop_oldest(session: Session, run_id: str, rank: int, at_least: int) -> int:
    """Delete the oldest lines of a rank, at least ``at_least`` bytes of them; returns the bytes deleted."""
    gone, cut = 0, None
    for line_id, size in session.execute(
        select(LogLine.id, LogLine.size).where(LogLine.run_id == run_id, LogLine.rank == rank).order_by(LogLine.id)
    ):
        gone += size
        cut = line_id
        if gone >= at_least:
            break
    if cut is not None:
        session.execute(delete(LogLine).where(LogLine.run_id == run_id, LogLine.rank == rank, LogLine.id <= cut))
    return gone


def offsets(session: Session, run_id: str) -> dict[str, int]:
    """Logical bytes of each rank's output the server took (the upload's resume points)."""
    rows = session.scalars(select(LogOffset).where(LogOffset.run_id == run_id).order_by(LogOffset.rank))
    return {str(r.rank): r.offset for r in rows}


def read(session: Session, run_id: str, *, rank: int | None = None, tail: int | None = None,
         after: int | None = None, search: str | None = None, limit: int = MAX_READ_LINES) -> dict:
    """Lines ``{id, rank, time, stream, text}`` of one rank or all (by time), the last ``tail`` ones,
    or those after line id ``after`` (a live view's next poll); ``search`` keeps lines containing it
    (case-insensitive). With ``dropped``: bytes per rank dropped under the limit, and ``ranks``."""
    q = select(LogLine).where(LogLine.run_id == run_id)
    if rank is not None:
        q = q.where(LogLine.rank == rank)
    if after is not None:
        q = q.where(LogLine.id > after)
    if search:
        q = q.where(func.lower(LogLine.text).contains(search.lower(), autoescape=True))
    n = min(limit, tail) if tail is not None else limit
    if tail is not None:
        lines = list(reversed(session.scalars(q.order_by(LogLine.id.desc()).limit(n)).all()))
    else:
        lines = list(session.scalars(q.order_by(LogLine.id).limit(n)))
    if rank is None:
        lines.sort(key=lambda x: (x.time, x.id))
    held = session.scalars(select(LogOffset).where(LogOffset.run_id == run_id).order_by(LogOffset.rank)).all()
    return {
        "lines": [{"id": x.id, "rank": x.rank, "time": x.time, "stream": x.stream, "text": x.text} for x in lines],
        "dropped": {str(r.rank): r.dropped_bytes for r in held if r.dropped_bytes},
        "ranks": [r.rank for r in held],
    }
