"""One message-exchange scenario over each engine, under that engine's real launcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._launch import job_env, mpirun_cmd, require_mpirun, result, run_job, torchrun_cmd

pytestmark = pytest.mark.timeout(180)
CONTRACT = Path(__file__).parent / "workers" / "contract.py"


def _check(tmp_path, proc, nproc: int, engine: str, count: int = 300) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    root = result(tmp_path, 0)
    assert root["engine"] == engine and root["lost"] == root["late"] == root["absent"] == []
    for r in range(1, nproc):
        n = count + r
        assert root["got"][str(r)] == list(range(n)), f"rank {r}: every message once, in order"
        assert root["bytes"][str(r)] == 5_000_000 + 10 * (n - 1)
        peer = result(tmp_path, r)
        assert peer["connected"] is True and peer["goodbye"] is True
        assert peer["rank0_run"] == {"id": "contract", "alternative_name": "c", "path": "/c"}


def test_contract_over_torch_gloo_under_torchrun(tmp_path):
    cmd = torchrun_cmd(3, script=CONTRACT)
    _check(tmp_path, run_job(cmd, job_env(tmp_path)), 3, "torch")


def test_contract_over_mpi4py_under_mpirun(tmp_path):
    require_mpirun()
    cmd = mpirun_cmd(3, "--mpi", script=CONTRACT)
    _check(tmp_path, run_job(cmd, job_env(tmp_path)), 3, "mpi")


def test_rank0_receives_every_link_on_a_fixed_number_of_threads(tmp_path):
    """Rank 0's threads do not grow with the number of peers: one receiving thread for all links."""
    proc = run_job(torchrun_cmd(5, "--count-threads", script=CONTRACT), job_env(tmp_path))
    _check(tmp_path, proc, 5, "torch")
    root = result(tmp_path, 0)
    assert len(root["em_threads"]) <= 3, root["em_threads"]
    assert root["os_threads_added"] <= 4, root["os_threads_added"]  # gloo: one event loop for all pairs
