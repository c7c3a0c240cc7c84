"""Metric ingestion and queries.

Ingestion takes raw bytes of a rank's ``metrics/rank-<r>.jsonl`` from a byte offset.
``RankOffset`` remembers how far each rank got, so a re-sent range is acknowledged and
skipped, and a gap is refused with the server's offset. Points are grouped per series
(rank, type, name) and appended as packed numpy columns to the series' last chunk row
while that one is small, else as a new row): a 1M-point run is a few dozen rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from em_dist.limits import MAX_NAME_CHARS, MAX_STEP, MAX_TYPE_CHARS, number_problem, text_problem
from em_dist.server.models import MetricChunk, MetricSeries, RankOffset, Run
from em_dist.store.lines import NONFINITE

CHUNK_POINTS = 65_536
MERGE_BELOW = 4_096
"""A small last chunk (fed by frequent small uploads) is rewritten with the new points
appended; a bigger one is left alone, so an append rewrites at most ~MERGE_BELOW points."""
_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")


class IngestError(Exception):
    """A metrics chunk is malformed (HTTP 400); nothing of it was stored."""


class ChunkConflict(Exception):
    """A chunk the server can't take as it stands; the client fixes that and sends it again (HTTP 409
    with :meth:`body`)."""

    def body(self) -> dict[str, Any]:
        """The 409 answer's JSON: ``detail``, and what the client needs to go on."""
        return {"detail": str(self)}


class OffsetConflict(ChunkConflict):
    """The chunk starts past what the server holds, or raced another writer (409 with the server's ``offset``)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "offset": self.offset}


@dataclass
class IngestResult:
    """Where the rank's stream stands after a chunk: bytes and lines held, points added now."""

    offset: int
    lines: int
    points: int


@dataclass
class _Columns:
    steps: list
    values: list
    times: list
    epochs: list


def _offset_row(session: Session, run_id: str, rank: int) -> RankOffset:
    return offset_row(session, RankOffset, run_id, rank, offset=0, lines=0)


