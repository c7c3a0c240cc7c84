"""A run's per-rank step timing: step time, lag behind the first rank, the slowest rank, the lag strip."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from sqlalchemy.orm import Session

from em_dist.observe.steps import STEP_MARK_TYPE, STEP_METRIC, rank_timing
from em_dist.server import metric_store
from em_dist.server.deps import CurrentUser, ReadSession
from em_dist.server.lookup import get_run

router = APIRouter(tags=["runs"])


def _reach(session: Session, run_id: str) -> dict[int, dict[int, float]]:
    """``{rank: {step: earliest time}}`` of the run's step-marking series (the rule of :mod:`em_dist.observe.steps`)."""
    marking = metric_store.find_series(session, run_id, type=STEP_MARK_TYPE)
    marking += metric_store.find_series(session, run_id, type="system", name=STEP_METRIC)
    reach: dict[int, dict[int, float]] = {}
    for series in marking:
        data = metric_store.load_series(session, series, full=True)
        if not len(data.steps) or data.times is None:  # full=True always loads the times
            continue
        order = np.lexsort((data.times, data.steps))  # by step, then time: the first of each step is its earliest
        steps, times = data.steps[order], data.times[order]
        first = np.flatnonzero(np.r_[True, steps[1:] != steps[:-1]])
        into = reach.setdefault(series.rank, {})
        for s, t in zip(steps[first].tolist(), times[first].tolist()):
            old = into.get(s)
            if old is None or t < old:
                into[s] = t
    return reach


@router.get("/runs/{run_id}/ranks")
def read_rank_timing(run_id: str, user: CurrentUser, session: ReadSession) -> dict:
    """Per rank: median step time, median and largest lag behind the first rank to reach a step;
    the slowest rank and its lag's share of its step time; the lag strip (rank x time) for the console."""
    get_run(session, user, run_id)
    return rank_timing(_reach(session, run_id))
