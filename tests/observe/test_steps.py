"""The step-timing rule: step time per rank, lag behind the first rank, the slowest rank."""

from __future__ import annotations

import pytest

from em_dist.observe.steps import describe_slowest, rank_timing, reach_times


def _points(rank, times, type_="train", name="loss"):
    return [{"type": type_, "name": name, "rank": rank, "step": s, "time": t} for s, t in times.items()]


def test_reach_is_the_earliest_marking_record_per_rank_and_step():
    pts = _points(0, {1: 10.0, 2: 11.0}) + _points(0, {1: 9.5}, name="acc") + _points(0, {3: 1.0}, type_="val")
    pts += _points(1, {4: 20.0}, type_="system", name="step") + _points(1, {5: 21.0}, type_="system", name="cpu_percent")
    assert reach_times(pts) == {0: {1: 9.5, 2: 11.0}, 1: {4: 20.0}}


def test_a_rank_50ms_slower_per_step_is_the_slowest_by_its_median_lag():
    reach = {r: {s: s * 0.1 + (0.05 * s if r == 2 else 0.001 * r) for s in range(21)} for r in range(4)}
    timing = rank_timing(reach)
    assert timing["slowest"]["rank"] == 2
    assert timing["slowest"]["lag_s"] == pytest.approx(0.5)  # median of 0.05 * s over s = 0..20
    assert timing["slowest"]["step_time_s"] == pytest.approx(0.15)
    assert timing["slowest"]["share"] == pytest.approx(0.5 / 0.15)
    by_rank = {e["rank"]: e for e in timing["ranks"]}
    assert by_rank[0]["lag_s"] == 0.0 and by_rank[0]["step_time_s"] == pytest.approx(0.1)
    assert "rank 2" in describe_slowest(timing)
    strip = timing["strip"]
    assert len(strip["steps"]) == 21 and strip["lag"]["2"][-1] == pytest.approx(1.0)


def test_strip_groups_steps_into_at_most_the_given_columns():
    reach = {r: {s: float(s) + r for s in range(1000)} for r in range(3)}
    strip = rank_timing(reach, bins=100)["strip"]
    assert len(strip["steps"]) == 100 and strip["lag"]["2"] == [2.0] * 100


def test_one_rank_names_no_slowest():
    timing = rank_timing({0: {0: 0.0, 1: 1.0}})
    assert timing["slowest"] is None and timing["ranks"][0]["step_time_s"] == 1.0
    assert describe_slowest(timing).startswith("fewer than two ranks")


def test_a_constant_start_offset_is_no_straggler():
    """Rank 1 starts 200 ms later and steps as fast: no rank is flagged (the console said "slowest")."""
    reach = {r: {s: 0.2 * r + s * 0.1 + 0.002 * ((s * 7 + r) % 3) for s in range(60)} for r in range(2)}
    timing = rank_timing(reach)
    assert timing["compared"] and timing["slowest"] is None
    assert {e["rank"]: round(e["lag_s"], 1) for e in timing["ranks"]} == {0: 0.0, 1: 0.2}
    assert describe_slowest(timing).startswith("none: every rank steps as fast")


def test_stalls_that_the_median_step_time_hides_make_a_straggler():
    """Rank 1 steps as fast as rank 0 but stalls 0.5 s every 10 steps: its lag grows."""
    reach = {0: {s: s * 0.1 for s in range(60)}, 1: {s: s * 0.1 + 0.5 * (s // 10) for s in range(60)}}
    timing = rank_timing(reach)
    by_rank = {e["rank"]: e for e in timing["ranks"]}
    assert by_rank[1]["step_time_s"] == pytest.approx(by_rank[0]["step_time_s"])
    assert timing["slowest"]["rank"] == 1
