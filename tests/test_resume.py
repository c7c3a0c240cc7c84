"""Continuing a run: ``create_run(id=..., resume=...)`` in one process (issue 15)."""

from __future__ import annotations

import signal
import subprocess

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env


def test_resume_must_on_a_missing_id_is_a_clear_error():
    with pytest.raises(ValueError, match="resume='must'.*no run with that id"):
        em.create_run(name="r", id="no-such-run", resume="must")


def test_resume_allow_continues_the_same_folder_with_attempts():
    first = em.create_run(name="r", id="my-run-1")
    first.log(type="train", metrics={"loss": 1.0}, step=0)
    first.finish()
    second = em.create_run(name="r", id="my-run-1", resume="allow")
    assert second.path == first.path and second.restarts == 1
    second.log(type="train", metrics={"loss": 0.5}, step=1)
    second.finish()
    rec = em.load_run(first.path)
    assert rec.id == "my-run-1" and rec.restarts == 1 and rec.status == "Succeeded"
    assert [(p["step"], p["attempt"]) for p in rec.metrics(name="loss")] == [(0, 0), (1, 1)]
    assert [a["status"] for a in rec.attempts] == ["Succeeded", "Succeeded"]
    assert all(a["start"] and a["end"] and a["world_size"] == 1 for a in rec.attempts)
    assert len([p for p in first.path.parent.iterdir()]) == 1


def test_resume_never_refuses_an_existing_id():
    em.create_run(name="r", id="taken").finish()
    with pytest.raises(ValueError, match="resume='never'"):
        em.create_run(name="r", id="taken", resume="never")


def test_a_crashed_attempt_is_closed_when_the_next_one_starts():
    script = ("import em_dist as em, sys, time\n"
              "run = em.create_run(name='r', id='crashy')\n"
              "run.log(type='train', metrics={'loss': 1.0}, step=0)\n"
              "assert run.flush()\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    child = subprocess.Popen([PYTHON, "-c", script], env=python_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        child.send_signal(signal.SIGKILL)  # dies mid-run: run.json stays Running
        child.wait(30)
    finally:
        child.kill()
        child.stdout.close()
    second = em.create_run(name="r", id="crashy")
    second.finish()
    rec = em.load_run(second.path)
    assert [(a["status"], a["reason"]) for a in rec.attempts] == [("Failed", "crashed"), ("Succeeded", None)]
    assert rec.attempts[0]["end"] is not None  # the crashed attempt ends at its last heartbeat
    assert [p["attempt"] for p in rec.metrics(name="loss")] == [0]


def test_bad_resume_values_are_refused():
    with pytest.raises(ValueError, match="resume must be one of"):
        em.create_run(name="r", resume="sometimes")


def test_a_continued_run_with_a_torn_last_line_is_cut_back_once_and_appended_to():
    first = em.create_run(name="r", id="torn")
    first.log(type="train", metrics={"loss": 1.0}, step=0)
    first.finish()
    metrics = first.path / "metrics" / "rank-0.jsonl"
    with open(metrics, "a", encoding="utf-8") as f:
        f.write('{"type": "train", "step": 1, "met')  # the previous attempt died mid-write
    second = em.create_run(name="r", id="torn")
    second.log(type="train", metrics={"loss": 0.5}, step=2)
    second.finish()
    assert [(p["step"], p["attempt"]) for p in em.load_run(first.path).metrics(name="loss")] == [(0, 0), (2, 1)]
    assert metrics.read_text().count("\n") == 2 and metrics.read_text().endswith("\n")
