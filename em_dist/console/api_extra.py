"""One query the console needs that ``/runs/{id}/metrics`` lacks: downsampled series against epoch or time.

``GET /runs/{id}/metrics?points=N`` keeps only steps and values once it downsamples, so a
chart over epochs or wall time of a long series would have to fetch every point. This
route downsamples the same way (min and max of each bucket, from the server's own
``metric_store``) and returns the chosen x column with the kept points.
"""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, Query

from em_dist.server import metric_store
from em_dist.server.deps import CurrentUser, ReadSession
from em_dist.server.lookup import get_run
from em_dist.server.views import json_epochs, json_floats

router = APIRouter(tags=["console"])


@router.get("/console/runs/{run_id}/metrics/xy")
def metrics_xy(
    run_id: str,
    user: CurrentUser,
    session: ReadSession,
    type: str = Query(min_length=1),
    name: str = Query(min_length=1),
    x: Literal["step", "epoch", "time"] = "step",
    points: int = Query(default=2000, ge=2, le=1_000_000),
) -> dict:
    """Per rank, at most ``points`` points of one metric with ``steps``, ``values`` and the ``x`` column."""
    started = time.perf_counter()
    get_run(session, user, run_id)
    out = []
    for series in metric_store.find_series(session, run_id, type=type, name=name):
        data = metric_store.load_series(session, series, full=x != "step")
        idx = metric_store.downsample_indices(data.values, points)
        entry = {"rank": data.rank, "count": int(len(data.steps)), "steps": data.steps[idx].tolist(),
                 "values": json_floats(data.values[idx])}
        if x == "epoch":
            entry["x"] = json_epochs(data.epochs[idx])
        elif x == "time":
            entry["x"] = data.times[idx].tolist()
        else:
            entry["x"] = entry["steps"]
        out.append(entry)
    return {"type": type, "name": name, "x": x, "series": out,
            "server_ms": round((time.perf_counter() - started) * 1000, 3)}
