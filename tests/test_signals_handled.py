"""Issue 22: a signal the program handles is the program's to end; em_dist records it and keeps everything.

Real signals to real child processes, real Lightning. When a handler of the script or its
framework is in the chain (installed before or after ``create_run``), em_dist notes the
signal in the run (``signals``), makes what was logged durable, and neither kills the
process nor drops what is logged afterwards: ``finish()`` ends the run Succeeded, an
exception Failed, as the program decides. With no handler but em_dist's the run ends
Failed (``signal: SIGTERM``) and the process dies of the signal (``tests/test_signals.py``).
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import em_dist as em
from em_dist.cli.main import main as cli_main
from tests.conftest import PYTHON, python_env
from tests.integrations.frameworks import require
from tests.poll import wait_for

pytestmark = pytest.mark.timeout(120)

HANDLED_LOOP = """
import os, signal, sys, time
import em_dist as em
stop = []
def handler(signum, frame):  # the program's own graceful stop: set a flag, the loop ends itself
    stop.append(signum)
{before}
run = em.create_run(name="sig")
{after}
t0, step, said = time.monotonic(), 0, False
while not stop:
    run.log(type="train", metrics={{"loss": 1.0 / (step + 1)}}, step=step)
    step += 1
    if not said and time.monotonic() - t0 >= 0.5:
        open(os.path.join(sys.argv[1], "ready"), "w").close()
        said = True
for i in range(5):  # what a script does after it was told to stop: a last evaluation, say
    run.log(type="val", metrics={{"after": float(i)}}, step=step + i)
with open(os.path.join(sys.argv[1], "stopped"), "w") as f:
    f.write(str(step))
{end}
"""

INSTALL = "signal.signal(signal.SIGTERM, handler)"


def _run_script(tmp_path: Path, script: str, sig: int = signal.SIGTERM,
                timeout: float = 60) -> subprocess.CompletedProcess:
    """Start ``script``, send ``sig`` once it wrote ``ready``, and wait (bounded) for it to end."""
    path = tmp_path / "train.py"
    path.write_text(script)
    proc = subprocess.Popen([PYTHON, str(path), str(tmp_path)], env=python_env(), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None, timeout, "the script to train")
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _handled(tmp_path: Path, *, before: str = "", after: str = "", end: str = "run.finish()") -> subprocess.CompletedProcess:
    return _run_script(tmp_path, HANDLED_LOOP.format(before=before, after=after, end=end))


def _check_kept_after_the_signal(tmp_path: Path, rec) -> None:
    """Every step up to the stop, then the 5 records the script logged after the signal."""
    stopped = int((tmp_path / "stopped").read_text())
    assert [p["step"] for p in rec.metrics(type="train")] == list(range(stopped))
    assert [(p["step"], p["value"]) for p in rec.metrics(type="val")] == [(stopped + i, float(i)) for i in range(5)]


def test_a_handler_installed_before_create_run_ends_the_run_as_the_script_does(tmp_path, run_parent, capsys) -> None:
    done = _handled(tmp_path, before=INSTALL)
    assert done.returncode == 0, done.stderr[-4000:]
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason, rec.signals) == ("Succeeded", None, ["SIGTERM"])
    assert rec.end_timestamp is not None
    _check_kept_after_the_signal(tmp_path, rec)
    assert cli_main(["run", "show", str(rec.path)]) == 0
    assert "signals    SIGTERM" in capsys.readouterr().out


def test_a_handler_installed_after_create_run_ends_the_run_as_the_script_does(tmp_path, run_parent) -> None:
    # em_dist's handler is then not the one Python calls: the script's replaced it and never calls it.
    done = _handled(tmp_path, after=INSTALL)
    assert done.returncode == 0, done.stderr[-4000:]
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason) == ("Succeeded", None)
    _check_kept_after_the_signal(tmp_path, rec)


def test_a_handler_after_create_run_that_chains_to_em_dist_keeps_the_process(tmp_path, run_parent) -> None:
    # The framework pattern (Lightning's _SignalConnector): install over the current handler and call it too.
    chain = """
previous = signal.getsignal(signal.SIGTERM)
def chained(signum, frame):
    handler(signum, frame)
    if callable(previous):
        previous(signum, frame)
