"""``GET /runs/{id}/ranks`` over HTTP: the same timing the local run reads, by the one rule."""

from __future__ import annotations

import json
import uuid

import pytest
from tests.server.runs import new_raw_run

from em_dist.observe.steps import rank_timing, reach_times


def test_the_server_names_the_slowest_rank_like_the_local_rule(fresh_server) -> None:
    http, api, run_id = new_raw_run(fresh_server, "timing", [0, 1, 2])
    points = []
    for rank in (0, 1, 2):
        recs = []
        for s in range(50):
            t = s * 0.1 + (0.05 * s if rank == 1 else 0.0)
            recs.append({"type": "train", "step": s, "epoch": None, "time": t + 0.01, "metrics": {"loss": 1.0}})
            recs.append({"type": "train", "step": s, "epoch": None, "time": t, "metrics": {"acc": 0.5}})  # earlier: counts
            if rank == 2:  # run.step() marks, and a system metric that marks nothing
                recs.append({"type": "system", "step": s, "epoch": None, "time": t - 0.001, "metrics": {"step": s}})
                recs.append({"type": "system", "step": s, "epoch": None, "time": 0.0, "metrics": {"cpu_percent": 1.0}})
        lines = "".join(json.dumps(r) + "\n" for r in recs).encode()
        assert http.post(f"{api}/runs/{run_id}/metrics/{rank}", params={"offset": 0}, data=lines, timeout=60).ok
        points += [{"type": r["type"], "name": n, "rank": rank, "step": r["step"], "time": r["time"]}
                   for r in recs for n in r["metrics"]]

    got = http.get(f"{api}/runs/{run_id}/ranks", timeout=30).json()
    assert got["slowest"]["rank"] == 1
    assert got["slowest"]["lag_s"] == pytest.approx(0.05 * 24.5 + 0.001)  # rank 2 marked each step 1 ms early
    assert got == json.loads(json.dumps(rank_timing(reach_times(points))))
    assert http.get(f"{api}/runs/{uuid.uuid4()}/ranks", timeout=30).status_code == 404
