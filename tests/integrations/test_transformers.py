"""A Transformers ``Trainer`` on 2 processes under torchrun: every process's logs in the one run."""

from __future__ import annotations

from pathlib import Path

import pytest

import em_dist as em
from tests.integrations.frameworks import WORKERS, require, series
from tests.ranks._launch import job_env, run_job, the_run, torchrun_cmd

pytestmark = pytest.mark.timeout(180)


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


@pytest.mark.parametrize("top", [False, True], ids=["callback-run", "script-run"])
def test_trainer_under_torchrun_records_every_process(tmp_path: Path, top: bool) -> None:
    require("transformers")
    args = ["--out", str(tmp_path / "trainer")] + (["--run-at-top"] if top else ["--checkpoints"])
    env = job_env(tmp_path, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # nothing may be downloaded
    proc = run_job(torchrun_cmd(2, *args, script=WORKERS / "transformers_train.py"), env, timeout=150)
    _ok(proc)
    rec = the_run(tmp_path)
    assert rec.name == ("hf-top" if top else "hf") and rec.status == "Succeeded"
    assert rec.ranks() == [0, 1] and rec.world["size"] == 2 and rec.world["launcher"] == "torchrun"
    for r in (0, 1):
        # 64 samples, 4 per process per step, 2 processes: 8 steps per epoch; 6 steps, logged every step
        expected = [(s, s / 8) for s in range(1, 7)]
        for name in ("loss", "grad_norm", "learning_rate"):
            assert [(s, e) for s, e, _ in series(rec, "train", name, r)] == expected, (name, r)
        assert [(s, e) for s, e, _ in series(rec, "val", "loss", r)] == [(6, 0.75)]
        assert [s for s, _, _ in series(rec, "summary", "train_runtime", r)] == [6]
    assert rec.hparams["args"]["learning_rate"] == 1e-3 and rec.hparams["args"]["max_steps"] == 6
    assert rec.hparams["model_config"]["hidden_size"] == 16
    outputs = [a for a in rec.artifacts if a.role == "output"]
    if top:
        assert outputs == []
    else:
        [artifact] = outputs
        assert artifact.name == "hf-checkpoint"
        files = {f["path"] for f in em.load_artifact(artifact.path).files}
        assert {"checkpoint-6/model.safetensors", "checkpoint-6/trainer_state.json"} <= files


def test_split_logs() -> None:
    require("transformers")
    from em_dist.integrations.transformers import split_logs

    assert split_logs({"loss": 1.0, "eval_loss": 2.0, "test_acc": 3.0, "train_runtime": 4.0, "epoch": 0.5, "note": "x"}) == {
        "train": {"loss": 1.0}, "val": {"loss": 2.0}, "test": {"acc": 3.0}, "summary": {"train_runtime": 4.0}}


@pytest.mark.parametrize("every", [None, 2])
def test_callback_weight_and_gradient_histograms_every_n_steps(tmp_path: Path, every, monkeypatch) -> None:
    """In this process on the CPU: the worker's 1-layer BERT, 4 steps."""
    require("transformers")
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

    from em_dist.integrations.transformers import EMCallback

    monkeypatch.syspath_prepend(str(WORKERS))
    from transformers_train import Synthetic

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4, logging_steps=1,
                             report_to="none", use_cpu=True, dataloader_num_workers=0, save_strategy="no", disable_tqdm=True)
    run = em.create_run(name="hf_hist")
    model = BertForSequenceClassification(config)
    Trainer(model=model, args=args, train_dataset=Synthetic(16, 1),
            callbacks=[EMCallback(run, histograms_every_n_steps=every)]).train()
    run.finish()
    rec = em.load_run(run.path)
    if every is None:
        assert rec.media() == []
        return
    names = [n for n, _ in model.named_parameters()]
    assert sorted((m.step, m.name) for m in rec.media(type="weights")) == sorted((s, n) for s in (2, 4) for n in names)
    grads = rec.media(type="gradients")
    assert {m.step for m in grads} == {2, 4}
    assert {m.name for m in grads} <= set(names) and "classifier.weight" in {m.name for m in grads}
    [w] = rec.media(type="weights", name="classifier.weight", rank=0)[-1:]
    assert sum(w.counts) == 16 * 2 and w.epoch == 1.0  # 4 steps of 4 samples: one epoch
