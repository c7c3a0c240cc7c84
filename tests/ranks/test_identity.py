"""Run identity across ranks: every record lands in the Run it was logged to (issue 15)."""

from __future__ import annotations

import json
import os
import sys
import subprocess
from pathlib import Path

import pytest

import em_dist as em

from ._launch import HOROVODRUN, job_env, mpirun_cmd, require_mpirun, result, run_job, torchrun_cmd

pytestmark = pytest.mark.timeout(240)
SWEEP = Path(__file__).parent / "workers" / "sweep.py"


def _runs(tmp_path: Path) -> dict[str, em.RunRecord]:
    runs = [em.load_run(p) for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    by_name: dict[str, em.RunRecord] = {}
    for r in runs:
        assert r.name not in by_name, f"two runs named {r.name}: {[x.path for x in runs if x.name == r.name]}"
        by_name[r.name] = r
    return by_name


def _check_sweep(tmp_path: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    runs = _runs(tmp_path)
    assert sorted(runs) == ["rank0_eval", "rank1_solo", "sweep0", "sweep1", "sweep2"]
    for k in range(3):
        rec = runs[f"sweep{k}"]
        assert rec.status == "Succeeded" and rec.lost_ranks == [] and "absent_ranks" not in rec.world
        for rank in (0, 1):
            points = rec.metrics(name="k", rank=rank)
            assert [p["value"] for p in points] == [k] * 5, f"sweep{k} holds rank {rank}'s records of another run"
            assert {p["value"] for p in rec.metrics(name="rank", rank=rank)} == {rank}
    only0 = runs["rank0_eval"]
    assert only0.ranks() == [0] and only0.world["absent_ranks"] == [1]
    assert {p["value"] for p in only0.metrics(name="k")} == {100}
    solo = runs["rank1_solo"]  # rank 0 has no such run: rank 1 made it, its records under its own rank
    assert solo.ranks() == [1] and {p["value"] for p in solo.metrics(name="k")} == {200}
    assert {p["value"] for p in solo.metrics(name="rank")} == {1}
    assert solo.world["made_by_rank"] == 1 and solo.world["ranks_present"] == [1]
    seen0, seen1 = result(tmp_path, 0), result(tmp_path, 1)
    for k in range(3):  # a peer's run.id, alternative_name and path are rank 0's
        assert seen1[f"sweep{k}"] == seen0[f"sweep{k}"] == {
            "id": runs[f"sweep{k}"].id, "alternative_name": runs[f"sweep{k}"].alternative_name,
            "path": runs[f"sweep{k}"].path}


def test_mixed_runs_never_exchange_records_under_torchrun(tmp_path):
    proc = run_job(torchrun_cmd(2, "--engine", "torch", script=SWEEP), job_env(tmp_path), timeout=200)
    _check_sweep(tmp_path, proc)


def test_mixed_runs_never_exchange_records_under_mpirun(tmp_path):
    require_mpirun()
    proc = run_job(mpirun_cmd(2, "--engine", "mpi", script=SWEEP), job_env(tmp_path), timeout=200)
    _check_sweep(tmp_path, proc)


def test_mixed_runs_never_exchange_records_under_horovodrun(tmp_path):
    pytest.importorskip("horovod.torch")
    from tests.conftest import PYTHON

    env = job_env(tmp_path, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    cmd = [HOROVODRUN, "-np", "2", "-H", "localhost:2", "--gloo", PYTHON, str(SWEEP), "--engine", "horovod"]
    _check_sweep(tmp_path, run_job(cmd, env, timeout=200))


@pytest.mark.parametrize("made_in", ["child", "parent"])
def test_mp_spawn_with_create_run_before_the_group_gives_one_run(tmp_path, made_in):
    """The run made in each child before init_process_group, or in the parent and passed to the
    children; rank 0 marks an output at once after the group formed, which the run keeps."""
    from ._launch import free_port

    spawned = Path(__file__).parent / "workers" / "spawned.py"
    (tmp_path / "weights.bin").write_bytes(b"w" * 64)
    env = job_env(tmp_path, EM_TEST_ARTIFACT=str(tmp_path / "weights.bin"))
    proc = run_job([sys.executable, str(spawned), str(free_port()), *(["handle"] if made_in == "parent" else [])],
                   env, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1, f"one run, no stray folders: {[p.name for p in folders]}"
    rec = em.load_run(folders[0])
    assert rec.status == "Succeeded" and rec.world["size"] == 2 and rec.world["launcher"] == "mp.spawn"
    for rank in (0, 1):
        assert [p["value"] for p in rec.metrics(name="step_seen", rank=rank)] == list(range(30))
        assert {p["value"] for p in rec.metrics(name="rank", rank=rank)} == {rank}
    assert result(tmp_path, 0) == result(tmp_path, 1) == {"id": rec.id, "path": rec.path}
    [output] = [a for a in rec.artifacts if a.role == "output"]
    assert output.name == "early" and [f["path"] for f in em.load_artifact(output.path).files] == ["weights.bin"]


@pytest.mark.parametrize("where", ["top", "module", "callback"])
def test_lightning_ddp_launcher_gives_one_run_wherever_it_is_created(tmp_path, where):
    pytest.importorskip("lightning")
    script = Path(__file__).parent / "workers" / "lightning_ddp.py"
    env = job_env(tmp_path)
    proc = subprocess.run([sys.executable, str(script), "ddp", where], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1, f"one run, no stray folders: {[p.name for p in folders]}"
    rec = em.load_run(folders[0])
    assert rec.status == "Succeeded" and rec.world["size"] == 2 and rec.world["launcher"] == "lightning"
    for rank in (0, 1):  # 4000 samples, batch 8, 2 ranks: 250 steps each, each logged once
        assert [p["step"] for p in rec.metrics(name="loss", rank=rank)] == list(range(250))
        assert {p["value"] for p in rec.metrics(name="rank", rank=rank)} == {rank}
    assert result(tmp_path, 0) == result(tmp_path, 1) == {"id": rec.id, "path": rec.path}


def test_lightning_ddp_fork_with_the_run_made_before_the_fork_gives_one_run(tmp_path):
    """``ddp_fork`` forks the ranks from the process that made the run: the children's records
    reach the parent's run folder, which becomes the job's one Run (no folder of their own)."""
    pytest.importorskip("lightning")
    script = Path(__file__).parent / "workers" / "lightning_ddp.py"
    proc = subprocess.run([sys.executable, str(script), "ddp_fork", "top"], env=job_env(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1, f"one run, no stray folders: {[p.name for p in folders]}"
    rec = em.load_run(folders[0])
    assert (rec.status, rec.lost_ranks) == ("Succeeded", []) and rec.world["size"] == 2
    for rank in (0, 1):
        assert [p["step"] for p in rec.metrics(name="loss", rank=rank)] == list(range(250))
        assert {p["value"] for p in rec.metrics(name="rank", rank=rank)} == {rank}
    assert result(tmp_path, 0) == {"id": rec.id, "path": rec.path}  # the parent's run object names the Run
