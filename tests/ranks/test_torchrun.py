"""Real torchrun jobs (gloo, CPU): every rank's records arrive exactly once in rank 0's one run."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ._launch import WORKER, check_gathered, free_port, job_env, kill_all, result, run_job, the_run, torchrun_cmd

pytestmark = pytest.mark.timeout(180)


def _ok(proc) -> None:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]


@pytest.mark.parametrize("nproc,init", [(2, "after"), (4, "before")])
def test_gathers_every_rank_while_training_uses_the_default_group(tmp_path, nproc, init):
    env = job_env(tmp_path)
    proc = run_job(torchrun_cmd(nproc, "--init", init, "--allreduce", "3", "--artifact"), env)
    _ok(proc)
    rec = the_run(tmp_path)
    check_gathered(rec, nproc, steps=40, extra=7)
    assert rec.status == "Succeeded" and rec.lost_ranks == []
    assert rec.world["size"] == nproc and rec.world["launcher"] == "torchrun"
    assert rec.world["backend"] == "gloo" and rec.world["transport"] == "gloo" and rec.world["nodes"] == 1
    # platform: one entry per rank
    assert sorted(rec.platform["ranks"], key=int) == [str(r) for r in range(nproc)]
    assert rec.platform["world"]["size"] == nproc
    assert all(rec.platform["ranks"][str(r)]["local_rank"] == r for r in range(nproc))
    # hparams belong to rank 0; a different value elsewhere is kept per rank
    assert rec.hparams == {"lr": 0.01, "batch_size": 32, "seed": 1000}
    assert rec.rank_hparams == {r: {"seed": 1000 + r} for r in range(1, nproc)}
    # artifacts of every rank are in rank 0's run
    names = sorted(a.name for a in rec.artifacts if a.role == "output")
    assert names == sorted(f"rank{r}-log" for r in range(nproc))
    import em_dist

    for a in rec.artifacts:
        art = em_dist.load_artifact(a.path)
        assert [f["path"] for f in art.files] == [f"log-rank-{a.name[4]}.txt"]
        assert art.files[0]["size"] == len(f"rank {a.name[4]}\n") * 20000
    # cross-rank view
    cross = rec.cross_rank(type="train", name="v")
    first = [c for c in cross if c["step"] == 0][0]
    assert first["count"] == nproc and first["min"] == 0 and first["max"] == (nproc - 1) * 1_000_000
    for r in range(nproc):
        assert result(tmp_path, r)["finish_s"] < 5


def test_rank0_only_style_neither_hangs_nor_errors(tmp_path):
    env = job_env(tmp_path)
    proc = run_job(torchrun_cmd(2, "--rank0-only", "--allreduce", "1"), env)
    _ok(proc)
    rec = the_run(tmp_path)
    check_gathered(rec, 1, steps=40, extra=7, ranks=[0])
    assert rec.status == "Succeeded"
    assert rec.world["absent_ranks"] == [1]
    assert result(tmp_path, 0)["finish_s"] < 6  # the join grace, never the 20 s dist timeout


def test_ddp_example_runs_with_no_rank_guards(tmp_path):
    example = Path(__file__).resolve().parents[2] / "examples" / "ddp" / "train_mnist_ddp.py"
    env = job_env(tmp_path)
    cmd = torchrun_cmd(2, "--epochs", "1", "--train-size", "320", "--test-size", "64", "--log-every", "2",
                       script=example)
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    _ok(proc)
    rec = the_run(tmp_path)
    assert rec.status == "Succeeded" and rec.ranks() == [0, 1]
    for r in (0, 1):
        assert len(rec.metrics(type="train", name="loss", rank=r)) == 2  # 4 steps per rank, every 2nd
        assert len(rec.metrics(type="val", name="accuracy", rank=r)) == 1
        assert len(rec.metrics(type="test", name="accuracy", rank=r)) == 1
    assert [a.name for a in rec.artifacts] == ["mnist_ddp_saved_model"] * 2
    assert rec.hparams["world_size"] == 2 and rec.rank_hparams == {}


def test_two_agents_as_two_nodes_gather_every_rank_exactly_once(tmp_path):
    """Two torchrun agents on this host, rendezvous over c10d, each a node of two ranks."""
    import sys

    env = job_env(tmp_path)
    port = free_port()
    agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=2",
                                "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", f"--node_rank={node}",
                                "--rdzv_id=two-nodes", "--monitor-interval=0.1", str(WORKER), "--allreduce", "1"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
              for node in (0, 1)]
    try:
        outs = [a.communicate(timeout=150)[0] for a in agents]
    finally:
        kill_all(agents)
    assert all(a.returncode == 0 for a in agents), "\n".join(o[-3000:] for o in outs)
    rec = the_run(tmp_path)
    check_gathered(rec, 4, steps=40, extra=7)
    assert rec.status == "Succeeded" and rec.lost_ranks == [] and rec.world["size"] == 4
    assert sorted(rec.platform["ranks"], key=int) == ["0", "1", "2", "3"]
    # node 1's leader (its local rank 0, global rank 2) relayed rank 3; rank 1 shares rank 0's node
    assert rec.world["relayed_by"] == {"3": 2}


def test_node_leaders_relay_their_blocks_of_ranks_exactly_once(tmp_path):
    """Six ranks in blocks of two: rank 0 holds links to rank 1 and the leaders 2 and 4 only."""
    proc = run_job(torchrun_cmd(6, "--allreduce", "1", "--artifact"), job_env(tmp_path, EM_DIST_NODE_SIZE="2"),
                   timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rec = the_run(tmp_path)
    check_gathered(rec, 6, steps=40, extra=7)
    assert rec.status == "Succeeded" and rec.lost_ranks == [] and rec.late_ranks == []
    assert rec.world["relayed_by"] == {"3": 2, "5": 4}
    assert sorted(a.name for a in rec.artifacts) == sorted(f"rank{r}-log" for r in range(6))


def test_a_rank_whose_leader_finished_before_it_joined_goes_to_rank0_directly(tmp_path):
    """Blocks of two; rank 3 makes its run 6 s late, after its leader (rank 2) has finished, while
    rank 0 is still serving: rank 3's records still land in the one run, sent directly."""
    proc = run_job(torchrun_cmd(4, "--late-rank", "3", "--late-s", "6", "--slow-rank", "0", "--slow-s", "12"),
                   job_env(tmp_path, EM_DIST_NODE_SIZE="2"), timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    rec = the_run(tmp_path)
    check_gathered(rec, 4, steps=40, extra=7)
    assert rec.status == "Succeeded" and rec.lost_ranks == [] and rec.world.get("absent_ranks") is None
    assert rec.world.get("relayed_by") is None  # rank 3 came directly
    assert "goes to rank 0 directly" in proc.stderr
