"""Metrics: chunk ingestion by byte offset, series queries with downsampling, cross-rank aggregates."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Literal

import numpy as np
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from em_dist.limits import MAX_OFFSET, MAX_RANK
from em_dist.server import metric_store
from em_dist.server.deps import Config, CurrentUser, ReadSession
from em_dist.server.lookup import get_run
from em_dist.server.models import User
from em_dist.server.views import json_epochs, json_floats

router = APIRouter(tags=["metrics"])
log = logging.getLogger(__name__)


def _loaded(column: np.ndarray | None) -> np.ndarray:
    """A column :func:`metric_store.load_series` was asked for (an empty one where it was not)."""
    return column if column is not None else np.empty(0)


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"metrics chunk over {limit} bytes; send smaller chunks")
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/runs/{run_id}/metrics/{rank}")
async def ingest_metrics(
    run_id: str, rank: int, request: Request, user: CurrentUser, config: Config,
    offset: int = Query(ge=0, le=MAX_OFFSET),
) -> dict:
    """Append raw JSON lines of ``metrics/rank-<rank>.jsonl`` starting at byte ``offset``.

    Body: the bytes (``application/x-ndjson``), complete lines only. Bytes the server
    already holds are acknowledged and skipped; a gap is a 409 whose body carries the
    server's ``offset``. Returns the new ``offset``, ``lines`` held and ``points`` added.
    """
    if not 0 <= rank <= MAX_RANK:
        raise HTTPException(400, f"rank must be an integer in 0..{MAX_RANK}")
    try:
        data = await _read_limited(request, config.max_metrics_chunk_bytes)
    except ClientDisconnect:
        log.warning("run %s rank %d: the client disconnected while sending metrics; nothing was stored", run_id, rank)
        return JSONResponse(status_code=400, content={"detail": "client disconnected"})  # type: ignore[return-value]
    check_span(offset, data)
    return await run_in_threadpool(_ingest_sync, request, run_id, rank, offset, data, user)  # type: ignore[arg-type]


def check_span(offset: int, data: bytes) -> None:
    """400 when a chunk at ``offset`` would end past :data:`MAX_OFFSET` (a 64-bit column would overflow)."""
    if offset + len(data) > MAX_OFFSET:
        raise HTTPException(400, f"offset {offset} plus a {len(data)}-byte chunk is past the last byte a stream "
                                 f"can have ({MAX_OFFSET})")


def _ingest_sync(request: Request, run_id: str, rank: int, offset: int, data: bytes, user: User) -> dict | JSONResponse:
    return ingest_chunk(request, user, run_id, lambda session: metric_store.ingest(session, run_id, rank, offset, data),
                        lambda r: {"offset": r.offset, "lines": r.lines, "points": r.points})


def ingest_chunk(request: Request, user: User, run_id: str, ingest: Callable[[Any], Any],
                 answer: Callable[[Any], dict]) -> dict | JSONResponse:
    """One offset-based chunk (metrics, captured output, media) in one transaction, if ``user`` may edit
    the run: bad content is 400, a gap or race 409 with the server's ``offset`` (a media chunk naming
    images not uploaded yet: 409 with ``missing``)."""
    with request.app.state.db.write_session() as session:
        get_run(session, user, run_id, need="edit")
        try:
            result = ingest(session)
        except metric_store.IngestError as exc:
            session.rollback()
            raise HTTPException(400, str(exc)) from None
        except metric_store.ChunkConflict as exc:
            session.rollback()
            return JSONResponse(status_code=409, content=exc.body())
        session.commit()
    return answer(result)


@router.get("/runs/{run_id}/metrics/names")
def metric_names(run_id: str, user: CurrentUser, session: ReadSession) -> list[dict]:
    """Every series of the run: type, name, rank, point count, last step and value."""
    get_run(session, user, run_id)
    return [
        {"type": s.type, "name": s.name, "rank": s.rank, "count": s.count, "last_step": s.last_step,
         "last_value": s.last_value}
        for s in metric_store.find_series(session, run_id)
    ]


@router.get("/runs/{run_id}/metrics")
def read_metrics(
    run_id: str,
    user: CurrentUser,
    session: ReadSession,
    type: str | None = None,
    name: str | None = None,
    rank: int | None = Query(default=None, ge=0, le=MAX_RANK),
    points: int | None = Query(default=None, ge=2, le=1_000_000),
    x: Literal["step", "epoch", "time"] = "step",
    step_min: int | None = None,
    step_max: int | None = None,
) -> dict:
    """Series matching the filters as columns (steps, values, times, epochs).

    With ``points=N`` each series is downsampled to at most N points, keeping the min
    and max of each bucket; only ``steps`` and ``values`` come back then, plus ``epochs``
    or ``times`` at the same points when ``x=epoch`` / ``x=time`` asks for a chart's x
    axis. ``step_min``/``step_max`` keep only the points in that step range (inclusive)
    before downsampling: a zoomed chart gets N points of the range it shows.
    ``count`` is the series' whole length; ``server_ms`` says how long the query took.
    """
    started = time.perf_counter()
    get_run(session, user, run_id)
    out = []
    for series in metric_store.find_series(session, run_id, type=type, name=name, rank=rank):
        data = metric_store.load_series(session, series, full=points is None or x != "step")
        entry = {"type": data.type, "name": data.name, "rank": data.rank, "count": int(len(data.steps))}
        idx = metric_store.window_downsample(data.steps, data.values, points, step_min, step_max)
        times, epochs = _loaded(data.times), _loaded(data.epochs)
        if points is None:
            entry.update(steps=data.steps[idx].tolist(), values=json_floats(data.values[idx]),
                         times=times[idx].tolist(), epochs=json_epochs(epochs[idx]))
        else:
            entry.update(steps=data.steps[idx].tolist(), values=json_floats(data.values[idx]))
            if x == "epoch":
                entry["epochs"] = json_epochs(epochs[idx])
            elif x == "time":
                entry["times"] = times[idx].tolist()
        out.append(entry)
    return {"series": out, "server_ms": round((time.perf_counter() - started) * 1000, 3)}


@router.get("/runs/{run_id}/metrics/aggregate")
def aggregate_metrics(
    run_id: str,
    user: CurrentUser,
    session: ReadSession,
    type: str = Query(min_length=1),
    name: str = Query(min_length=1),
    points: int | None = Query(default=None, ge=2, le=1_000_000),
    step_min: int | None = None,
    step_max: int | None = None,
) -> dict:
    """Cross-rank aggregate of one metric: per step the mean, min and max over ranks (and count),
    within ``[step_min, step_max]`` when given, downsampled to ``points``."""
    get_run(session, user, run_id)
    parts = [metric_store.load_series(session, s, full=False)
             for s in metric_store.find_series(session, run_id, type=type, name=name)]
    agg = metric_store.aggregate_across_ranks(parts)
    idx = metric_store.window_downsample(agg["steps"], agg["mean"], points, step_min, step_max)
    return {
        "type": type,
        "name": name,
        "ranks": sorted(p.rank for p in parts),
        "steps": agg["steps"][idx].tolist(),
        "mean": json_floats(agg["mean"][idx]),
        "min": json_floats(agg["min"][idx]),
        "max": json_floats(agg["max"][idx]),
        "count": agg["count"][idx].tolist(),
    }
