"""The local launch recipes run as launch/README.md writes them, and the README's demo works end to end."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, REPO, python_env


def _recipe_env(tmp_path: Path) -> dict[str, str]:
    env = python_env(PYTHON=PYTHON)
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env["PATH"]
    return env


def _assert_one_run_with_every_rank(run_parent: Path, ranks: int) -> em.RunRecord:
    [rec] = em.list_runs(run_parent)
    assert rec.status == "Succeeded", rec.status_reason
    assert rec.world["size"] == ranks and rec.lost_ranks == []
    assert sorted(rec.platform["ranks"]) == [str(r) for r in range(ranks)]
    assert rec.ranks() == list(range(ranks))
    for r in range(ranks):  # each rank's series arrived exactly once, in step order
        steps = [p["step"] for p in rec.metrics(type="train", name="loss", rank=r)]
        assert steps and steps == sorted(set(steps))
    return rec


def test_torchrun_single_node_recipe_with_the_ddp_example(tmp_path, run_parent) -> None:
    pytest.importorskip("torch")
    proc = subprocess.run(
        [str(REPO / "launch/torchrun_single_node.sh"), str(REPO / "examples/ddp/train_mnist_ddp.py"),
         "--epochs", "1", "--train-size", "256", "--test-size", "64"],
        cwd=tmp_path, env=_recipe_env(tmp_path), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = _assert_one_run_with_every_rank(run_parent, 2)
    assert {p["type"] for p in rec.metrics()} >= {"train", "val", "test"}
    assert any(a.role == "output" and a.files for a in rec.artifacts)


def test_mpirun_recipe_with_the_mpi4py_only_example(tmp_path, run_parent) -> None:
    if shutil.which("mpirun") is None and not os.environ.get("CI"):
        pytest.skip("mpirun is not installed (CI installs OpenMPI)")
    proc = subprocess.run(
        [str(REPO / "launch/mpirun.sh"), str(REPO / "examples/mpi/train_mpi.py"), "--steps", "20"],
        cwd=tmp_path, env=_recipe_env(tmp_path), capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_one_run_with_every_rank(run_parent, 2)


def test_readme_demo_trains_uploads_and_prints_the_console(tmp_path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("fastapi")
    work = tmp_path / "demo"
    proc = subprocess.run(
        [PYTHON, str(REPO / "launch/demo.py"), "--no-wait", "--port", "0", "--epochs", "1", "--workdir", str(work)],
        env=python_env(), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert re.search(r"Console:\s+http://127\.0\.0\.1:\d+/", proc.stdout)
    assert re.search(r"API key:\s+em_\S+", proc.stdout)
    [local] = em.list_runs(work / "runs")
    assert local.status == "Succeeded" and local.world["size"] == 2

    # What the demo uploaded is on its server: start it again on the same data and read it back.
    key = subprocess.run([PYTHON, "-m", "em_dist.cli.main", "server", "key", "create", "demo", "--data-dir", str(work / "server")],
                         env=python_env(), capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
    server = subprocess.Popen([PYTHON, "-m", "em_dist.cli.main", "server", "start", "--port", "0", "--data-dir", str(work / "server")],
                              env=python_env(), stdout=subprocess.PIPE, text=True)
    try:
        url = re.search(r"(http://\S+)", server.stdout.readline()).group(1)
        remote = em.Client(host=url, api_key=key).run(local.id)
        assert remote.world["size"] == 2 and remote.ranks() == [0, 1]
        assert len(remote.metrics()) == len(local.metrics())
        assert any(a.role == "output" for a in remote.artifacts)
    finally:
        server.terminate()
        server.wait(timeout=30)
