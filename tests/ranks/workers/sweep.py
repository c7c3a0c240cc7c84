"""Issue 15's mix-up scenario: ranks create different numbers of runs, in different orders.

Every rank loops ``for k in range(3)`` and creates run ``sweep{k}``; rank 0 alone also
creates and finishes ``rank0_eval`` before ``sweep1``, and rank 1 alone a ``rank1_solo``
run at the end. Each run logs ``k`` (which sweep) and ``rank`` at a few steps, so a
test can see any record that landed in the wrong run. Results: the run ids and paths
each rank saw, in ``$EM_TEST_OUT/rank-<r>.json``.
"""

import argparse
import json
import os

p = argparse.ArgumentParser()
p.add_argument("--engine", choices=["torch", "mpi", "horovod"], default="torch")
args = p.parse_args()

if args.engine == "mpi":
    from mpi4py import MPI

    rank = MPI.COMM_WORLD.Get_rank()
elif args.engine == "horovod":
    import horovod.torch as hvd

    hvd.init()
    rank = hvd.rank()
else:
    rank = int(os.environ["RANK"])  # torchrun: em_dist uses the agent's store, no default group

import em_dist as em

seen = {}


def one(name, k):
    run = em.create_run(name=name, dist_timeout=20)
    for step in range(5):
        run.log(type="train", metrics={"k": k, "rank": rank}, step=step)
    run.finish()
    seen[name] = {"id": run.id, "alternative_name": run.alternative_name, "path": str(run.path)}


for k in range(3):
    if k == 1 and rank == 0:
        one("rank0_eval", 100)
    one(f"sweep{k}", k)
if rank == 1:
    one("rank1_solo", 200)

with open(os.path.join(os.environ["EM_TEST_OUT"], f"rank-{rank}.json"), "w") as f:
    json.dump(seen, f)
