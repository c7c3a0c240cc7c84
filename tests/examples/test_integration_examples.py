"""The integration examples: the Keras one runs as a user would; the multi-process ones compile
(their code paths run in tests/test_lightning.py and tests/integrations/ with the same calls)."""

from __future__ import annotations

import py_compile
import subprocess

import em_dist as em
from tests.conftest import PYTHON, REPO, python_env
from tests.integrations.frameworks import require

EXAMPLES = ["keras/train_keras.py", "lightning/train_lightning_ddp.py", "transformers/train_trainer.py",
            "accelerate/train_accelerate.py"]


def test_examples_compile() -> None:
    for name in EXAMPLES:
        py_compile.compile(str(REPO / "examples" / name), doraise=True)


def test_keras_example(tmp_path, run_parent) -> None:
    require("keras")
    proc = subprocess.run([PYTHON, str(REPO / "examples/keras/train_keras.py"), "--epochs", "1", "--train-size", "320"],
                          cwd=tmp_path, env=python_env(KERAS_BACKEND="torch"), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [rec] = em.list_runs(run_parent)
    assert rec.name == "mnist_keras" and rec.status == "Succeeded"
    assert rec.hparams["optimizer"] == "Adam" and rec.hparams["batch_size"] == 32
    assert {p["type"] for p in rec.metrics()} == {"train", "val", "test"}
    # 256 training samples in batches of 32: every 10th batch, then the epoch's end at step 8
    assert [p["step"] for p in rec.metrics(type="train", name="loss")] == [8]
