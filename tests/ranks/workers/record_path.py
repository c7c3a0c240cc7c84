"""Record-path cases (tests/ranks/test_record_path.py).

``die``: every rank logs 100 points; rank 1 raises ``--delay`` seconds after create_run (on the
first attempt only); rank 0 waits for the launcher to stop it (or, on a later attempt, finishes).
``steady``: every rank logs 10 records every 50 ms for ``--steps`` steps (the test freezes one
rank meanwhile), after writing its pid to ``pid-<rank>``.
``in-turn``: rank r waits until rank r-1 finished run "a", then creates, logs 500 points and
finishes it: rank 0 has ended "a" before any other rank reaches it.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("case", choices=["die", "in-turn", "steady"])
p.add_argument("--steps", type=int, default=160)
p.add_argument("--delay", type=float, default=0.05)
p.add_argument("--group", action="store_true", help="init a gloo default group first")
p.add_argument("--engine", choices=["mpi", "horovod"], default=None)
args = p.parse_args()

if args.group:
    import torch.distributed as dist

    dist.init_process_group("gloo")
if args.engine == "mpi":
    from mpi4py import MPI  # noqa: F401
elif args.engine == "horovod":
    import horovod.torch as hvd

    hvd.init()

import em_dist as em  # noqa: E402

out = Path(os.environ["EM_TEST_OUT"])
rank = int(next(os.environ[k] for k in ("RANK", "OMPI_COMM_WORLD_RANK", "HOROVOD_RANK") if k in os.environ))
attempt = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))

if args.case == "die":
    run = em.create_run(name="die", system_metrics_interval=0)
    for i in range(100):
        run.log(type="train", metrics={"loss": float(i), "rank": rank}, step=i)
    if rank == 1 and attempt == 0:
        time.sleep(args.delay)
        raise RuntimeError("boom on rank 1")
    if attempt == 0:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until torchrun stops this rank (rank 1 failed)
            time.sleep(0.05)
    run.finish()
elif args.case == "steady":
    (out / f"pid-{rank}").write_text(str(os.getpid()))
    run = em.create_run(name="steady", system_metrics_interval=0)
    for step in range(args.steps):
        for k in range(10):
            run.log(type="train", metrics={"loss": float(step), "k": k}, step=step * 10 + k)
        time.sleep(0.05)  # a training step's pace
    run.finish()
    (out / f"rank-{rank}.json").write_text(json.dumps({"path": str(run.path), "status": run.status}))
else:
    prev = out / f"done-{rank - 1}"
    deadline = time.monotonic() + 60
    while rank and not prev.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    run = em.create_run(name="a", system_metrics_interval=0)
    for i in range(500):
        run.log(type="train", metrics={"loss": float(i), "rank": rank}, step=i)
    run.finish()
    (out / f"rank-{rank}.json").write_text(json.dumps({"path": str(run.path), "status": run.status}))
    (out / f"done-{rank}").touch()