signal.signal(signal.SIGTERM, chained)
"""
    done = _handled(tmp_path, after=chain)
    assert done.returncode == 0, done.stderr[-4000:]
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason, rec.signals) == ("Succeeded", None, ["SIGTERM"])
    _check_kept_after_the_signal(tmp_path, rec)


def test_a_handled_signal_then_an_exception_fails_the_run_with_the_exception(tmp_path, run_parent) -> None:
    done = _handled(tmp_path, before=INSTALL, end='raise RuntimeError("stopped by the scheduler")')
    assert done.returncode == 1 and "RuntimeError" in done.stderr
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason) == ("Failed", "exception: RuntimeError: stopped by the scheduler")
    assert rec.signals == ["SIGTERM"]
    _check_kept_after_the_signal(tmp_path, rec)


def test_a_handled_signal_is_durable_before_the_script_ends(tmp_path, run_parent) -> None:
    # The script handles SIGTERM and trains on (its grace period); the scheduler's SIGKILL follows.
    script = HANDLED_LOOP.format(before=INSTALL, after="", end="").replace("while not stop:", "while True:")
    path = tmp_path / "train.py"
    path.write_text(script)
    proc = subprocess.Popen([PYTHON, str(path), str(tmp_path)], env=python_env(), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None, 60, "the script to train")
        sent = time.time()
        proc.send_signal(signal.SIGTERM)
        run_json = lambda: json.loads(next(run_parent.glob("*/run.json")).read_text())  # noqa: E731
        wait_for(lambda: run_json().get("signals") == ["SIGTERM"], 10, "run.json to note the signal")
        assert proc.poll() is None and run_json()["status"] == "Running"  # still training, still its run
    finally:
        proc.kill()
        proc.wait(10)
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason, rec.signals) == ("Failed", "signal: SIGTERM", ["SIGTERM"])
    points = rec.metrics(type="train")
    assert [p["step"] for p in points] == list(range(len(points)))
    assert points[-1]["time"] >= sent - 0.5  # what was logged up to the signal was made durable


LIGHTNING = """
import os, sys
import torch
from torch.utils.data import DataLoader, TensorDataset
import lightning.pytorch as pl
from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
import em_dist as em
from em_dist.lightning import EMCallback, EMLogger

