"""Rank/world detection from launcher environments, and engine choice; no processes needed."""

from __future__ import annotations

import signal
import sys
import threading

import pytest

from em_dist.ranks.world import WorldInfo, detect_world
from em_dist.ranks.engines import engine_for

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
            "MASTER_ADDR": "node0", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "abc"}


@pytest.fixture(autouse=True)
def _no_horovod_imported(monkeypatch):
    """Launcher and engine guesses look at sys.modules; another test of the session may have imported Horovod."""
    for module in ("horovod.torch", "horovod.tensorflow", "horovod.keras"):
        monkeypatch.delitem(sys.modules, module, raising=False)


@pytest.mark.parametrize("env,expected", [
    ({}, WorldInfo()),
    (TORCHRUN, WorldInfo(3, 8, 1, 2, 1, "torchrun", "env")),
    ({"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "4", "OMPI_COMM_WORLD_NODE_RANK": "0"}, WorldInfo(1, 4, 1, 4, 0, "mpirun", "env")),
    ({"HOROVOD_RANK": "2", "HOROVOD_SIZE": "4", "HOROVOD_LOCAL_RANK": "0", "HOROVOD_LOCAL_SIZE": "2",
      "HOROVOD_CROSS_RANK": "1"}, WorldInfo(2, 4, 0, 2, 1, "horovodrun", "env")),
    ({"PMI_RANK": "5", "PMI_SIZE": "6"}, WorldInfo(5, 6, 5, 0, 0, "mpirun", "env")),  # nodes: unknown
    ({"SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4", "SLURM_LOCALID": "1", "SLURM_STEP_TASKS_PER_NODE": "2",
      "SLURM_NODEID": "1", "SLURM_STEP_ID": "0", "SLURM_NTASKS": "4"}, WorldInfo(3, 4, 1, 2, 1, "srun", "env")),
    # an sbatch script's one batch process: SLURM_NTASKS but no job step -> not distributed
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "7"}, WorldInfo()),
    ({"RANK": "9", "WORLD_SIZE": "2"}, WorldInfo()),  # nonsense is ignored, not trusted
])
def test_detect_world_from_launcher_env(env, expected):
    assert detect_world(env) == expected


def test_world_nodes():
    assert WorldInfo(0, 8, 0, 4).nodes == 2 and WorldInfo().nodes == 1 and not WorldInfo().distributed
    assert WorldInfo(0, 8, 0, 0).nodes is None  # the launcher did not say: rank 0 counts hosts


def test_single_process_engine_is_none():
    assert engine_for(WorldInfo()) is None


def _engine(world: WorldInfo) -> str:
    return engine_for(world).name


def test_plain_process_run_is_exactly_single_process(tmp_path, monkeypatch):
    for name in list(TORCHRUN) + ["OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMIX_RANK"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path))
    import em_dist as em
    from em_dist.store.writer import RunWriter

    threads_before = set(threading.enumerate())
    run = em.create_run(name="single", capture_output=True)  # capture is off under pytest unless asked
    try:
        assert isinstance(run._sink, RunWriter)
        assert run.world["size"] == 1
        from em_dist.ranks import signals

        assert signal.getsignal(signal.SIGTERM) is signals._handle  # a single process records SIGTERM too (issue 8)
        new = [t.name for t in set(threading.enumerate()) - threads_before]
        # the writer, and the thread that records captured output (system metrics are off in tests)
        assert sorted(new) == ["em_dist-output", "em_dist-writer"], "a plain process runs no thread of the rank layer"
        run.log(type="train", metrics={"loss": 1.0}, step=0)
    finally:
        run.finish()
    rec = em.load_run(run.path)
    assert rec.ranks() == [0] and rec.world["size"] == 1


def test_engine_choice_never_initialises_anything(monkeypatch):
    for name in ("TORCHELASTIC_USE_AGENT_STORE", "MASTER_PORT", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    mpi_world = WorldInfo(1, 2, 1, 2, 0, "mpirun", "env")
    # an MPI job whose script has not started MPI (yet): wait for the script, never import mpi4py
    assert _engine(mpi_world) == "deferred"
    assert _engine(WorldInfo(1, 2, 1, 2, 0, "horovodrun", "env")) == "horovod"
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("MASTER_PORT", "29500")
    assert _engine(WorldInfo(1, 2, 1, 2, 0, "torchrun", "env")) == "torch"


def test_peers_on_other_nodes_compress_unless_told_not_to():
    from em_dist.ranks.engines import compress_frames
    from em_dist.ranks.world import WorldInfo

    assert not compress_frames(WorldInfo(rank=1, world_size=4, node_rank=0), {})
    assert compress_frames(WorldInfo(rank=2, world_size=4, node_rank=1), {})
    assert not compress_frames(WorldInfo(rank=2, world_size=4, node_rank=1), {"EM_DIST_COMPRESS": "0"})


def test_node_leaders_come_from_the_local_rank_or_blocks_of_node_size():
    from em_dist.ranks.engines import compress_frames
    from em_dist.ranks.relay import leader_of, members_of

    def w(rank, local, local_size=4, size=16):
        return WorldInfo(rank=rank, world_size=size, local_rank=local, local_world_size=local_size,
                         node_rank=rank // 4)

    assert [leader_of(w(r, r % 4), {}) for r in (0, 1, 3, 4, 7, 13)] == [0, 0, 0, 4, 4, 12]
    assert members_of(w(4, 0), 4, {}) == range(5, 8)
    assert leader_of(w(7, 7, 0), {}) == 0  # a launcher that names no local rank: direct to rank 0
    assert leader_of(w(5, 1), {"EM_DIST_RELAY": "0"}) == 0
    assert [leader_of(w(r, r), {"EM_DIST_NODE_SIZE": "2"}) for r in (1, 2, 3, 5)] == [0, 2, 2, 4]
    assert members_of(w(14, 14), 14, {"EM_DIST_NODE_SIZE": "8"}) == range(15, 16)  # the last block is short
    # a leader on another node compresses what it sends rank 0; blocks count as nodes
    assert compress_frames(WorldInfo(rank=2, world_size=4), {"EM_DIST_NODE_SIZE": "2"})
    assert not compress_frames(WorldInfo(rank=1, world_size=4), {"EM_DIST_NODE_SIZE": "2"})


_SPAWNED_AFTER_MPI = """
import multiprocessing as mp, os, sys
from mpi4py import MPI  # a singleton MPI init: Open MPI sets PMIX_* in the C environment the children inherit

def child(q):
    from em_dist.ranks.world import launcher_name
    q.put(("PMIX_RANK" in os.environ, launcher_name()))

if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    print(q.get(timeout=60))
    p.join()
"""


def test_a_process_spawned_after_mpi4py_is_no_mpirun_rank(tmp_path):
    """Lightning ddp_spawn after mpi4py was imported: the ranks inherit a singleton's PMIX variables, no launcher's."""
    pytest.importorskip("mpi4py")
    import subprocess

    from tests.ranks._launch import job_env

    script = tmp_path / "spawn_after_mpi.py"
    script.write_text(_SPAWNED_AFTER_MPI)
    proc = subprocess.run([sys.executable, str(script)], env=job_env(tmp_path), capture_output=True, text=True,
                          timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "(True, 'none')"