def offset_row(session: Session, model: type, run_id: str, rank: int, **zero: int) -> Any:
    """The ``(run_id, rank)`` row of an offset table, made (with ``zero``) when missing, locked to
    the end of the transaction (PostgreSQL ``FOR UPDATE``): two uploads of one run (two server
    processes) ingest a rank one after the other, the second seeing what the first stored,
    instead of racing on its rows. A concurrent upload making the row first is fine."""
    row = session.get(model, (run_id, rank), with_for_update=True, populate_existing=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = model(run_id=run_id, rank=rank, **zero)
            session.add(row)
    except IntegrityError:
        row = session.get(model, (run_id, rank), with_for_update=True, populate_existing=True)
    return row


def _parse(data: bytes) -> list[dict]:
    lines = [line for line in data.split(b"\n") if line.strip()]
    try:
        records = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested thousands deep
        for number, line in enumerate(lines, 1):
            try:
                json.loads(line)
            except RecursionError:
                raise IngestError(f"line {number} of the chunk is nested too deep") from None
            except (ValueError, UnicodeDecodeError) as exc:
                raise IngestError(f"line {number} of the chunk is not JSON: {exc}") from None
        raise IngestError("the chunk is not JSON lines") from None
    return records


def _is_float64(value: object) -> bool:
    """True for an int or float (not a bool) that a float64 column can hold."""
    if value.__class__ is float:
        return True
    return value.__class__ is int and number_problem(value) is None  # type: ignore[arg-type]


def _group(records: list[dict]) -> dict[tuple[str, str], _Columns]:
    groups: dict[tuple[str, str], _Columns] = {}
    for number, rec in enumerate(records, 1):
        if not isinstance(rec, dict):
            raise IngestError(f"line {number}: a metrics line must be a JSON object")
        mtype, step, metrics = rec.get("type"), rec.get("step"), rec.get("metrics")
        when, epoch = rec.get("time", 0.0), rec.get("epoch")
        if not isinstance(mtype, str) or not mtype:
            raise IngestError(f"line {number}: 'type' must be a non-empty string")
        problem = text_problem(mtype, max_chars=MAX_TYPE_CHARS)
        if problem:
            raise IngestError(f"line {number}: 'type' {problem}")
        if type(step) is not int or not 0 <= step <= MAX_STEP:
            raise IngestError(f"line {number}: 'step' must be an integer in 0..2**63-1")
        if not isinstance(metrics, dict):
            raise IngestError(f"line {number}: 'metrics' must be an object")
        if not _is_float64(when):
            raise IngestError(f"line {number}: 'time' must be a number")
        if epoch is None:
            epoch = math.nan
        elif not _is_float64(epoch):
            raise IngestError(f"line {number}: 'epoch' must be a number (within float64) or null")
        for name, value in metrics.items():
            if (mtype, name) not in groups:
                problem = "is empty" if not name else text_problem(name, max_chars=MAX_NAME_CHARS)
                if problem:
                    raise IngestError(f"line {number}: metric name {name[:60]!r} {problem}")
            if isinstance(value, bool):
                value = float(value)
            elif isinstance(value, str):
                if value not in NONFINITE:
                    raise IngestError(f"line {number}: metric {name!r} is not a number")
                value = NONFINITE[value]
            elif not _is_float64(value):
                raise IngestError(f"line {number}: metric {name[:60]!r} is not a number within float64")
            cols = groups.get((mtype, name))
            if cols is None:
                cols = groups[(mtype, name)] = _Columns([], [], [], [])
            cols.steps.append(step)
            cols.values.append(value)
            cols.times.append(when)
            cols.epochs.append(epoch)
    return groups


def _series(session: Session, run_id: str, rank: int, keys: list[tuple[str, str]]) -> dict:
    existing = {
        (s.type, s.name): s
        for s in session.scalars(
            select(MetricSeries).where(MetricSeries.run_id == run_id, MetricSeries.rank == rank)
        )
    }
    for key in keys:
        if key not in existing:
            series = MetricSeries(run_id=run_id, rank=rank, type=key[0], name=key[1], count=0)
            session.add(series)
            existing[key] = series
    session.flush()
    return existing


def _append(session: Session, series: MetricSeries, cols: _Columns) -> None:
    steps = np.asarray(cols.steps, dtype=_I8)
    values = np.asarray(cols.values, dtype=_F8)
    times = np.asarray(cols.times, dtype=_F8)
    epochs = np.asarray(cols.epochs, dtype=_F8)
    last = None
    if series.count:
        last = session.scalars(
            select(MetricChunk).where(MetricChunk.series_id == series.id).order_by(MetricChunk.id.desc()).limit(1)
        ).first()
    if last is not None and last.n < MERGE_BELOW and last.n + len(steps) <= CHUNK_POINTS:
        last.steps = last.steps + steps.tobytes()
        last.values = last.values + values.tobytes()
        last.times = last.times + times.tobytes()
        last.epochs = last.epochs + epochs.tobytes()
        last.n = last.n + len(steps)
    else:
        session.add(
            MetricChunk(
                series_id=series.id,
                n=len(steps),
                steps=steps.tobytes(),
                values=values.tobytes(),
                times=times.tobytes(),
                epochs=epochs.tobytes(),
            )
        )
    series.count = series.count + len(steps)
    series.last_step = int(steps[-1])
    last_value = float(values[-1])
    series.last_value = last_value if math.isfinite(last_value) else None


def ingest(session: Session, run_id: str, rank: int, offset: int, data: bytes) -> IngestResult:
    """Store the complete lines of ``data``, which starts at byte ``offset`` of rank ``rank``'s file.

    The caller commits. Raises IngestError (bad content) or OffsetConflict (gap, race).
    """
    row = _offset_row(session, run_id, rank)
    current, lines_held = row.offset, row.lines
    if offset > current:
        raise OffsetConflict(f"rank {rank}: chunk starts at byte {offset} but the server holds {current}", current)
    skip = current - offset
    if skip >= len(data):
        return IngestResult(current, lines_held, 0)
    if skip and data[skip - 1 : skip] != b"\n":
        raise OffsetConflict(f"rank {rank}: byte {current} is not a line boundary of this chunk", current)
    data = data[skip:]
    if not data.endswith(b"\n"):
        raise IngestError("a metrics chunk must end with a newline (complete lines only)")
    records = _parse(data)
    from em_dist.server import numbered_records  # it stores a journal's points through this module

    points = store_points(session, run_id, rank, numbered_records.from_folder(session, run_id, rank, records))
    new_offset = current + len(data)
    done = session.execute(
        update(RankOffset)
        .where(RankOffset.run_id == run_id, RankOffset.rank == rank, RankOffset.offset == current)
        .values(offset=new_offset, lines=lines_held + len(records))
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult, done).rowcount != 1:  # an UPDATE answers a cursor result
        # Another upload of this run moved the offset (and committed: our UPDATE waited for it).
        # Answer the offset that stands now, read afresh: the stale `current` would be the very
        # offset the client sent, which it takes for a server that refuses to move.
        now = session.scalar(select(RankOffset.offset).where(RankOffset.run_id == run_id, RankOffset.rank == rank))
        raise OffsetConflict(f"rank {rank}: another upload of this run moved the offset; retry",
                             current if now is None else int(now))
    touch_run(session, run_id)
    return IngestResult(new_offset, lines_held + len(records), points)


def store_points(session: Session, run_id: str, rank: int, records: list[dict]) -> int:
    """Append the points of ``records`` (parsed metric lines) to the rank's series; returns how many.
    Raises IngestError (nothing stored: the caller rolls back)."""
    groups = _group(records)
    all_series = _series(session, run_id, rank, list(groups))
    points = 0
    for key, cols in groups.items():
        _append(session, all_series[key], cols)
        points += len(cols.steps)
    return points


def touch_run(session: Session, run_id: str) -> None:
    """Record a sign of life of the run (``runs.updated``, read by :mod:`em_dist.server.liveness`)."""
    session.execute(
        update(Run).where(Run.id == run_id).values(updated=dt.datetime.now(dt.timezone.utc))
        .execution_options(synchronize_session=False)
    )


@dataclass
class SeriesData:
    """One series' points as numpy columns, in logging order."""

    rank: int
    type: str
    name: str
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray | None = None
    epochs: np.ndarray | None = None


def find_series(
    session: Session, run_id: str, *, type: str | None = None, name: str | None = None, rank: int | None = None
) -> list[MetricSeries]:
    """The run's series that match the filters, ordered by type, name, rank."""
    query = select(MetricSeries).where(MetricSeries.run_id == run_id)
    if type is not None:
        query = query.where(MetricSeries.type == type)
    if name is not None:
        query = query.where(MetricSeries.name == name)
    if rank is not None:
        query = query.where(MetricSeries.rank == rank)
    return list(session.scalars(query.order_by(MetricSeries.type, MetricSeries.name, MetricSeries.rank)))


def load_series(session: Session, series: MetricSeries, *, full: bool) -> SeriesData:
    """Read a series' chunks; ``full`` adds times and epochs."""
    cols = [MetricChunk.steps, MetricChunk.values]
    if full:
        cols += [MetricChunk.times, MetricChunk.epochs]
    rows = session.execute(select(*cols).where(MetricChunk.series_id == series.id).order_by(MetricChunk.id)).all()

    def join(i: int, dtype: np.dtype) -> np.ndarray:
        return np.frombuffer(b"".join(r[i] for r in rows), dtype=dtype)

    data = SeriesData(series.rank, series.type, series.name, join(0, _I8), join(1, _F8))
    if full:
        data.times, data.epochs = join(2, _F8), join(3, _F8)
    return data


def step_window(steps: np.ndarray, step_min: int | None, step_max: int | None) -> np.ndarray:
    """Indices of the points whose step lies in ``[step_min, step_max]`` (None: unbounded), in order."""
    keep = np.ones(len(steps), dtype=bool)
    if step_min is not None:
        keep &= steps >= step_min
    if step_max is not None:
        keep &= steps <= step_max
    return np.flatnonzero(keep)


def window_downsample(steps: np.ndarray, values: np.ndarray, points: int | None,
                      step_min: int | None = None, step_max: int | None = None) -> np.ndarray:
    """Indices of at most ``points`` samples (min and max per bucket) within the step window.

    A zoomed chart asks for its visible step range, so the same budget of points covers
    a narrower range: finer data where the user looks.
    """
    window = step_window(steps, step_min, step_max)
    return window[downsample_indices(values[window], points or 0)]


def downsample_indices(values: np.ndarray, points: int) -> np.ndarray:
    """Indices of at most ``points`` samples keeping each bucket's min and max (sorted)."""
    n = len(values)
    if points <= 0 or n <= points:
        return np.arange(n)
    buckets = max(points // 2, 1)
    size = -(-n // buckets)
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    grid = padded.reshape(buckets, size)
    base = np.arange(buckets) * size
    lo = np.argmin(np.where(np.isnan(grid), np.inf, grid), axis=1) + base
    hi = np.argmax(np.where(np.isnan(grid), -np.inf, grid), axis=1) + base
    idx = np.unique(np.concatenate([lo, hi]))
    return idx[idx < n]


def last_per_step(data: SeriesData) -> tuple[np.ndarray, np.ndarray]:
    """One rank's series with only the last value it logged for each step (sorted by step)."""
    if not len(data.steps):
        return data.steps, data.values
    rev_steps = data.steps[::-1]
    steps, first_in_reversed = np.unique(rev_steps, return_index=True)
    return steps, data.values[::-1][first_in_reversed]


def aggregate_across_ranks(parts: list[SeriesData]) -> dict[str, np.ndarray]:
    """Per step: mean, min and max over ranks, and how many, by the rule of
    :func:`em_dist.store.lines.aggregate_across_ranks` (each rank's last value for the step)."""
    deduped = [last_per_step(p) for p in parts]
    steps = np.concatenate([d[0] for d in deduped]) if deduped else np.empty(0, _I8)
    values = np.concatenate([d[1] for d in deduped]) if deduped else np.empty(0, _F8)
    if not len(steps):
        empty = np.empty(0)
        return {"steps": steps, "mean": empty, "min": empty, "max": empty, "count": steps}
    order = np.argsort(steps, kind="stable")
    s, v = steps[order], values[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(s)) + 1])
    counts = np.diff(np.concatenate([starts, [len(s)]]))
    return {
        "steps": s[starts],
        "mean": np.add.reduceat(v, starts) / counts,
        "min": np.minimum.reduceat(v, starts),
        "max": np.maximum.reduceat(v, starts),
        "count": counts,
    }
