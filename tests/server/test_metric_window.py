"""Run reads for the console (SQLite): the downsampling queries take a step range, so a zoomed chart
gets finer data; a multi-rank run's artifacts say which rank made them."""

from __future__ import annotations

import json
import uuid

from tests.server.runs import new_raw_run


def test_a_step_range_narrows_the_downsampled_series_and_aggregate(fresh_server) -> None:
    http, api, run_id = new_raw_run(fresh_server, "zoom", [0, 1])
    for rank in (0, 1):
        lines = "".join(json.dumps({"type": "train", "step": s, "time": float(s), "metrics": {"loss": s + rank * 0.5}}) + "\n"
                        for s in range(10_000)).encode()
        assert http.post(f"{api}/runs/{run_id}/metrics/{rank}", params={"offset": 0}, data=lines, timeout=60).ok

    whole = http.get(f"{api}/runs/{run_id}/metrics", params={"type": "train", "name": "loss", "rank": 0, "points": 200}).json()
    (series,) = whole["series"]
    assert len(series["steps"]) <= 200 and series["steps"][0] == 0 and series["steps"][-1] == 9_999
    assert series["count"] == 10_000

    zoomed = http.get(f"{api}/runs/{run_id}/metrics", params={"type": "train", "name": "loss", "rank": 0, "points": 200,
                                                              "step_min": 1_000, "step_max": 1_099, "x": "time"}).json()
    (series,) = zoomed["series"]
    assert series["steps"] == list(range(1_000, 1_100))  # every point of the range: finer than the whole view
    assert series["times"] == [float(s) for s in range(1_000, 1_100)]

    agg = http.get(f"{api}/runs/{run_id}/metrics/aggregate", params={"type": "train", "name": "loss", "points": 200,
                                                                      "step_min": 5_000, "step_max": 5_049}).json()
    assert agg["steps"] == list(range(5_000, 5_050)) and agg["ranks"] == [0, 1]
    assert agg["mean"][0] == 5_000.25 and agg["min"][0] == 5_000 and agg["max"][0] == 5_000.5
    raw = http.get(f"{api}/runs/{run_id}/metrics", params={"type": "train", "name": "loss", "rank": 1, "step_max": 2}).json()
    assert raw["series"][0]["values"] == [0.5, 1.5, 2.5] and raw["series"][0]["epochs"] == [None, None, None]
    http.close()


def test_artifacts_of_a_multi_rank_run_say_which_rank_made_them(fresh_server) -> None:
    from tests.server.seed import Api, put_run

    _, key = fresh_server.add_user()
    api = Api(fresh_server.url, key)
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    run_id = put_run(api, "ddp", "arts", ranks=2, artifacts=[{"id": one, "name": "ckpt", "role": "output", "rank": 1},
                                                              {"id": two, "name": "ckpt", "role": "output"}])
    arts = {a["id"]: a for a in api("GET", f"/runs/{run_id}").json()["artifacts"]}
    assert arts[one]["rank"] == 1 and arts[two]["rank"] is None
    assert arts[one]["run_id"] == run_id and arts[one]["stored"] is False
    bad = api("PUT", f"/runs/{uuid.uuid4()}", json={"run": {"name": "x"}, "artifacts": [{"id": one, "role": "output", "rank": -1}]})
    assert bad.status_code == 422
    api.close()
