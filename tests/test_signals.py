"""A single process stopped by a signal records how it ended, keeps what it logged, and dies as it would have.

Real signals to real child processes. The promise checked: every record logged more
than ``flush_interval`` (0.5 s) before the signal is on disk, the run reads back
``Failed`` / ``signal: SIG...`` with an end time, and the exit status is the signal's.
A handler of the script's own decides instead (``tests/test_signals_handled.py``).
"""

from __future__ import annotations

import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.poll import wait_for

pytestmark = pytest.mark.timeout(120)

FAST_LOOP = """
import os, signal, sys, time
import em_dist as em
{before}
run = em.create_run(name="sig")
run.hparams["lr"] = 0.1
t0 = time.monotonic()
step, said = 0, False
while True:  # a fast training loop, logging until stopped
    run.log(type="train", metrics={{"loss": 1.0 / (step + 1)}}, step=step)
    step += 1
    if not said and time.monotonic() - t0 >= 1.0:
        open(os.path.join(sys.argv[1], "ready"), "w").close()
        said = True
"""


def _start(tmp_path: Path, before: str = "", **env: str) -> subprocess.Popen:
    script = tmp_path / "train.py"
    script.write_text(FAST_LOOP.format(before=textwrap.dedent(before)))
    return subprocess.Popen([PYTHON, str(script), str(tmp_path)], env=python_env(**env), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _signal_when_ready(tmp_path: Path, proc: subprocess.Popen, sig: int) -> tuple[float, int]:
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None, 60, "the loop to run")
        assert proc.poll() is None, proc.communicate()[1]
        sent = time.time()
        proc.send_signal(sig)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return sent, proc.returncode


def check_signalled_run(run_parent: Path, name: str, sent: float, interval: float = 0.5) -> None:
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason) == ("Failed", f"signal: {name}")
    assert rec.end_timestamp is not None and rec.hparams == {"lr": 0.1}
    points = rec.metrics()
    steps = [p["step"] for p in points]
    assert steps == list(range(len(steps)))  # nothing torn, nothing twice, no gap
    assert points[-1]["time"] >= sent - interval, f"records older than {interval}s lost: {sent - points[-1]['time']:.3f}s"


@pytest.mark.parametrize("trial", range(3))
def test_sigterm_flushes_marks_failed_and_exits_as_sigterm(tmp_path, run_parent, trial) -> None:
    sent, code = _signal_when_ready(tmp_path, _start(tmp_path), signal.SIGTERM)
    assert code == -signal.SIGTERM  # 143 in a shell, as without em_dist
    check_signalled_run(run_parent, "SIGTERM", sent)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP])
def test_sigint_and_sighup_are_recorded_too(tmp_path, run_parent, sig) -> None:
    sent, code = _signal_when_ready(tmp_path, _start(tmp_path), sig)
    assert code == -sig  # SIGINT: KeyboardInterrupt, then Python dies of SIGINT as ever
    check_signalled_run(run_parent, signal.Signals(sig).name, sent)


def test_a_user_handler_is_called_and_its_exit_ends_the_run(tmp_path, run_parent) -> None:
    # The program handles the signal (issue 22): its exit, not the signal, says how the run ended.
    before = """
    def handler(signum, frame):
        open(os.path.join(sys.argv[1], "handled"), "w").close()
        sys.exit(3)
    signal.signal(signal.SIGTERM, handler)
    """
    sent, code = _signal_when_ready(tmp_path, _start(tmp_path, before), signal.SIGTERM)
    assert code == 3 and (tmp_path / "handled").exists()
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason, rec.signals) == ("Failed", "exit code: 3", ["SIGTERM"])
    assert rec.end_timestamp is not None and rec.hparams == {"lr": 0.1}
    points = rec.metrics()
    assert [p["step"] for p in points] == list(range(len(points)))
    assert points[-1]["time"] >= sent - 0.5


def test_an_ignored_signal_stays_ignored(tmp_path, run_parent) -> None:
    proc = _start(tmp_path, "signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup")
    try:
        wait_for(lambda: (tmp_path / "ready").exists(), 60, "the loop to run")
        proc.send_signal(signal.SIGHUP)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(1.0)  # still training
        [rec] = em.list_runs(run_parent)
        assert rec.status == "Running"
    finally:
        proc.kill()
        proc.wait(10)


def test_em_dist_no_signals_leaves_signals_alone(tmp_path, run_parent) -> None:
    _, code = _signal_when_ready(tmp_path, _start(tmp_path, EM_DIST_NO_SIGNALS="1"), signal.SIGTERM)
    assert code == -signal.SIGTERM
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason) == ("Failed", "crashed")
