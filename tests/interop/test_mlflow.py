"""``em import mlflow`` of runs MLflow's own client wrote to a SQLite tracking store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env

pytest.importorskip("mlflow")

WRITER = """
import sys
import mlflow

mlflow.set_tracking_uri(sys.argv[1])
mlflow.set_experiment("resnet")
with mlflow.start_run(run_name="baseline"):
    mlflow.log_params({"lr": 0.01, "layers": 50, "optimizer": "sgd", "amp": True})
    for step in range(5):
        mlflow.log_metric("train/loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("val_acc", step / 10, step=step)
    mlflow.set_tag("team", "vision")
    with open(sys.argv[2], "w") as fh:
        fh.write("weights")
    mlflow.log_artifact(sys.argv[2], artifact_path="model")
mlflow.set_experiment("other")
with mlflow.start_run(run_name="broken"):
    mlflow.log_metric("loss", 3.0, step=0)
    mlflow.end_run(status="FAILED")
"""


def test_mlflow_runs_come_in_with_params_histories_tags_and_files(tmp_path: Path, run_parent) -> None:
    db = tmp_path / "mlflow.db"
    (tmp_path / "write.py").write_text(WRITER)
    env = python_env()
    wrote = subprocess.run([sys.executable, str(tmp_path / "write.py"), f"sqlite:///{db}", str(tmp_path / "w.bin")],
                           env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert wrote.returncode == 0, wrote.stderr[-3000:]
    proc = subprocess.run([PYTHON, "-m", "em_dist.cli.main", "import", "mlflow", str(db)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = {r.name: em.load_run(r.path) for r in em.list_runs()}
    assert sorted(runs) == ["baseline", "broken"]
    rec = runs["baseline"]
    assert rec.status == "Succeeded" and rec.world["imported_from"] == "mlflow"
    assert rec.hparams == {"lr": 0.01, "layers": 50, "optimizer": "sgd", "amp": True}
    assert "team=vision" in rec.labels and "imported" in rec.labels
    assert [(p["step"], p["value"]) for p in rec.metrics(type="train", name="loss")] == [(s, 1.0 / (s + 1)) for s in range(5)]
    assert [p["value"] for p in rec.metrics(name="val_acc")] == [s / 10 for s in range(5)]
    [files] = [a for a in rec.artifacts if a.role == "output"]
    artifact = em.load_artifact(files.path)
    assert [f["path"] for f in artifact.files] == [os.path.join("model", "w.bin")]
    assert runs["broken"].status == "Failed" and runs["broken"].status_reason == "failed in MLflow"
    only = subprocess.run([PYTHON, "-m", "em_dist.cli.main", "import", "mlflow", str(db), "--experiment", "nope"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert only.returncode == 1 and "no MLflow experiment named 'nope'" in only.stderr
