"""``em run list`` / ``em run show`` on real run folders, through the real console script entry point."""

from __future__ import annotations

import json
import os
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


def test_show_finds_a_run_by_its_name_the_newest_of_several() -> None:
    first = em.create_run(name="named")
    first.finish()
    second = em.create_run(name="named")
    second.log(type="train", metrics={"loss": 0.5}, step=1)
    second.finish()
    out = _em("run", "show", "named")
    assert out.returncode == 0, out.stderr
    assert f"id         {second.id}" in out.stdout
    assert "2 runs are named 'named'; showing the newest" in out.stderr and first.alternative_name in out.stderr
    missing = _em("run", "show", "no-such-run")
    assert missing.returncode == 1 and "no-such-run is not a run or artifact folder" in missing.stderr


def test_show_into_a_closed_pipe_exits_quietly(tmp_path) -> None:
    """``em run show RUN | head``: the reader is gone before the output is written; no traceback."""
    run = em.create_run(name="piped")
    run.hparams.update({f"h{i}": i for i in range(200)})
    run.finish()
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left: every write fails with EPIPE
    try:
        proc = subprocess.run([PYTHON, "-m", "em_dist.cli.main", "run", "show", str(run.path)], env=python_env(),
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
