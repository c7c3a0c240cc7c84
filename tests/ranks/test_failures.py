"""Rank failures never hang the job: kill -9 of a peer, of rank 0, and SIGTERM from the launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import em_dist as em
from tests.poll import wait_for

from ._launch import (
    check_gathered,
    free_port,
    job_env,
    kill_all,
    metric_lines,
    result,
    run_job,
    spawn_env_job,
    the_run,
    torchrun_cmd,
)

pytestmark = pytest.mark.timeout(120)

STEPS, EXTRA = 40, 7
RANK1_LINES = STEPS + EXTRA + 1  # train points + the val point


def _train_points_complete(rec, ranks) -> None:
    for r in ranks:
        n = STEPS + r * EXTRA
        pts = rec.metrics(type="train", name="v", rank=r)
        assert [p["value"] for p in pts] == [r * 1_000_000 + s for s in range(n)], f"rank {r}"


def _waiting(tmp_path, ranks):
    return all((result(tmp_path, r) or {}).get("waiting") for r in ranks)


def test_kill9_of_a_peer_rank0_finishes_and_records_the_lost_rank(tmp_path):
    go = tmp_path / "go"
    procs = spawn_env_job(2, job_env(tmp_path), "--init", "before", "--wait-file", str(go), "--timeout", "20")
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1]), 60, "both ranks to log their points")
        wait_for(lambda: metric_lines(tmp_path, 1) >= RANK1_LINES, 10, "rank 1's points in rank 0's run")
        procs[1].kill()
        procs[1].wait(10)
        go.touch()
        wait_for(lambda: "finish_s" in (result(tmp_path, 0) or {}), 30, "rank 0 to finish")
    finally:
        kill_all(procs)
    assert result(tmp_path, 0)["finish_s"] < 20
    rec = the_run(tmp_path)
    assert rec.status == "Failed" and rec.status_reason == "lost ranks: [1]"
    assert rec.lost_ranks == [1]
    _train_points_complete(rec, [0, 1])


def test_kill9_of_rank0_other_ranks_leave_finish_within_the_timeout(tmp_path):
    go = tmp_path / "go"
    procs = spawn_env_job(2, job_env(tmp_path), "--init", "before", "--wait-file", str(go), "--timeout", "10")
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1]), 60, "both ranks to log their points")
        procs[0].kill()
        procs[0].wait(10)
        go.touch()
        wait_for(lambda: "finish_s" in (result(tmp_path, 1) or {}), 30, "rank 1 to finish")
        procs[1].wait(30)
    finally:
        kill_all(procs)
    assert result(tmp_path, 1)["finish_s"] < 10


def test_an_exception_on_a_peer_fails_the_run_with_its_reason(tmp_path):
    # create_run before init_process_group in a plain RANK/WORLD_SIZE launch: em_dist waits for the group
    procs = spawn_env_job(2, job_env(tmp_path), "--init", "after", "--raise-rank", "1")
    try:
        for p in procs:
            p.wait(60)
    finally:
        kill_all(procs)
    rec = the_run(tmp_path)
    assert rec.status == "Failed" and rec.status_reason == "rank 1: exception: RuntimeError: boom"
    assert rec.lost_ranks == []
    check_gathered(rec, 2, STEPS, EXTRA)


def test_torchrun_kill9_of_a_rank_leaves_a_failed_run_with_everything_received(tmp_path):
    go = tmp_path / "go"
    agent = subprocess.Popen(torchrun_cmd(2, "--wait-file", str(go), "--timeout", "20"), env=job_env(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1]), 60, "both ranks to log their points")
        wait_for(lambda: metric_lines(tmp_path, 1) >= RANK1_LINES, 10, "rank 1's points in rank 0's run")
        os.kill(result(tmp_path, 1)["pid"], signal.SIGKILL)
        agent.wait(60)  # torchrun then stops rank 0 with SIGTERM
    finally:
        kill_all([agent])
    rec = the_run(tmp_path)
    assert rec.status == "Failed"
    assert rec.status_reason.startswith("signal: SIGTERM") and "lost ranks: [1]" in rec.status_reason
    assert rec.lost_ranks == [1]
    _train_points_complete(rec, [0, 1])


def test_sigterm_to_the_job_is_noted_and_the_users_handler_decides_the_end(tmp_path):
    """The script's SIGTERM handler (installed before create_run) exits with 3: the run is Failed by
    that exit, with the signal noted; em_dist did not kill the process itself (issue 22's rule)."""
    go = tmp_path / "go"
    agent = subprocess.Popen(torchrun_cmd(2, "--wait-file", str(go), "--user-handler", "--timeout", "20"),
                             env=job_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1]), 60, "both ranks to log their points")
        wait_for(lambda: metric_lines(tmp_path, 1) >= RANK1_LINES, 10, "rank 1's points in rank 0's run")
        t0 = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        agent.wait(60)
        assert time.monotonic() - t0 < 20
    finally:
        kill_all([agent])
    rec = the_run(tmp_path)
    assert rec.status == "Failed" and rec.status_reason.startswith("exit code: 3"), rec.status_reason
    assert rec.signals == ["SIGTERM"]
    _train_points_complete(rec, [0, 1])
    for r in (0, 1):  # the handler the script installed ran
        assert (tmp_path / "out" / f"user-handler-{r}").exists()


