"""Listing runs: the folder scope (a folder, or it and its subfolders), a filter, keyset pages,
and per-run statistics (latest, min, max) of chosen metrics.

Pages are in upload order (``created``, then ``id``); the cursor is the last row's
``(created, id)``, so a page never repeats or skips a run while runs are added.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from em_dist.server.liveness import utc
from em_dist.server.models import Folder, MetricChunk, MetricSeries, Run
from em_dist.server.search import Node
from em_dist.server.search_sql import SqlContext, compile_filter
from em_dist.server.views import latest_metrics, run_summary

MAX_LIMIT = 1000
MAX_STATS = 20
_F8 = np.dtype("<f8")


class CursorError(ValueError):
    """A ``cursor`` the server did not hand out (HTTP 400)."""


@dataclass
class Page:
    """One page of run summaries, the cursor of the next page (None at the end) and the match count."""

    runs: list[dict[str, Any]]
    next_cursor: str | None
    total: int


def folder_scope(session: Session, folder: Folder, *, recursive: bool) -> dict[str, str]:
    """``{folder id: path}`` of ``folder`` and, with ``recursive``, every folder below it.

    Access to a folder covers its subfolders (a share reaches down), so no further check is needed.
    The subtree is matched by an exact, case-sensitive prefix (``path/``), never by ``LIKE``: SQLite's
    LIKE ignores case and ``_`` is a wildcard, which let a share of ``proj`` list ``PROJ/hidden``.
    """
    if not recursive:
        return {folder.id: folder.path}
    prefix = folder.path + "/"
    rows = session.execute(
        select(Folder.id, Folder.path).where(
            Folder.owner_id == folder.owner_id,
            or_(Folder.id == folder.id, func.substr(Folder.path, 1, len(prefix)) == prefix),
        )
    ).all()
    return {fid: path for fid, path in rows}


def encode_cursor(created: dt.datetime, run_id: str) -> str:
    raw = json.dumps([utc(created).isoformat(), run_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, str]:
    """The ``(created, id)`` a cursor stands for; raises CursorError on anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, run_id = json.loads(raw)
        return dt.datetime.fromisoformat(created), str(run_id)
    except (ValueError, TypeError):
        raise CursorError(f"cursor {cursor[:40]!r} is not one this server handed out; start without a cursor") from None


def _metric_stats(session: Session, run_ids: list[str], keys: list[str]) -> dict[str, dict[str, dict]]:
    """Per run and metric key (``type/name``): ``{last, min, max}`` of its lowest rank's series."""
    wanted = [tuple(k.split("/", 1)) for k in keys if "/" in k]
    out: dict[str, dict[str, dict]] = {rid: {} for rid in run_ids}
    if not run_ids or not wanted:
        return out
    series = session.execute(
        select(MetricSeries.id, MetricSeries.run_id, MetricSeries.type, MetricSeries.name, MetricSeries.rank,
               MetricSeries.last_value)
        .where(MetricSeries.run_id.in_(run_ids), or_(*[and_(MetricSeries.type == t, MetricSeries.name == n)
                                                       for t, n in wanted]))
        .order_by(MetricSeries.rank.desc())
    ).all()
    chosen: dict[int, tuple[str, str, float | None]] = {}
    by_key: dict[tuple[str, str], int] = {}
    for sid, rid, mtype, name, _rank, last in series:  # lowest rank last, so it wins
        by_key[(rid, f"{mtype}/{name}")] = sid
        chosen[sid] = (rid, f"{mtype}/{name}", last)
    keep = set(by_key.values())
    values: dict[int, list[bytes]] = defaultdict(list)
    if keep:
        for sid, blob in session.execute(
            select(MetricChunk.series_id, MetricChunk.values).where(MetricChunk.series_id.in_(keep))
            .order_by(MetricChunk.id)
        ):
            values[sid].append(blob)
    for sid in keep:
        rid, key, last = chosen[sid]
        v = np.frombuffer(b"".join(values[sid]), dtype=_F8)
        v = v[np.isfinite(v)]
        out[rid][key] = {"last": last, "min": float(v.min()) if len(v) else None,
                         "max": float(v.max()) if len(v) else None}
    return out


def list_runs(
    session: Session,
    *,
    scope: dict[str, str],
    node: Node | None,
    ctx: SqlContext,
    limit: int,
    cursor: str | None = None,
    stats: list[str] | None = None,
    archived: str = "exclude",
) -> Page:
    """One page of the runs in ``scope`` that match ``node``, oldest upload first.

    ``archived``: ``exclude`` (archived runs are hidden, the default), ``include`` or ``only``."""
    where = and_(Run.folder_id.in_(list(scope)), compile_filter(node, ctx))
    if archived == "exclude":
        where = and_(where, Run.archived.is_(False))
    elif archived == "only":
        where = and_(where, Run.archived.is_(True))
    total = session.scalar(select(func.count()).select_from(Run).where(where)) or 0
    query = select(Run).where(where)
    if cursor:
        created, run_id = decode_cursor(cursor)
        if ctx.dialect == "sqlite":
            created = created.replace(tzinfo=None)
        query = query.where(or_(Run.created > created, and_(Run.created == created, Run.id > run_id)))
    runs = list(session.scalars(query.order_by(Run.created, Run.id).limit(limit + 1)))
    more = len(runs) > limit
    runs = runs[:limit]
    ids = [r.id for r in runs]
    latest = latest_metrics(session, ids)
    metric_stats = _metric_stats(session, ids, (stats or [])[:MAX_STATS])
    rows = []
    for r in runs:
        row = run_summary(r, latest[r.id], cutoff=ctx.lost_before, folder=scope.get(r.folder_id))
        if stats:
            row["stats"] = metric_stats[r.id]
        rows.append(row)
    next_cursor = encode_cursor(runs[-1].created, runs[-1].id) if more and runs else None
    return Page(rows, next_cursor, int(total))
