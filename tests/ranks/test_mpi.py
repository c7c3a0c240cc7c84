"""Real ``mpirun -np 2`` jobs over mpi4py point-to-point; one of them never imports torch."""

from __future__ import annotations

import pytest

from ._launch import check_gathered, job_env, mpirun_cmd, require_mpirun, result, run_job, the_run

pytestmark = pytest.mark.timeout(180)


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


def test_mpirun_with_torch_and_mpi4py(tmp_path):
    require_mpirun()
    proc = run_job(mpirun_cmd(2, "--mpi", "--init", "none", "--artifact"), job_env(tmp_path))
    _ok(proc)
    rec = the_run(tmp_path)
    check_gathered(rec, 2, steps=40, extra=7)
    assert rec.status == "Succeeded"
    assert rec.world["launcher"] == "mpirun" and rec.world["transport"] == "mpi"
    assert rec.world["nodes"] == 1  # counted from the hosts the ranks reported (Open MPI says no local size here)
    for r in ("0", "1"):
        mpi = rec.platform["ranks"][r]["mpi"]
        assert mpi["library"].startswith("Open MPI") and mpi["standard"].count(".") == 1
    assert sorted(a.name for a in rec.artifacts) == ["rank0-log", "rank1-log"]
    assert rec.rank_hparams == {1: {"seed": 1001}}


def test_mpirun_mpi4py_only_script_never_imports_torch(tmp_path):
    require_mpirun()
    proc = run_job(mpirun_cmd(2, "--mpi", "--no-torch", "--init", "none"), job_env(tmp_path))
    _ok(proc)
    rec = the_run(tmp_path)
    check_gathered(rec, 2, steps=40, extra=7)
    for r in range(2):
        res = result(tmp_path, r)
        assert res["torch_imported"] is False and res["finish_s"] < 5


def test_mpirun_rank0_only_script_without_mpi4py_is_not_aborted(tmp_path):
    """em_dist must not start MPI itself: Open MPI aborts a job where only some processes call MPI_Init."""
    require_mpirun()
    proc = run_job(mpirun_cmd(2, "--no-torch", "--init", "none", "--rank0-only"), job_env(tmp_path))
    _ok(proc)
    rec = the_run(tmp_path)
    check_gathered(rec, 2, steps=40, extra=7, ranks=[0])
    assert rec.status == "Succeeded" and rec.world["absent_ranks"] == [1]
    assert result(tmp_path, 0)["mpi_imported"] is False and result(tmp_path, 0)["finish_s"] < 6


def test_mpirun_node_leaders_relay_over_mpi(tmp_path):
    """Blocks of two ranks: rank 3 reaches rank 0 through rank 2, on a tag of rank 2's own."""
    require_mpirun()
    proc = run_job(mpirun_cmd(4, "--mpi", "--no-torch", "--init", "none"), job_env(tmp_path, EM_DIST_NODE_SIZE="2"),
                   timeout=150)
    _ok(proc)
    rec = the_run(tmp_path)
    check_gathered(rec, 4, steps=40, extra=7)
    assert rec.status == "Succeeded" and rec.lost_ranks == [] and rec.late_ranks == []
    assert rec.world["transport"] == "mpi" and rec.world["relayed_by"] == {"3": 2}
