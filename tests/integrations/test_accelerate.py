"""``accelerate launch --multi_gpu --num_processes 2`` with ``Accelerator(cpu=True)``: every process in the one run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integrations.frameworks import WORKERS, require, series
from tests.ranks._launch import job_env, run_job, the_run

pytestmark = pytest.mark.timeout(180)


def test_accelerate_launch_two_cpu_processes(tmp_path: Path) -> None:
    require("accelerate")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
           str(WORKERS / "accelerate_train.py"), "--steps", "5"]
    proc = run_job(cmd, job_env(tmp_path, HF_HUB_OFFLINE="1"), timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rec = the_run(tmp_path)
    assert rec.name == "acc" and rec.status == "Succeeded" and rec.lost_ranks == []
    assert rec.ranks() == [0, 1] and rec.world["size"] == 2
    for r in (0, 1):
        assert [(s, v) for s, _, v in series(rec, "train", "process", r)] == [(s, r) for s in range(5)]
        assert [s for s, _, _ in series(rec, "train", "loss", r)] == list(range(5))
        assert [(s, e, v) for s, e, v in series(rec, "val", "loss", r)] == [(5, 1, 0.5 + r)]
    assert rec.hparams == {"lr": 0.1, "batch_size": 4}  # init_trackers(config=...) on the main process
    assert len(rec.platform["ranks"]) == 2