def test_no_engine_on_one_filesystem_keeps_every_rank(tmp_path):
    """RANK/WORLD_SIZE and nothing else (no init_process_group, no MPI): each rank writes its own
    metrics file into rank 0's folder, and nobody waits for a transport that cannot exist."""
    procs = spawn_env_job(3, job_env(tmp_path), "--init", "none")
    try:
        for p in procs:
            assert p.wait(60) == 0, p.stdout.read()[-3000:]
    finally:
        kill_all(procs)
    rec = the_run(tmp_path)
    assert rec.status == "Succeeded" and rec.world["transport"] == "files"
    assert rec.lost_ranks == [] and "absent_ranks" not in rec.world
    check_gathered(rec, 3, STEPS, EXTRA)
    assert all(result(tmp_path, r)["finish_s"] < 5 for r in range(3))


@pytest.mark.parametrize("late_rank", [0, 2])
def test_no_engine_with_one_rank_starting_seconds_late_keeps_one_run(tmp_path, late_rank):
    """No engine, and one rank reaches create_run 8 s after the others (a loaded machine starts
    Python slowly): rank 0 late, the peers finish before its folder exists; a peer late, rank 0
    finished before it began. Either way one run holds every rank's records."""
    procs = spawn_env_job(3, job_env(tmp_path), "--init", "none", "--late-rank", str(late_rank), "--late-s", "8")
    try:
        for p in procs:
            assert p.wait(90) == 0, p.stdout.read()[-3000:]
    finally:
        kill_all(procs)
    rec = the_run(tmp_path)
    assert rec.status == "Succeeded" and rec.world["transport"] == "files"
    check_gathered(rec, 3, STEPS, EXTRA)


def test_no_engine_jobs_on_one_port_each_keep_their_own_run(tmp_path):
    """Two jobs one after the other with the same MASTER_ADDR:MASTER_PORT (a fixed port in a script)
    and no engine: the second job's peers write into the second job's run, not the first's."""
    env = job_env(tmp_path)
    port = str(free_port())
    for job in (1, 2):
        procs = spawn_env_job(3, env, "--init", "none", port=port)
        try:
            for p in procs:
                assert p.wait(60) == 0, p.stdout.read()[-3000:]
        finally:
            kill_all(procs)
    runs = [em.load_run(p) for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 2, [r.path for r in runs]
    for rec in runs:
        assert rec.status == "Succeeded"
        check_gathered(rec, 3, STEPS, EXTRA)


def test_a_slow_peer_is_late_not_lost(tmp_path):
    """Rank 1 is alive but reaches finish() after rank 0 gave up waiting: recorded as late."""
    proc = run_job(torchrun_cmd(2, "--timeout", "2", "--slow-rank", "1", "--slow-s", "6"), job_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    runs = [em.load_run(p) for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 1, "rank 1 had nothing left to keep on its own"
    (main,) = runs
    assert main.late_ranks == [1] and main.lost_ranks == [] and main.status == "Succeeded"
    check_gathered(main, 2, STEPS, EXTRA)  # everything rank 1 logged had reached rank 0 already


def test_a_frozen_peer_is_lost_after_the_silence_bound(tmp_path):
    """Rank 1 stops (SIGSTOP) with its link open: gloo can't show rank 0 anything, so rank 0 notices
    the silence (no heartbeat), closes that link and records rank 1 as lost, within its timeout."""
    go = tmp_path / "go"
    procs = spawn_env_job(2, job_env(tmp_path), "--init", "before", "--wait-file", str(go), "--timeout", "40")
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1]), 60, "both ranks to log their points")
        wait_for(lambda: metric_lines(tmp_path, 1) >= RANK1_LINES, 10, "rank 1's points in rank 0's run")
        procs[1].send_signal(signal.SIGSTOP)
        go.touch()
        wait_for(lambda: "finish_s" in (result(tmp_path, 0) or {}), 60, "rank 0 to finish")
        procs[1].send_signal(signal.SIGCONT)
    finally:
        kill_all(procs)
    assert result(tmp_path, 0)["finish_s"] < 30  # the silence bound (10 s), not the 40 s timeout
    rec = the_run(tmp_path)
    assert rec.lost_ranks == [1] and rec.status == "Failed"
    _train_points_complete(rec, [0, 1])


