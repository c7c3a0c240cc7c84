"""Every record a rank accepted reaches the job's one Run exactly once (issue: the record path).

Real launchers: a rank that dies of an exception a moment after ``create_run`` (with and without a
default group, and under ``--max-restarts=1``), and ranks that create the same run one after the
other, so that rank 0 has finished it before the others reach it (mpirun, horovodrun)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import em_dist as em
from tests.poll import wait_for
from tests.ranks._launch import HOROVODRUN, job_env, mpirun_cmd, run_job, torchrun_cmd
from tests.server.harness import fresh_server  # noqa: F401  (fixture)

WORKER = Path(__file__).parent / "workers" / "record_path.py"


def _runs(tmp_path: Path) -> list[em.RunRecord]:
    return [em.load_run(p) for p in sorted((tmp_path / "runs").iterdir()) if (p / "run.json").is_file()]


def _no_journal_left(tmp_path: Path) -> None:
    spool = tmp_path / "runs" / ".spool"
    assert not spool.exists() or not any(spool.rglob("*.journal")), list(spool.rglob("*"))


@pytest.mark.parametrize("group", [False, True], ids=["no-group", "gloo-group"])
def test_a_rank_dying_a_moment_after_create_run_hands_its_records_to_the_one_run(tmp_path, group):
    """It used to put its records into a stray folder labelled rank 0 ("can't register atexit after
    shutdown": torch was imported on the exit path), and the job's run said absent_ranks [1]."""
    cmd = torchrun_cmd(2, "die", "--delay", "0.05", *(["--group"] if group else []), script=WORKER)
    proc = run_job(cmd, job_env(tmp_path), timeout=120)
    assert proc.returncode != 0
    runs = _runs(tmp_path)
    assert len(runs) == 1, [r.path for r in runs]
    rec = runs[0]
    assert rec.status == "Failed" and rec.status_reason.startswith("rank 1: exception: RuntimeError: boom"), rec.status_reason
    assert "absent_ranks" not in rec.world
    for rank in (0, 1):
        assert [p["step"] for p in rec.metrics(name="loss", rank=rank)] == list(range(100))
    assert "can't register atexit" not in proc.stderr
    _no_journal_left(tmp_path)


def test_a_rank_dying_early_under_max_restarts_leaves_one_run_with_both_attempts(tmp_path):
    cmd = torchrun_cmd(2, "die", "--delay", "0.05", script=WORKER)
    cmd.insert(cmd.index("--standalone"), "--max-restarts=1")
    proc = run_job(cmd, job_env(tmp_path), timeout=180)
    assert proc.returncode == 0, proc.stderr[-4000:]
    runs = _runs(tmp_path)
    assert len(runs) == 1, [r.path for r in runs]
    rec = runs[0]
    assert rec.status == "Succeeded" and rec.restarts == 1
    for rank in (0, 1):
        points = rec.metrics(name="loss", rank=rank)
        assert sorted((p["attempt"], p["step"]) for p in points) == [(a, s) for a in (0, 1) for s in range(100)]
    _no_journal_left(tmp_path)


def _check_in_turn(tmp_path: Path, proc, ranks: int) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    runs = [r for r in _runs(tmp_path) if r.name == "a"]
    assert len(runs) == 1, [r.path for r in runs]  # no second "a" for the ranks that came after rank 0 ended it
    rec = runs[0]
    for rank in range(ranks):
        points = rec.metrics(name="loss", rank=rank)
        assert [p["step"] for p in points] == list(range(500)), f"rank {rank}: {len(points)} points"
        assert {p["value"] for p in rec.metrics(name="rank", rank=rank)} == {rank}
    assert {r: rec.delivery[str(r)]["complete"] for r in range(1, ranks)} == {r: True for r in range(1, ranks)}
    # run.path on a rank that came after rank 0 ended names the run its records went to (not a folder
    # that was never made), and reading it after finish() waits for no rank 0
    said = {r: json.loads((tmp_path / "out" / f"rank-{r}.json").read_text()) for r in range(ranks)}
    assert {r: Path(s["path"]) for r, s in said.items()} == {r: Path(rec.path or "") for r in range(ranks)}
    _no_journal_left(tmp_path)


def test_ranks_making_the_same_run_one_after_another_under_mpirun_land_in_it(tmp_path):
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun is missing (make test installs OpenMPI)")
    proc = run_job(mpirun_cmd(3, "in-turn", "--engine", "mpi", script=WORKER), job_env(tmp_path), timeout=180)
    _check_in_turn(tmp_path, proc, 3)


def test_ranks_making_the_same_run_one_after_another_under_horovodrun_land_in_it(tmp_path):
    pytest.importorskip("horovod.torch")

    cmd = [HOROVODRUN, "-np", "3", "-H", "localhost:3", "--gloo", sys.executable, str(WORKER), "in-turn",
           "--engine", "horovod"]
    proc = run_job(cmd, job_env(tmp_path), timeout=180)
    _check_in_turn(tmp_path, proc, 3)


def _steady_job_with_rank1_frozen(tmp_path: Path, steps: int, thaw: Callable[[], object], **env: str) -> str:
    """A 2-rank torchrun job of the ``steady`` case whose rank 1 is frozen (SIGSTOP) once its first
    records are in the run, and thawed when ``thaw()`` returns; the job's stderr once it ended (0)."""
    proc = subprocess.Popen(torchrun_cmd(2, "steady", "--steps", str(steps), script=WORKER), env=job_env(tmp_path, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        pid_file = tmp_path / "out" / "pid-1"
        wait_for(lambda: pid_file.exists() and _rank1_lines(tmp_path) >= 100, 60, "rank 1's first records in the run")
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            thaw()
        finally:
            os.kill(pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, err[-4000:]
    return err


def _rank1_lines(tmp_path: Path) -> int:
    files = list((tmp_path / "runs").glob("steady_*/metrics/rank-1.jsonl"))
    return sum(1 for _ in open(files[0])) if files else 0


def test_a_link_broken_mid_run_is_rebuilt_and_every_record_arrives_once(tmp_path):
    """Rank 1 freezes (SIGSTOP) for longer than the silence bound: rank 0 closes its link. When it
    thaws, its send fails, it rebuilds the link, learns how far rank 0 got and re-sends the rest
    from its journal: every record once, the run Succeeded, nobody lost."""
    # the fault: frozen for longer than the silence bound (1.5 s); a duration, not a synchronisation
    err = _steady_job_with_rank1_frozen(tmp_path, 160, lambda: time.sleep(4.0), EM_DIST_PEER_TIMEOUT="1.5")
    assert "the link to rank 0 broke" in err and "the link to rank 0 is back" in err, err[-3000:]
    runs = _runs(tmp_path)
    assert len(runs) == 1
    rec = runs[0]
    assert rec.status == "Succeeded" and rec.lost_ranks == [], (rec.status, rec.status_reason)
    for rank in (0, 1):
        assert [p["step"] for p in rec.metrics(name="loss", rank=rank)] == list(range(1600)), f"rank {rank}"
    assert rec.delivery["1"]["complete"] is True  # records counts its captured lines too (its warnings)
    assert rec.delivery["1"]["records"] >= 1600
    _no_journal_left(tmp_path)


def test_a_link_broken_for_good_lands_by_the_journal_and_uploads_once(tmp_path, fresh_server):  # noqa: F811
    """Rank 1 freezes until rank 0 has ended the run (its timeout passed): nothing more can go over a
    link. When it thaws it finishes, finds rank 0's ended run and merges its journal into it,
    exactly once; the run then uploads to a real server with every record of rank 1 once, and a
    second upload adds nothing."""
    rank0_ended = lambda: wait_for(lambda: (tmp_path / "out" / "rank-0.json").exists(), 60,  # noqa: E731
                                   "rank 0 to end the run without rank 1")
    _steady_job_with_rank1_frozen(tmp_path, 100, rank0_ended, EM_DIST_PEER_TIMEOUT="1", EM_DIST_TIMEOUT="2")
    rec = _runs(tmp_path)[0]
    assert len(_runs(tmp_path)) == 1
    assert [p["step"] for p in rec.metrics(name="loss", rank=1)] == list(range(1000))
    assert rec.delivery["1"]["complete"] is True
    _no_journal_left(tmp_path)

    _, key = fresh_server.add_user()
    for _ in range(2):  # idempotent: the second upload sends nothing new
        em.upload(rec.path, folder="journals", make_folder=True, host=fresh_server.url, api_key=key)
    remote = em.Client(host=fresh_server.url, api_key=key).run(rec.id)
    assert sorted(p["step"] for p in remote.metrics(name="loss", rank=1)) == list(range(1000))
