"""Captured output of a real torchrun job: every rank's lines in rank 0's one run, per rank."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from em_dist.store.lines import parse_output_line
from em_dist.store.logs import log_file

from ._launch import free_port, job_env, run_job, the_run, torchrun_cmd

pytestmark = pytest.mark.timeout(180)
WORKER = Path(__file__).parent / "workers" / "printing.py"


def _check(tmp_path: Path, stdout: str, transport: str) -> None:
    for r in range(2):  # still shown
        assert f"rank {r} step 15\n" in stdout and f"rank {r} child\n" in stdout
    rec = the_run(tmp_path)
    assert rec.world["transport"] == transport
    for r in range(2):
        lines = [parse_output_line(x) for x in log_file(Path(rec.path), r).read_text().splitlines(keepends=True)]
        out = [x["text"] for x in lines if x["stream"] == "out"]
        assert out == [f"rank {r} step {s}" for s in (0, 5, 10, 15)] + [f"rank {r} child"]
        assert [x["text"] for x in lines if x["stream"] == "err" and x["text"].startswith("rank")] == [f"rank {r} warns"]
    assert sorted({p["rank"] for p in rec.metrics()}) == [0, 1]
    assert len(rec.metrics()) == 40  # output lines are not metric points


def test_torchrun_peers_ship_their_output_to_rank0(tmp_path: Path) -> None:
    proc = run_job(torchrun_cmd(2, "--init", "gloo", script=WORKER), job_env(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    _check(tmp_path, proc.stdout, "gloo")


def test_without_an_engine_each_rank_writes_its_own_log_into_rank0s_folder(tmp_path: Path) -> None:
    env = dict(job_env(tmp_path), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))  # the job's identity
    procs = [subprocess.Popen([sys.executable, str(WORKER), "--init", "none"], text=True, stdout=subprocess.PIPE,
                              env=dict(env, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2"))
             for r in range(2)]
    try:
        stdout = "".join(p.communicate(timeout=120)[0] for p in procs)
        assert [p.returncode for p in procs] == [0, 0], stdout[-3000:]
    finally:
        for p in procs:
            p.kill()
    _check(tmp_path, stdout, "files")