def test_kill9_of_a_node_leader_loses_only_the_leader_and_its_member_goes_to_rank0_directly(tmp_path):
    """Blocks of two ranks: rank 2 relays rank 3. Kill -9 rank 2 once rank 3's points reached rank 0:
    rank 0 records rank 2 as lost and keeps everything it logged before; rank 3 goes on, goes to
    rank 0 directly (re-sending what its leader never forwarded), and is not lost; nobody hangs."""
    go = tmp_path / "go"
    env = job_env(tmp_path, EM_DIST_NODE_SIZE="2")
    procs = spawn_env_job(4, env, "--init", "before", "--wait-file", str(go), "--timeout", "20")
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1, 2, 3]), 60, "every rank to log its points")
        wait_for(lambda: all(metric_lines(tmp_path, r) >= STEPS + r * EXTRA + 1 for r in range(4)), 20,
                 "every rank's points in rank 0's run")
        procs[2].kill()
        procs[2].wait(10)
        go.touch()
        wait_for(lambda: all("finish_s" in (result(tmp_path, r) or {}) for r in (0, 1, 3)), 40,
                 "ranks 0, 1 and 3 to finish")
    finally:
        kill_all(procs)
    assert all(result(tmp_path, r)["finish_s"] < 20 for r in (0, 1, 3))
    rec = em.load_run(result(tmp_path, 0)["path"])
    assert rec.lost_ranks == [2] and rec.status == "Failed"
    assert rec.world.get("relayed_by", {}) == {}  # rank 3 ended on its own link to rank 0
    _train_points_complete(rec, [0, 1, 2, 3])
    own = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file() and str(p) != result(tmp_path, 0)["path"]]
    assert own == []  # no run of its own any more
    wait_for(lambda: not list((tmp_path / "runs").glob(".spool/*/rank-3.*.journal")), 20,
             "rank 3's journal merged into the run and removed")
    later = em.load_run(result(tmp_path, 0)["path"]).metrics(type="heartbeat", name="alive", rank=3)
    assert later and len({p["step"] for p in later}) == len(later)  # rank 3's later heartbeats, each once


def _run_doc(tmp_path) -> dict:
    """Rank 0's run.json as it is now, or ``{}``."""
    import json

    files = list((tmp_path / "runs").glob("*/run.json")) if (tmp_path / "runs").is_dir() else []
    try:
        return json.loads(files[0].read_text()) if files else {}
    except json.JSONDecodeError:
        return {}


def test_the_programs_handler_exiting_while_finish_waits_still_records_the_late_rank(tmp_path):
    """Rank 0's finish() waits (dist_timeout 60 s) for rank 1, which is alive but slow; SIGTERM reaches
    rank 0 alone and the script's own handler exits with 3 from inside that wait. The exit goes
    on (rank 0 ends with 3, at once), but first run.json records the end as it stood: Failed,
    ``signal: SIGTERM; then exit code: 3``, rank 1 late (its link never broke), everything of both."""
    go = tmp_path / "go"
    agent = subprocess.Popen(torchrun_cmd(2, "--wait-file", str(go), "--user-handler", "--timeout", "60",
                                          "--slow-rank", "1", "--slow-s", "40"),
                             env=job_env(tmp_path), stdout=open(tmp_path / "job.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: _waiting(tmp_path, [0, 1]), 60, "both ranks to log their points")
        pid0 = result(tmp_path, 0)["pid"]
        go.touch()
        wait_for(lambda: _run_doc(tmp_path).get("end_timestamp"), 30, "rank 0 waiting in finish()")
        t0 = time.monotonic()
        os.kill(pid0, signal.SIGTERM)
        wait_for(lambda: _run_doc(tmp_path).get("late_ranks"), 15, "rank 0 to record its end")
        took = time.monotonic() - t0
        doc = _run_doc(tmp_path)
        assert (tmp_path / "out" / "user-handler-0").exists()
        agent.wait(30)  # rank 0 failed: torchrun stops rank 1 (SIGTERM; its handler exits) and ends
    finally:
        kill_all([agent])
    out = (tmp_path / "job.log").read_text(errors="replace")
    assert took < 10, took
    assert doc["status"] == "Failed" and doc["status_reason"] == "signal: SIGTERM; then exit code: 3", (doc, out[-3000:])
    assert doc["late_ranks"] == [1] and doc["lost_ranks"] == [] and doc["signals"] == ["SIGTERM"], doc
    assert doc["delivery"]["1"]["complete"] is False, doc["delivery"]
    rec = the_run(tmp_path)
    _train_points_complete(rec, [0, 1])
