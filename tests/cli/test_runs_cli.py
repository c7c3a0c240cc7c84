"""``em run list`` / ``em run show`` on real run folders, through the real console script entry point."""

from __future__ import annotations

import json
import subprocess

import em_dist as em
from tests.conftest import PYTHON, python_env


def _em(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "em_dist.cli.main", *args], env=python_env(), capture_output=True, text=True, timeout=60)


def test_list_and_show(tmp_path, run_parent) -> None:
    art_file = tmp_path / "m.pt"
    art_file.write_bytes(b"x" * 10)
    run = em.create_run(name="cli_run", labels=["demo"])
    run.hparams.update({"lr": 0.01, "optimizer": "Adam"})
    for step in range(5):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1)}, step=step, epoch=0)
    art = em.create_artifact("model")
    art.add_file(art_file)
    run.mark_output(art)
    run.finish()

    out = _em("run", "list", "-d", str(run_parent))
    assert out.returncode == 0, out.stderr
    assert "cli_run" in out.stdout and "Succeeded" in out.stdout

    out = _em("run", "show", str(run.path))
    assert out.returncode == 0, out.stderr
    assert "lr = 0.01" in out.stdout and "train/loss rank 0: 0.2 @ step 4" in out.stdout
    assert "output model" in out.stdout and "m.pt" in out.stdout

    out = _em("run", "show", str(run.path), "--json")
    doc = json.loads(out.stdout)
    assert doc["id"] == run.id and len(doc["metrics"]) == 5 and doc["artifacts"][0]["role"] == "output"


def test_show_missing_run_fails_clearly(tmp_path) -> None:
    out = _em("run", "show", str(tmp_path / "nope"))
    assert out.returncode == 1 and "not a run" in out.stderr


def test_help() -> None:
    for args in (["--help"], ["run", "--help"], ["run", "list", "--help"], ["run", "show", "--help"]):
        out = _em(*args)
        assert out.returncode == 0 and "usage" in out.stdout


def test_list_reads_metadata_only_and_is_fast_for_100_runs(run_parent, monkeypatch, capsys) -> None:
    # issue 8, item 10: listing read every metric point (23 s, 2.7 GB RSS over 6.8M points)
    import argparse
    import time

    from em_dist.cli import runs as cli_runs
    from em_dist.store import layout, reader

    for i in range(100):
        run = em.create_run(name=f"r{i}")
        run.log(type="train", metrics={"loss": float(i)}, step=i)
        run.finish()
    big = layout.metrics_file(run.path, 0)
    line = big.read_bytes()
    big.write_bytes(line * 200_000)  # a big run (its size must not matter: no metrics file is read)

    def no_points(*a, **k):
        raise AssertionError("em run list read a metrics file")

    monkeypatch.setattr(reader, "read_points", no_points)
    monkeypatch.setattr(reader, "iter_records", no_points)
    t0 = time.monotonic()
    assert cli_runs._list(argparse.Namespace(dir=str(run_parent), json=False)) == 0
    took = time.monotonic() - t0
    out = capsys.readouterr().out
    assert took < 1.0, f"listing 100 runs took {took:.2f} s"
    assert out.count("Succeeded") == 100 and "RECORDS" in out
    assert cli_runs._list(argparse.Namespace(dir=str(run_parent), json=True)) == 0
    docs = json.loads(capsys.readouterr().out)
    last = {d["name"]: d["summary"]["last"]["0"]["train"]["loss"]["value"] for d in docs}
    assert last["r7"] == 7.0 and len(last) == 100
