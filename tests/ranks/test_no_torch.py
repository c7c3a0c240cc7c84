"""A script that never imports torch: em_dist does not import it either (create_run, log, finish,
the end of a failing rank), under no launcher, mpirun and horovodrun --gloo.

torch imported by em_dist in such a script costs seconds at start and, on a rank that fails,
prints "Exception ignored in ... torch/library.py _del_library" tracebacks at exit (torch
imported on em_dist's thread while the interpreter shuts down).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PYTHON
from tests.ranks._launch import HOROVODRUN, job_env, mpirun_cmd, the_run

pytestmark = pytest.mark.timeout(120)

SCRIPT = textwrap.dedent(
    """
    import atexit, os, sys

    rank = next((os.environ[v] for v in ("OMPI_COMM_WORLD_RANK", "HOROVOD_RANK") if v in os.environ), "0")

    def report():  # registered before em_dist's exit hook: runs after it
        with open(os.path.join(os.environ["EM_TEST_OUT"], f"rank-{rank}.txt"), "w") as f:
            f.write(str("torch" in sys.modules))

    atexit.register(report)
    import em_dist as em

    run = em.create_run(name="no_torch")
    for step in range(20):
        run.log("train", {"loss": 1.0 / (step + 1)}, step=step)
    if rank == "1" and os.environ.get("FAIL") == "1":
        raise RuntimeError("rank 1 fails")
    run.finish()
    """
)

_TRACEBACKS = ("Exception ignored", "_del_library", "can't register atexit")


def _cmd(launcher: str, script: Path) -> list[str]:
    if launcher == "none":
        return [PYTHON, str(script)]
    if launcher == "mpirun":
        return mpirun_cmd(2, script=script)
    if importlib.util.find_spec("horovod") is None:
        pytest.skip("horovod is not installed (run .ci/horovod.sh)")
    return [HOROVODRUN, "-np", "2", "-H", "localhost:2", "--gloo", PYTHON, str(script)]


def _job(launcher: str, tmp_path: Path, fail: bool) -> subprocess.CompletedProcess:
    script = tmp_path / "no_torch.py"
    script.write_text(SCRIPT)
    env = job_env(tmp_path, FAIL="1" if fail else "0")
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONUNBUFFERED", None)
    return subprocess.run(_cmd(launcher, script), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=100)


def _torch_loaded(tmp_path: Path, rank: int) -> str:
    return (tmp_path / "out" / f"rank-{rank}.txt").read_text()


@pytest.mark.parametrize("launcher", ["none", "mpirun", "horovodrun"])
def test_a_script_without_torch_never_gets_it(launcher: str, tmp_path: Path) -> None:
    proc = _job(launcher, tmp_path, fail=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [0] if launcher == "none" else [0, 1]
    assert [_torch_loaded(tmp_path, r) for r in ranks] == ["False"] * len(ranks)
    rec = the_run(tmp_path)
    assert rec.status == "Succeeded" and rec.ranks() == ranks
    assert all(len(rec.metrics(type="train", rank=r)) == 20 for r in ranks)


@pytest.mark.parametrize("launcher", ["mpirun", "horovodrun"])
def test_a_failing_rank_without_torch_prints_no_torch_traceback(launcher: str, tmp_path: Path) -> None:
    proc = _job(launcher, tmp_path, fail=True)
    assert proc.returncode != 0 and "rank 1 fails" in proc.stderr
    assert _torch_loaded(tmp_path, 1) == "False"
    assert not [line for line in proc.stderr.splitlines() if any(t in line for t in _TRACEBACKS)], proc.stderr[-4000:]
