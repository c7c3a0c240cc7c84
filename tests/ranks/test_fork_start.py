"""Issue 8, item 8: ranks started by ``torch.multiprocessing.start_processes(start_method="fork")``.

That is how Lightning's ``ddp_fork`` starts its ranks: each child returns from its
function and multiprocessing ends it with ``os._exit``, so no ``atexit`` runs there. The
children's runs must still end with the rank layer's goodbye: one Succeeded run holding
both ranks' records, no lost rank.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ._launch import free_port, job_env, the_run

pytestmark = pytest.mark.timeout(180)

SCRIPT = textwrap.dedent("""
    import os, sys
    import torch.distributed as dist
    import torch.multiprocessing as mp

    def worker(rank, port):
        os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                          MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        import em_dist as em
        dist.init_process_group("gloo", rank=rank, world_size=2)
        run = em.create_run(name="forked", dist_timeout=20)
        for step in range(10):
            run.log(type="train", metrics={"v": rank * 100 + step}, step=step)
        # no finish(): the function returns and multiprocessing ends the child with os._exit

    if __name__ == "__main__":
        mp.start_processes(worker, args=(int(sys.argv[1]),), nprocs=2, start_method="fork")
    """)


def _launch(tmp_path, source: str) -> subprocess.CompletedProcess:
    script = tmp_path / "fork_job.py"
    script.write_text(source)
    proc = subprocess.run([sys.executable, str(script), str(free_port())], env=job_env(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_fork_started_ranks_finish_their_run_with_every_record(tmp_path) -> None:
    _launch(tmp_path, SCRIPT)
    rec = the_run(tmp_path)
    assert (rec.status, rec.status_reason, rec.lost_ranks) == ("Succeeded", None, [])
    assert rec.end_timestamp is not None
    for rank in (0, 1):
        assert [p["value"] for p in rec.metrics(name="v", rank=rank)] == [rank * 100 + s for s in range(10)]


BEFORE_FORK = textwrap.dedent("""
    import os, sys
    import em_dist as em
    import torch.distributed as dist
    import torch.multiprocessing as mp

    run = em.create_run(name="made_before_fork", dist_timeout=20)  # the parent's, before any rank exists
    run.hparams["lr"] = 0.5

    def worker(rank, port):
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
        for step in range(10):
            run.log(type="train", metrics={"v": rank * 100 + step}, step=step)
        dist.barrier()

    if __name__ == "__main__":
        mp.start_processes(worker, args=(int(sys.argv[1]),), nprocs=2, start_method="fork")
        run.finish()
        print("STATUS", run.status, run.path)
    """)


def test_a_run_made_before_the_fork_becomes_the_forked_ranks_run(tmp_path) -> None:
    proc = _launch(tmp_path, BEFORE_FORK)
    folders = [p for p in (tmp_path / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(folders) == 1, f"one run, no stray folders: {[p.name for p in folders]}"
    rec = the_run(tmp_path)
    assert (rec.status, rec.status_reason, rec.lost_ranks, rec.world["size"]) == ("Succeeded", None, [], 2)
    assert rec.hparams["lr"] == 0.5
    for rank in (0, 1):
        assert [p["value"] for p in rec.metrics(name="v", rank=rank)] == [rank * 100 + s for s in range(10)]
    assert f"STATUS Succeeded {rec.path}" in proc.stdout
