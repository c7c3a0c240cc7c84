"""Launch helpers for the distributed tests: real torchrun / mpirun / plain-env jobs on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = Path(__file__).parent / "workers" / "train.py"
REPO = Path(__file__).resolve().parents[2]
_BESIDE = Path(sys.executable).with_name("horovodrun")
HOROVODRUN = str(_BESIDE) if _BESIDE.is_file() else (shutil.which("horovodrun") or str(_BESIDE))
"""The horovodrun of the environment running the tests (the one Horovod was built into), before any
other on PATH: a stray one elsewhere (another Python's, left behind by an old install) launches
another interpreter's Horovod, or nothing."""


def job_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for one job: its own run/artifact folders and result folder."""
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "TORCHELASTIC", "OMPI_", "PMI"))}
    env.update(
        EM_RUN_PARENT_DIR=str(tmp_path / "runs"),
        EM_ARTIFACT_PARENT_DIR=str(tmp_path / "artifacts"),
        EM_TEST_OUT=str(out),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def torchrun_cmd(nproc: int, *worker_args: str, script: Path = WORKER) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "--monitor-interval=0.1", str(script), *worker_args]


def mpirun_cmd(nproc: int, *worker_args: str, script: Path = WORKER) -> list[str]:
    return ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(nproc),
            "--mca", "btl", "self,vader,tcp", sys.executable, str(script), *worker_args]


def run_job(cmd: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_env_job(nproc: int, env: dict[str, str], *worker_args: str, port: str | None = None) -> list[subprocess.Popen]:
    """A plain RANK/WORLD_SIZE launch (no agent): rank 0's init_process_group hosts the store."""
    port = port or str(free_port())
    procs = []
    for rank in range(nproc):
        e = dict(env, RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(nproc),
                 MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), *worker_args], env=e,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs




def result(tmp_path: Path, rank: int) -> dict | None:
    path = tmp_path / "out" / f"rank-{rank}.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def the_run(tmp_path: Path):
    """The one run folder of the job, read back with em_dist.load_run."""
    import em_dist

    runs = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 1, f"expected one run folder for the whole job, found {[r.name for r in runs]}"
    return em_dist.load_run(runs[0])


def metric_lines(tmp_path: Path, rank: int) -> int:
    """Lines rank 0 wrote for ``rank`` so far (polled by the failure tests)."""
    runs = list((tmp_path / "runs").glob(f"*/metrics/rank-{rank}.jsonl")) if (tmp_path / "runs").is_dir() else []
    if not runs:
        return 0
    return runs[0].read_bytes().count(b"\n")


def check_gathered(rec, world: int, steps: int, extra: int, ranks=None) -> None:
    """Every rank's ``v`` values, counts and steps arrived exactly once, and its final val point."""
    ranks = range(world) if ranks is None else ranks
    assert rec.ranks() == sorted(ranks), rec.ranks()
    for r in ranks:
        n = steps + r * extra
        points = rec.metrics(type="train", name="v", rank=r)
        assert [p["step"] for p in points] == list(range(n)), f"rank {r} steps"
        assert [p["value"] for p in points] == [r * 1_000_000 + s for s in range(n)], f"rank {r} values"
        assert len(rec.metrics(type="train", name="loss", rank=r)) == n
        val = rec.metrics(type="val", name="acc", rank=r)
        assert [(p["step"], p["value"]) for p in val] == [(n, 0.5 + r / 100)]


def kill_all(procs) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass


def require_mpirun() -> None:
    if shutil.which("mpirun") is None:
        if os.environ.get("CI"):
            pytest.fail("mpirun is missing (apt: openmpi-bin libopenmpi-dev) and CI is set")
        pytest.skip("mpirun is not installed")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("mpi4py is missing and CI is set")
        pytest.skip("mpi4py is not installed")


def send_signal(pid: int, sig: int = signal.SIGTERM) -> None:
    os.kill(pid, sig)
