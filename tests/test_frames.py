"""pandas views of a saved run (``RunRecord.dataframe``): one row per point, every rank, typed columns."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

import em_dist as em

pd = pytest.importorskip("pandas")


def _two_rank_run() -> Path:
    """A real run, then rank 1's lines added in the run-folder format a distributed run writes."""
    run = em.create_run(name="frames")
    for step in range(5):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1), "lr": 0.1}, step=step, epoch=step // 2)
    run.log(type="val", metrics={"acc": 0.5}, step=4)
    run.finish()
    path = Path(run.path)
    lines = (path / "metrics" / "rank-0.jsonl").read_text().splitlines()
    with open(path / "metrics" / "rank-1.jsonl", "w") as fh:
        for line in lines:
            rec = json.loads(line)
            rec["metrics"] = {k: v + 10 for k, v in rec["metrics"].items()}
            fh.write(json.dumps(rec) + "\n")
    return path


def test_a_runs_points_as_a_frame() -> None:
    rec = em.load_run(_two_rank_run())
    df = rec.dataframe()
    assert list(df.columns) == ["type", "name", "rank", "step", "epoch", "value", "time", "attempt"]
    assert len(df) == len(rec.metrics()) == 2 * 11
    assert str(df["rank"].dtype) == "int64" and str(df["epoch"].dtype) == "Int64"
    loss = rec.dataframe(type="train", name="loss", rank=1)
    assert loss["step"].tolist() == list(range(5))
    assert loss["value"].tolist() == [1.0 / (s + 1) + 10 for s in range(5)]
    assert loss["epoch"].tolist() == [0, 0, 1, 1, 2]
    wide = rec.dataframe(type="train").pivot_table(index="step", columns=["name", "rank"], values="value")
    assert wide[("lr", 0)].tolist() == [0.1] * 5 and wide[("lr", 1)].tolist() == [10.1] * 5
    assert rec.dataframe(name="nothing").empty


def test_without_pandas_the_call_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = em.load_run(_two_rank_run())
    monkeypatch.setitem(sys.modules, "pandas", None)  # an environment without pandas
    with pytest.raises(ImportError, match=r"em_dist\[dataframe\]"):
        rec.dataframe()
