"""``em export --format csv|parquet``: read back with pandas, the files are the run's ``dataframe()``."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_runs_points_as_a_table_file(tmp_path: Path, run_parent, fmt: str) -> None:
    run = em.create_run(name="table")
    for step in range(4):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1), "ok": step % 2 == 0}, step=step, epoch=step // 2)
    run.log(type="val", metrics={"acc": 0.75}, step=3)
    run.finish()
    proc = subprocess.run([PYTHON, "-m", "em_dist.cli.main", "export", run.path, "--format", fmt], cwd=tmp_path,
                          env=python_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    path = tmp_path / f"{Path(run.path).name}.{fmt}"
    got = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    want = em.load_run(run.path).dataframe()
    assert list(got.columns) == list(want.columns)
    assert got["name"].tolist() == want["name"].tolist() and got["step"].tolist() == want["step"].tolist()
    assert got["value"].astype(float).tolist() == want["value"].astype(float).tolist()
    assert got["epoch"].fillna(-1).tolist() == want["epoch"].astype(float).fillna(-1).tolist()  # the val point has none