run = em.create_run(name="lit-sigterm")  # at the top: em_dist's handler is installed before Lightning's
out = sys.argv[1]

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(8, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        if self.global_step == 5:
            open(os.path.join(out, "ready"), "w").close()
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

g = torch.Generator().manual_seed(0)
data = DataLoader(TensorDataset(torch.randn(64, 8, generator=g), torch.randint(0, 2, (64,), generator=g)), batch_size=8)
trainer = pl.Trainer(
    accelerator="cpu", devices=1, max_epochs=-1, max_steps=10**7, log_every_n_steps=1, logger=EMLogger(run),
    callbacks=[EMCallback(run), OnExceptionCheckpoint(dirpath=out)],
    enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
)
{fit}
"""

FIT_CAUGHT = """
try:
    trainer.fit(Tiny(), data)
except SIGTERMException:
    with open(os.path.join(out, "after_fit"), "w") as f:
        f.write(str(trainer.global_step))
    run.log("val", {"after_fit": 1.0}, step=trainer.global_step)
run.finish()
"""


def test_lightning_graceful_sigterm_checkpoints_and_the_script_finishes_the_run(tmp_path, run_parent) -> None:
    require("lightning")
    done = _run_script(tmp_path, LIGHTNING.format(fit=FIT_CAUGHT), timeout=90)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "on_exception.ckpt").is_file(), done.stderr[-4000:]  # OnExceptionCheckpoint ran
    stopped = int((tmp_path / "after_fit").read_text())  # the code after fit ran
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason, rec.signals) == ("Succeeded", None, ["SIGTERM"])
    assert [p["step"] for p in rec.metrics(type="val", name="after_fit")] == [stopped]
    assert len(rec.metrics(type="train", name="loss")) >= 5


def test_lightning_sigterm_left_to_propagate_fails_the_run(tmp_path, run_parent) -> None:
    require("lightning")
    done = _run_script(tmp_path, LIGHTNING.format(fit="trainer.fit(Tiny(), data)"), timeout=90)
    assert done.returncode == 0, done.stderr[-4000:]  # SIGTERMException is a SystemExit(None), as without em_dist
    assert (tmp_path / "on_exception.ckpt").is_file(), done.stderr[-4000:]
    [rec] = em.list_runs(run_parent)
    # the script never said it was done: the signal ended it
    assert (rec.status, rec.status_reason, rec.signals) == ("Failed", "signal: SIGTERM", ["SIGTERM"])
    assert len(rec.metrics(type="train", name="loss")) >= 5


def test_sigusr1_is_left_to_the_program(tmp_path, run_parent) -> None:
    # Lightning's SLURM auto-requeue uses SIGUSR1: em_dist installs nothing for it.
    before = "signal.signal(signal.SIGUSR1, handler)"
    done = _run_script(tmp_path, HANDLED_LOOP.format(before=before, after="", end="run.finish()"), sig=signal.SIGUSR1)
    assert done.returncode == 0, done.stderr[-4000:]
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.signals) == ("Succeeded", [])
    _check_kept_after_the_signal(tmp_path, rec)


FIT_UNTIL_REQUEUED = """
class StopAfterRequeue(pl.Callback):  # a requeued job goes on until SLURM stops it; here 5 more steps
    seen = None

    def on_train_batch_end(self, trainer, *args):
        if self.seen is None and any(name.startswith("hpc_ckpt_") for name in os.listdir(out)):
            self.seen = trainer.global_step
        if self.seen is not None and trainer.global_step >= self.seen + 5:
            trainer.should_stop = True

trainer.callbacks.append(StopAfterRequeue())
trainer.fit(Tiny(), data)
with open(os.path.join(out, "after_fit"), "w") as f:
    f.write(str(trainer.global_step))
run.log("val", {"after_fit": 1.0}, step=trainer.global_step)
run.finish()
"""


@pytest.mark.parametrize("made", ["by the script", "by the logger"])
def test_lightning_slurm_auto_requeue_sigusr1_checkpoints_and_training_goes_on(tmp_path, run_parent, made) -> None:
    """Lightning's SLURM auto-requeue: its SIGUSR1 handler finalizes the loggers (status
    ``"finished"``), saves an HPC checkpoint and calls ``scontrol requeue``; the job trains on until
    SLURM ends it. That ``finalize`` must end no run, neither the script's (``EMLogger(run)``) nor
    one the logger made itself (``EMLogger()``): what is logged after it is kept and the run ends
    Succeeded when training does. The process is a SLURM task as
    ``srun`` makes one (its environment); ``scontrol`` is a stand-in on PATH that notes the
    requeue, since no real job 4242 exists to requeue."""
    require("lightning")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path / 'requeued'}\n")
    (bin_dir / "scontrol").chmod(0o755)
    env = python_env(PATH=f"{bin_dir}:{python_env()['PATH']}", SLURM_NTASKS="1", SLURM_PROCID="0", SLURM_LOCALID="0",
                     SLURM_NODEID="0", SLURM_JOB_ID="4242", SLURM_JOB_NAME="train", SLURM_NODELIST="127.0.0.1")
    path = tmp_path / "train.py"
    script = LIGHTNING.format(fit=FIT_UNTIL_REQUEUED)
    if made == "by the logger":
        script = (script.replace('run = em.create_run(name="lit-sigterm")', "")
                  .replace("logger=EMLogger(run)", "logger=EMLogger()").replace("EMCallback(run), ", "")
                  .replace('run.log("val", {"after_fit": 1.0}, step=trainer.global_step)\nrun.finish()\n', ""))
    path.write_text(script)
    proc = subprocess.Popen([PYTHON, str(path), str(tmp_path)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "ready").exists() or proc.poll() is not None, 90, "the script to train")
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        proc.send_signal(signal.SIGUSR1)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 0, err[-4000:]
    assert (tmp_path / "requeued").read_text().split() == ["requeue", "4242"]  # Lightning's handler ran
    assert list(tmp_path.glob("hpc_ckpt_*.ckpt")), err[-4000:]
    stopped = int((tmp_path / "after_fit").read_text())
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason, rec.signals) == ("Succeeded", None, [])  # SIGUSR1 is the program's
    train_steps = [p["step"] for p in rec.metrics(type="train", name="loss")]
    assert max(train_steps) >= stopped - 1 and len(train_steps) >= 10, train_steps  # steps after the signal kept
