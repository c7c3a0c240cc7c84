"""The seed's single-device script, run as a user would, records everything load_run needs."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

import em_dist as em
from tests.conftest import PYTHON, REPO, python_env

pytest.importorskip("torch")


def test_single_device_mnist_example(tmp_path, run_parent) -> None:
    proc = subprocess.run(
        [PYTHON, str(REPO / "examples/single_device/train_mnist.py"), "--epochs", "1", "--train-size", "320", "--test-size", "64"],
        cwd=tmp_path, env=python_env(), capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [rec] = em.list_runs(run_parent)
    assert rec.name == "mnist_torch" and rec.status == "Succeeded"
    assert rec.hparams["batch_size"] == 32 and rec.hparams["learning_rate"] == 0.001
    assert {p["type"] for p in rec.metrics()} == {"train", "val", "test"}
    assert {p["name"] for p in rec.metrics(type="val")} == {"loss", "accuracy"}
    [art] = rec.artifacts
    assert art.role == "output" and art.name == "mnist_torch_saved_model"
    [f] = art.files
    assert f["sha256"] == hashlib.sha256((tmp_path / "model_state_dict.pt").read_bytes()).hexdigest()
