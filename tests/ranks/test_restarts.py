"""A job restarted by its launcher continues its Run (issue 15): torchrun --max-restarts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import em_dist as em

from ._launch import job_env, result, run_job

pytestmark = pytest.mark.timeout(240)
RESTART = Path(__file__).parent / "workers" / "restart.py"


def test_elastic_restart_continues_the_run(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--max-restarts=1", "--monitor-interval=0.1", str(RESTART)]
    proc = run_job(cmd, job_env(tmp_path), timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1, f"one run for the whole job, found {[p.name for p in folders]}"
    rec = em.load_run(folders[0])
    assert rec.restarts == 1 and len(rec.attempts) == 2
    assert rec.status == "Succeeded"
    first, second = rec.attempts
    assert first["status"] == "Failed" and "signal: SIGTERM" in first["reason"]
    assert second["status"] == "Succeeded" and first["world_size"] == second["world_size"] == 2
    for rank in (0, 1):
        points = rec.metrics(name="loss", rank=rank)
        assert [(p["step"], p["attempt"]) for p in points] == [(s, 0) for s in range(10)] + [(s, 1) for s in range(10, 20)]
        assert [p["value"] for p in rec.metrics(name="attempt_seen", rank=rank)] == [0] * 10 + [1] * 10
    assert result(tmp_path, 0) == result(tmp_path, 1) == {"id": rec.id, "restarts": 1}


def test_a_peer_exception_survives_the_launchers_sigterm(tmp_path):
    """torchrun stops rank 0 with SIGTERM right after rank 1 raised: the run names rank 1's exception first."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--max-restarts=0", "--monitor-interval=0.1", str(RESTART)]
    proc = run_job(cmd, job_env(tmp_path), timeout=200)
    assert proc.returncode != 0
    (folder,) = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    rec = em.load_run(folder)
    assert rec.status == "Failed"
    assert rec.status_reason == "rank 1: exception: RuntimeError: first attempt fails; then rank 0: signal: SIGTERM"
    assert rec.lost_ranks == [] and rec.restarts == 0


def test_a_restarted_pod_continues_the_run_and_records_the_new_world_size(tmp_path):
    """Kubernetes: the pod is recreated with the same ``EM_JOB_ID`` and torchrun starts afresh,
    here with one process instead of two (an elastic shrink): one Run, both attempts' records."""
    env = {**job_env(tmp_path), "EM_JOB_ID": "pytorchjob-mnist"}

    def launch(nproc: int, phase: int):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "--max-restarts=0", "--monitor-interval=0.1", str(RESTART), str(phase)]
        return run_job(cmd, env, timeout=200)

    first = launch(2, 0)
    assert first.returncode != 0, "the first pod fails"
    second = launch(1, 1)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-4000:]
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1, f"one run for the job, found {[p.name for p in folders]}"
    rec = em.load_run(folders[0])
    assert (rec.status, rec.restarts, len(rec.attempts)) == ("Succeeded", 1, 2)
    assert rec.attempts[0]["status"] == "Failed" and "rank 1: exception: RuntimeError" in rec.attempts[0]["reason"]
    assert [a["world_size"] for a in rec.attempts] == [2, 1]
    assert [(p["step"], p["attempt"]) for p in rec.metrics(name="loss", rank=0)] == \
        [(s, 0) for s in range(10)] + [(s, 1) for s in range(10, 20)]
    assert [p["step"] for p in rec.metrics(name="loss", rank=1)] == list(range(10))
