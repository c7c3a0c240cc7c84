"""A training-shaped worker for the distributed tests; every rank runs it unchanged.

Rank r logs metric ``v`` = r * 1_000_000 + step for steps 0 .. n_r - 1, with
n_r = --steps + r * --extra, so the tests can check each rank's values, counts and
steps. Results (finish time, run path) go to ``$EM_TEST_OUT/rank-<r>.json``.
"""

import argparse
import json
import os
import signal
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=40)
p.add_argument("--extra", type=int, default=7)
p.add_argument("--init", choices=["before", "after", "none"], default="before",
               help="init_process_group before or after create_run, or not at all")
p.add_argument("--allreduce", type=int, default=0, help="all_reduce calls per step on the default group")
p.add_argument("--rank0-only", action="store_true")
p.add_argument("--artifact", action="store_true")
p.add_argument("--wait-file", default=None, help="after logging, keep logging slowly until this file exists")
p.add_argument("--user-handler", action="store_true", help="install a SIGTERM handler before create_run")
p.add_argument("--no-torch", action="store_true", help="never import torch (mpi4py-only job)")
p.add_argument("--mpi", action="store_true", help="use mpi4py like an MPI training script")
p.add_argument("--timeout", type=float, default=20.0)
p.add_argument("--raise-rank", type=int, default=-1, help="this rank raises instead of finishing")
p.add_argument("--slow-rank", type=int, default=-1, help="this rank waits --slow-s seconds before finish()")
p.add_argument("--slow-s", type=float, default=0.0)
p.add_argument("--late-rank", type=int, default=-1, help="this rank waits --late-s seconds before create_run()")
p.add_argument("--late-s", type=float, default=0.0)
p.add_argument("--linger-s", type=float, default=0.0, help="every rank runs this much longer before finish()")
args = p.parse_args()

out = os.environ["EM_TEST_OUT"]
rank = int(os.environ.get("RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))


def report(**kw):
    with open(os.path.join(out, f"rank-{rank}.json.tmp"), "w") as f:
        json.dump(kw, f)
    os.replace(os.path.join(out, f"rank-{rank}.json.tmp"), os.path.join(out, f"rank-{rank}.json"))


if args.user_handler:
    def user_handler(signum, frame):
        open(os.path.join(out, f"user-handler-{rank}"), "w").close()
        sys.exit(3)

    signal.signal(signal.SIGTERM, user_handler)

comm = None
if args.mpi:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

dist = None
if not args.no_torch:
    import torch
    import torch.distributed as dist

import em_dist as em

if dist is not None and args.init == "before":
    dist.init_process_group("gloo")

run = None
if rank == args.late_rank:
    time.sleep(args.late_s)  # starts late on purpose (uneven ranks), not a synchronisation
if not args.rank0_only or rank == 0:
    run = em.create_run(name="disttest", dist_timeout=args.timeout)
    run.hparams.update({"lr": 0.01, "batch_size": 32, "seed": 1000 + rank})

if dist is not None and args.init == "after":
    dist.init_process_group("gloo")

world = int(os.environ.get("WORLD_SIZE", os.environ.get("OMPI_COMM_WORLD_SIZE", "1")))
n = args.steps + rank * args.extra
common = args.steps
for step in range(n):
    if step < common:
        for _ in range(args.allreduce):
            t = torch.ones(4)
            dist.all_reduce(t)
            if int(t[0]) != world:
                raise SystemExit(f"all_reduce gave {t}")
        if comm is not None:
            total = comm.allreduce(1)
            if total != world:
                raise SystemExit(f"MPI allreduce gave {total}")
    value = rank * 1_000_000 + step
    if run is not None:
        metric = value if args.no_torch or step % 2 else torch.tensor([float(value)])
        run.log(type="train", metrics={"v": metric, "loss": 1.0 / (step + 1)}, step=step, epoch=step // 10)
if run is not None:
    run.log(type="val", metrics={"acc": 0.5 + rank / 100}, step=n)

if args.artifact and run is not None:
    path = os.path.join(out, f"log-rank-{rank}.txt")
    with open(path, "w") as f:
        f.write(f"rank {rank}\n" * 20000)
    art = em.create_artifact(name=f"rank{rank}-log")
    art.add_file(path)
    run.mark_output(art)

if args.wait_file:
    report(pid=os.getpid(), waiting=True)
    step = n + 1
    while not os.path.exists(args.wait_file):
        if run is not None:
            run.log(type="heartbeat", metrics={"alive": 1}, step=step)
        step += 1
        time.sleep(0.05)

if rank == args.raise_rank:
    raise RuntimeError("boom")
if rank == args.slow_rank:
    time.sleep(args.slow_s)  # alive, just slow: not a synchronisation
if args.linger_s:
    time.sleep(args.linger_s)  # a longer job (system metrics get sampled): not a synchronisation
t0 = time.monotonic()
if run is not None:
    run.finish()
took = time.monotonic() - t0
upload = run.upload(folder="x") if run is not None and rank != 0 else None  # a no-op off rank 0
assert upload is None
report(pid=os.getpid(), finish_s=took, path=str(run.path) if run is not None else None, em_dist=em.__file__,
       torch_imported="torch" in sys.modules, mpi_imported="mpi4py.MPI" in sys.modules)
if comm is not None:
    comm.Barrier()
if dist is not None and dist.is_initialized():
    dist.destroy_process_group()  # gloo aborts at exit when a group outlives its peers
