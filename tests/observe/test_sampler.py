"""The system sampler in a real run: system records in the rank's series, off at 0, never raising."""

from __future__ import annotations

import threading
import warnings

import pytest

import em_dist as em
from em_dist.observe.process import HOST_METRICS, PROCESS_METRICS
from em_dist.observe.sampler import DEFAULT_INTERVAL, SystemSampler, system_metrics_interval
from tests.poll import wait_for


def test_interval_rule():
    assert system_metrics_interval(None, {}) == DEFAULT_INTERVAL == 10.0
    assert system_metrics_interval(None, {"EM_SYSTEM_METRICS_INTERVAL": "0"}) == 0.0
    assert system_metrics_interval(None, {"EM_SYSTEM_METRICS_INTERVAL": "2.5"}) == 2.5
    assert system_metrics_interval(3, {"EM_SYSTEM_METRICS_INTERVAL": "0"}) == 3.0
    for bad in (-1, True, "10", float("nan")):
        with pytest.raises(ValueError, match="system_metrics_interval"):
            system_metrics_interval(bad, {})
    with pytest.raises(ValueError, match="EM_SYSTEM_METRICS_INTERVAL"):
        system_metrics_interval(None, {"EM_SYSTEM_METRICS_INTERVAL": "-2"})
    with pytest.raises(ValueError):
        em.create_run(name="bad", system_metrics_interval=-1)


def _system(run_path):
    return em.load_run(run_path).metrics(type="system")


def test_a_run_records_process_host_and_step_time_metrics():
    run = em.create_run(name="sys", system_metrics_interval=0.1, flush_interval=0.05)
    step = 0

    def names():
        nonlocal step
        step += 1
        run.log("train", {"loss": 1.0 / step}, step)
        run.flush()
        return {p["name"] for p in _system(run.path)} >= {*PROCESS_METRICS, *HOST_METRICS, "step_time_s"}

    wait_for(names, timeout=60, what="every process and host metric and step_time_s", interval=0.02)
    run.finish()
    assert not any(t.name == "em-system-metrics" and t.is_alive() for t in threading.enumerate())
    points = _system(run.path)
    assert {p["rank"] for p in points} == {0}
    samples = sorted({p["step"] for p in points})
    assert samples == list(range(len(samples)))  # a system record's step is its sample index
    rss = [p["value"] for p in points if p["name"] == "rss_bytes"]
    assert min(rss) > 1_000_000
    assert not any(p["name"].startswith("gpu_") for p in points)  # no GPU here: absent, not zero
    steps_per_s = [p["value"] for p in points if p["name"] == "step_time_s"]
    assert all(0 < v < 60 for v in steps_per_s)


def test_zero_turns_it_off():
    run = em.create_run(name="off", system_metrics_interval=0)
    run.log("train", {"loss": 1.0}, 0)
    assert run._sampler is None
    run.finish()
    assert _system(run.path) == []


def test_run_step_marks_steps_for_the_step_time():
    run = em.create_run(name="marks", system_metrics_interval=0)
    for s in range(3):
        run.step(s * 10)
    run.finish()
    rec = em.load_run(run.path)
    assert [(p["step"], p["value"]) for p in rec.metrics(type="system", name="step")] == [(0, 0), (10, 10), (20, 20)]
    timing = rec.rank_timing()
    assert timing["ranks"][0]["steps"] == 3


def test_a_failing_emit_or_step_mark_is_warned_once_and_never_raised():
    def emit(*_):
        raise OSError("boom")

    def mark():
        raise RuntimeError("sink gone")

    sampler = SystemSampler(0.02, emit, mark)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler.start()
        wait_for(lambda: not sampler._thread.is_alive(), timeout=30, what="the sampler to stop on its own")
    assert any("system metrics stopped" in str(w.message) for w in caught)
    assert sampler.stop(1.0)
