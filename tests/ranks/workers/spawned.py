"""``torch.multiprocessing.spawn`` with the run made before the ranks have a group (issue 15).

``spawned.py PORT``: each child calls ``create_run`` before ``init_process_group``; the children get
no RANK/WORLD_SIZE and learn their rank only from init_process_group.
``spawned.py PORT handle``: the parent makes the run and passes it to the children (a RunHandle
crosses); rank 0 marks an output artifact at once after init_process_group, before em_dist's
watcher saw the group (Lightning ddp_spawn's ``on_fit_end`` on a loaded machine).
"""

import os
import sys

import torch.distributed as dist
import torch.multiprocessing as mp


def worker(rank: int, world: int, run=None) -> None:
    import em_dist as em

    if run is None:
        run = em.create_run(name="spawned", dist_timeout=20)  # before the group exists: one process so far
    dist.init_process_group("gloo", rank=rank, world_size=world)
    if rank == 0 and os.environ.get("EM_TEST_ARTIFACT"):
        artifact = em.create_artifact(name="early")
        artifact.add_file(os.environ["EM_TEST_ARTIFACT"])
        run.mark_output(artifact)
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
    if sys.argv[2:] == ["handle"]:
        import em_dist as em

        parent = em.create_run(name="spawned", dist_timeout=20)
        mp.spawn(worker, args=(2, parent), nprocs=2)
        parent.finish()
    else:
        mp.spawn(worker, args=(2,), nprocs=2)
