"""``accelerate launch --multi_gpu --num_processes 2`` with ``Accelerator(cpu=True)``: every process in the one run."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integrations.frameworks import WORKERS, require, series
from tests.poll import wait_for
from tests.ranks._launch import job_env, kill_all, run_job, the_run

pytestmark = pytest.mark.timeout(180)


LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]


def test_accelerate_launch_two_cpu_processes(tmp_path: Path) -> None:
    require("accelerate")
    cmd = [*LAUNCH, str(WORKERS / "accelerate_train.py"), "--steps", "5"]
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


def test_sigterm_to_accelerate_launch_is_the_scripts_to_handle(tmp_path: Path) -> None:
    """The launcher passes SIGTERM to both processes; the script's own handler (installed before the
    run was made) stops its loop at a step every process agrees on (Accelerate's trigger), logs a last evaluation, ends training and finishes the tracker on
    every process: the run is Succeeded with the signal noted, and what was logged after the signal
    is kept on both ranks. (Without ``tracker.finish()`` on the non-main process, its exit without a
    finish after a handled signal would read as Failed, the rule for any script.)"""
    require("accelerate")
    out = tmp_path / "out"
    launcher = subprocess.Popen([*LAUNCH, str(WORKERS / "accelerate_train.py"), "--until-sigterm"],
                                env=job_env(tmp_path, HF_HUB_OFFLINE="1"), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: all((out / f"ready-{r}").exists() for r in (0, 1)) or launcher.poll() is not None, 120,
                 "both processes to train")
        assert launcher.poll() is None, launcher.communicate()[0][-4000:]
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=60)
    finally:
        kill_all([launcher])
    rec = the_run(tmp_path)
    assert (rec.name, rec.status, rec.signals) == ("acc-sigterm", "Succeeded", ["SIGTERM"]), rec.status_reason
    for r in (0, 1):
        stopped = int((out / f"stopped-{r}").read_text())
        assert [s for s, _, _ in series(rec, "train", "loss", r)] == list(range(stopped))
        assert [(s, v) for s, _, v in series(rec, "val", "after", r)] == [(stopped + i, float(i)) for i in range(3)]
