"""Lightning on 2 CPU processes: every rank's own values in the one run, hparams, checkpoints as an artifact.

Lightning's ``ddp`` launcher, ``ddp_spawn`` and ``ddp_fork`` with a run the callback makes at ``setup``,
and ``torchrun`` with a run the script made at the top (``EMLogger`` + ``EMCallback``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import em_dist as em
from tests.integrations.frameworks import WORKERS, require, series
from tests.ranks._launch import job_env, run_job, the_run, torchrun_cmd

pytestmark = pytest.mark.timeout(180)
WORKER = WORKERS / "lightning_train.py"


@pytest.fixture(autouse=True)
def _lightning() -> None:
    require("lightning")


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def _check_ranks(rec, *, rank_metric: str = "rank_value") -> None:
    """2 ranks x 2 epochs x 4 batches: each rank's own values at Lightning's steps 0..7, validation per epoch."""
    assert rec.ranks() == [0, 1] and rec.status == "Succeeded" and rec.world["size"] == 2
    for r in (0, 1):
        points = series(rec, "train", rank_metric, r)
        assert [(s, e) for s, e, _ in points] == [(s, s // 4) for s in range(8)], f"rank {r}"
        assert {v for _, _, v in points} == {float(r)}  # this rank's own value, not rank 0's
        assert [(s, e) for s, e, _ in series(rec, "val", "loss", r)] == [(3, 0), (7, 1)]
    assert rec.hparams == {"lr": 0.05, "hidden": 8}


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn", "ddp_fork"])
def test_callback_records_every_rank_under_lightnings_launchers(tmp_path: Path, strategy: str) -> None:
    env = job_env(tmp_path)
    # ddp_spawn after mpi4py was imported: the ranks inherit an MPI singleton's PMIX_* variables
    mpi = ["--import-mpi"] if strategy == "ddp_spawn" else []
    proc = run_job([sys.executable, str(WORKER), "--strategy", strategy, "--checkpoints", "--root", str(tmp_path), *mpi],
                   env, timeout=150)
    _ok(proc)
    rec = the_run(tmp_path)
    assert rec.name == "lit"
    assert rec.world["launcher"] == "lightning"
    _check_ranks(rec)
    for r in (0, 1):  # the training_step loss and the epoch means Lightning computed on this rank
        assert len(series(rec, "train", "loss", r)) == 8
        assert [(s, e) for s, e, _ in series(rec, "train", "loss_epoch", r)] == [(3, 0), (7, 1)]
    [artifact] = [a for a in rec.artifacts if a.role == "output"]
    assert artifact.name == "lit-checkpoints"
    assert [f["path"] for f in em.load_artifact(artifact.path).files] == ["epoch=1-step=8.ckpt"]


def test_logger_and_callback_under_torchrun_with_the_scripts_run(tmp_path: Path) -> None:
    env = job_env(tmp_path)
    proc = run_job(torchrun_cmd(2, "--strategy", "ddp", "--run-at-top", "--logger", "--root", str(tmp_path),
                                "--histograms", "4", script=WORKER), env, timeout=150)
    _ok(proc)
    rec = the_run(tmp_path)
    assert rec.name == "lit-top" and rec.world["launcher"] == "torchrun"
    # the logger's log_metrics ran on every rank: Lightning's names, no callback duplicates
    _check_ranks(rec)
    for r in (0, 1):
        assert {p["name"] for p in rec.metrics(type="train", rank=r)} == {"rank_value", "loss_step", "loss_epoch"}
        assert len(series(rec, "train", "loss_step", r)) == 8
        # the callback beside the logger: each rank's own gradient and weight histograms every 4 steps
        for type_ in ("gradients", "weights"):
            assert sorted((m.step, m.name) for m in rec.media(type=type_, rank=r)) == [
                (s, n) for s in (0, 4) for n in ("net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight")], (type_, r)


def test_split_by_type_and_alias() -> None:
    from em_dist.aimd.lightning import AIMDCallback
    from em_dist.lightning import EMCallback, split_by_type

    assert AIMDCallback is EMCallback
    assert split_by_type({"val_loss": 1, "val/acc": 2, "test_acc": 3, "train_loss": 4, "lr": 5, "epoch": 0}) == {
        "val": {"loss": 1, "acc": 2}, "test": {"acc": 3}, "train": {"loss": 4, "lr": 5}}


def test_ddp_spawn_with_the_run_made_in_the_main_process(tmp_path: Path) -> None:
    """The Run of the main process travels to the spawned ranks as a handle: they re-attach to its folder."""
    env = job_env(tmp_path)
    proc = run_job([sys.executable, str(WORKER), "--strategy", "ddp_spawn", "--run-at-top", "--logger",
                    "--checkpoints", "--import-mpi", "--root", str(tmp_path)], env, timeout=150)
    _ok(proc)
    assert "pickle" not in proc.stderr
    rec = the_run(tmp_path)
    assert rec.name == "lit-top"
    _check_ranks(rec)
    # the ranks' engine came up in processes Lightning spawned: no launcher variables fool the name
    assert rec.world["launcher"] == "lightning"
    outputs = [a for a in rec.artifacts if a.role == "output"]  # the logger's and the callback's
    assert outputs and all([f["path"] for f in em.load_artifact(a.path).files] == ["epoch=1-step=8.ckpt"] for a in outputs)


@pytest.mark.parametrize("every", [None, 2])
def test_callback_weight_and_gradient_histograms_every_n_steps(tmp_path: Path, every) -> None:
    """In this process, one CPU device: 8 batches = optimizer steps 0..7 (Lightning's logger steps)."""
    import lightning.pytorch as pl

    sys.path.insert(0, str(WORKERS))
    try:
        from lightning_train import Tiny, loader
    finally:
        sys.path.remove(str(WORKERS))
    from em_dist.lightning import EMCallback

    run = em.create_run(name="lit_hist")
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=8, log_every_n_steps=1, logger=False,
                         callbacks=[EMCallback(run, histograms_every_n_steps=every)], enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                         num_sanity_val_steps=0, limit_val_batches=0)
    model = Tiny()
    trainer.fit(model, loader(64, 1))
    run.finish()
    rec = em.load_run(run.path)
    media = rec.media()
    if every is None:
        assert media == []
        return
    names = [n for n, _ in model.named_parameters()]
    for type_ in ("weights", "gradients"):
        got = sorted((m.step, m.name) for m in rec.media(type=type_))
        assert got == sorted((s, n) for s in (0, 2, 4, 6) for n in names), type_
    [w] = rec.media(type="weights", name="net.0.weight")[-1:]
    assert sum(w.counts) == 8 * 8 and w.epoch is not None
    # at the train metrics' steps
    assert {m.step for m in rec.media(type="gradients")} == {p["step"] for p in rec.metrics(type="train", name="loss") if p["step"] % 2 == 0}
