"""``torch.multiprocessing.spawn`` with ``create_run`` before ``init_process_group`` (issue 15):
the children get no RANK/WORLD_SIZE; they learn their rank only from init_process_group."""

import os
import sys

import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world: int) -> None:
    import em_dist as em

    run = em.create_run(name="spawned", dist_timeout=20)  # before the group exists: one process so far
    dist.init_process_group("gloo", rank=rank, world_size=world)
    for step in range(30):
        run.log(type="train", metrics={"rank": rank, "step_seen": step}, step=step)
    dist.barrier()
    run.finish()
    with open(os.path.join(os.environ["EM_TEST_OUT"], f"rank-{rank}.json"), "w") as f:
        f.write('{"id": "%s", "path": "%s"}' % (run.id, run.path))
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = sys.argv[1]
    mp.spawn(worker, args=(2,), nprocs=2)
