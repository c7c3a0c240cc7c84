"""Issue 8, item 1: SIGTERM while the main thread holds a lock of the metadata path never hangs.

Each trial starts a real 2-rank job (plain RANK/WORLD_SIZE launch, gloo) whose main threads
update ``run.hparams`` in a tight loop, and sends SIGTERM to both ranks, as torchrun does to
the survivors of a failed job. The old handler finished the run on the interrupted thread and
hung in about 1 trial of 6; ``benchmarks/bench_signals.py`` runs 200 trials.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.poll import wait_for

from ._launch import free_port, job_env, the_run

pytestmark = pytest.mark.timeout(300)

WORKER = Path(__file__).parent / "workers" / "hparams_loop.py"
TRIALS = 8


def sigterm_trial(tmp_path: Path, timeout: float = 30.0) -> tuple[bool, list[int]]:
    """One job, SIGTERM to every rank once it loops; (hung, exit codes)."""
    env = job_env(tmp_path)
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, str(WORKER)], env=dict(
            env, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r), LOCAL_WORLD_SIZE="2",
            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for r in range(2)
    ]
    hung = False
    try:
        wait_for(lambda: all((tmp_path / "out" / f"ready-{r}").exists() for r in range(2))
                 or any(p.poll() is not None for p in procs), 120, "both ranks to loop")
        assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
        for p in procs:
            os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                hung = True
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
    return hung, [p.returncode for p in procs]


@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigterm_during_hparams_updates_never_hangs(tmp_path, trial) -> None:
    hung, codes = sigterm_trial(tmp_path)
    assert not hung, "a rank did not exit within 30 s of SIGTERM"
    assert codes == [-signal.SIGTERM] * 2
    rec = the_run(tmp_path)
    assert rec.status == "Failed" and rec.status_reason.startswith("signal: SIGTERM"), rec.status_reason
    assert rec.end_timestamp is not None and rec.hparams["i"] >= 0
