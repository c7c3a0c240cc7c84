"""The step-timing rule: when each rank reached each step, its step time, and its lag behind the first rank.

One definition, used by the SDK (the sampler's ``step_time_s``), the CLI (``em run show``),
:meth:`em_dist.store.records.RunRecord.rank_timing` and the server (``GET /runs/{id}/ranks``).

A rank *reaches* step ``s`` at the earliest time of its records that mark steps (:func:`marks_step`):
records of type ``train``, and the ``system`` records of :meth:`em_dist.run.Run.step`
(metric ``step``). Nothing is added to ``log()``: the times are those the records carry.

- **step time** of a rank: between two consecutive steps it reached, the time between them
  divided by the steps between them; its median over the run.
- **lag** of a rank at a step: how long after the first rank to reach that step it got there
  (0 for that first rank). Only steps reached by at least two ranks count. Times are each
  host's wall clock: across hosts the lag includes their clock difference (NTP keeps it to
  milliseconds).
- a **straggler**: a rank whose median step time exceeds the fastest rank's by more than
  :data:`STRAGGLER_STEP_FRACTION` (and 1 ms), or whose lag grows over the run by more than
  :data:`STRAGGLER_LAG_GROWTH` of its step time (stalls a median hides). A rank that only
  started later (a constant offset, the same step time) is none.
- the **slowest rank**: the straggler with the largest median lag (None when there is none);
  its *share* is that median lag over its median step time.

Standard library only.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

STEP_MARK_TYPE = "train"
"""Records of this type mark the steps a rank reaches."""
STEP_METRIC = "step"
"""The ``system`` metric that :meth:`em_dist.run.Run.step` records (its value is the step)."""
STRAGGLER_STEP_FRACTION = 0.05
"""A rank's median step time this much above the fastest rank's makes it a straggler."""
STRAGGLER_STEP_FLOOR_S = 0.001
"""... and at least this much (sub-millisecond steps differ by noise)."""
STRAGGLER_LAG_GROWTH = 0.5
"""Lag that grows from the first third of the shared steps to the last by more than this many of
the rank's median step times makes it a straggler too."""
STRIP_BINS = 100
"""Columns of the lag heat strip (rank x time): steps are grouped into at most this many."""


def marks_step(type_: str, metrics: Mapping[str, Any]) -> bool:
    """True when a record of ``type_`` with ``metrics`` marks that its rank reached its step."""
    return type_ == STEP_MARK_TYPE or (type_ == "system" and STEP_METRIC in metrics)


def reach_times(points: Iterable[Mapping[str, Any]]) -> dict[int, dict[int, float]]:
    """``{rank: {step: earliest time}}`` from metric points ``{type, name, step, rank, time}``."""
    reach: dict[int, dict[int, float]] = {}
    for p in points:
        if p["type"] == STEP_MARK_TYPE or (p["type"] == "system" and p["name"] == STEP_METRIC):
            steps = reach.setdefault(p["rank"], {})
            t = p["time"]
            old = steps.get(p["step"])
            if old is None or t < old:
                steps[p["step"]] = t
    return reach


def step_times(steps: Mapping[int, float]) -> list[float]:
    """Seconds per step between consecutive reached steps of one rank (``{step: time}``)."""
    ordered = sorted(steps.items())
    return [(t2 - t1) / (s2 - s1) for (s1, t1), (s2, t2) in zip(ordered, ordered[1:]) if t2 >= t1]


def rank_timing(reach: Mapping[int, Mapping[int, float]], bins: int = STRIP_BINS) -> dict[str, Any]:
    """The per-rank timing summary of a run from :func:`reach_times`.

    Returns ``{"ranks": [{rank, steps, step_time_s, lag_s, max_lag_s, lag_share}], "slowest":
    {rank, lag_s, step_time_s, share} | None, "strip": {"start", "end", "steps", "lag": {rank:
    [max lag per column or None]}}, "compared": bool}``; ``compared`` says at least two ranks reached a
    common step; ``slowest`` is None without a straggler.
    """
    lags: dict[int, list[float]] = {r: [] for r in reach}
    firsts: dict[int, float] = {}
    all_steps = sorted({s for steps in reach.values() for s in steps})
    for s in all_steps:
        times = {r: steps[s] for r, steps in reach.items() if s in steps}
        if len(times) < 2:
            continue
        first = min(times.values())
        firsts[s] = first
        for r, t in times.items():
            lags[r].append(t - first)
    ranks: list[dict[str, Any]] = []
    for r in sorted(reach):
        st = step_times(reach[r])
        step_time = statistics.median(st) if st else None
        lag = statistics.median(lags[r]) if lags[r] else None
        ranks.append({
            "rank": r, "steps": len(reach[r]), "step_time_s": step_time, "lag_s": lag,
            "max_lag_s": max(lags[r]) if lags[r] else None,
            "lag_share": (lag / step_time) if lag is not None and step_time else None,
        })
    timed = [e for e in ranks if e["lag_s"] is not None]
    slowest = None
    if len(timed) >= 2:
        stepping = [e["step_time_s"] for e in timed if e["step_time_s"]]
        fastest = min(stepping) if stepping else None
        stragglers = [e for e in timed if _straggles(e["step_time_s"], lags[e["rank"]], fastest)]
        if stragglers:
            worst = max(stragglers, key=lambda e: (e["lag_s"], e["rank"]))
            slowest = {"rank": worst["rank"], "lag_s": worst["lag_s"], "step_time_s": worst["step_time_s"],
                       "share": worst["lag_share"]}
    return {"ranks": ranks, "slowest": slowest, "strip": _strip(reach, firsts, bins), "compared": len(timed) >= 2}


def _straggles(step_time: float | None, lags: list[float], fastest: float | None) -> bool:
    """Whether a rank with this median step time and these lags (in step order) is a straggler."""
    if step_time and fastest and step_time - fastest > max(STRAGGLER_STEP_FRACTION * fastest, STRAGGLER_STEP_FLOOR_S):
        return True
    third = len(lags) // 3
    if not step_time or third < 2:
        return False
    growth = statistics.median(lags[-third:]) - statistics.median(lags[:third])
    return growth > STRAGGLER_LAG_GROWTH * step_time


def _strip(reach: Mapping[int, Mapping[int, float]], firsts: Mapping[int, float], bins: int) -> dict[str, Any]:
    """Lag per rank over time: the shared steps in order, grouped into at most ``bins`` columns,
    each column the largest lag of the rank in it (None where the rank reached none of them)."""
    shared = sorted(firsts)
    if not shared:
        return {"start": [], "end": [], "steps": [], "lag": {}}
    per = -(-len(shared) // max(1, bins))  # ceil: every column but the last holds `per` steps
    columns = [shared[i:i + per] for i in range(0, len(shared), per)]
    lag: dict[str, list[float | None]] = {}
    for r in sorted(reach):
        steps = reach[r]
        row: list[float | None] = []
        for col in columns:
            values = [steps[s] - firsts[s] for s in col if s in steps]
            row.append(max(values) if values else None)
        lag[str(r)] = row
    return {"start": [firsts[c[0]] for c in columns], "end": [firsts[c[-1]] for c in columns],
            "steps": [c[0] for c in columns], "lag": lag}


def describe_slowest(timing: Mapping[str, Any]) -> str:
    """One line naming the slowest rank and by how much (``em run show``, the console)."""
    slow = timing.get("slowest")
    if not slow and timing.get("compared"):
        return "none: every rank steps as fast as the others (a rank that only started later is no straggler)"
    if not slow:
        return "fewer than two ranks reached a common step"
    text = f"rank {slow['rank']}, median lag {slow['lag_s'] * 1000:.1f} ms behind the first rank"
    if slow.get("share") is not None:
        text += f" ({slow['share'] * 100:.0f}% of its step time {slow['step_time_s'] * 1000:.1f} ms)"
    return text
