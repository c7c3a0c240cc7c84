"""A training script for the SLURM recipe's one-task-per-process mode (``MODE=tasks``).

The recipe sets RANK/WORLD_SIZE/LOCAL_RANK from SLURM's variables and MASTER_ADDR/PORT;
the script starts torch.distributed itself. On the job's first attempt with
``--hold-first`` it logs steps 0..9, says so in ``$EM_TEST_OUT`` and waits to be
requeued; after a requeue (``SLURM_RESTART_COUNT=1``) it logs steps 10..19 and finishes.
"""

import os
import sys
import time

import torch.distributed as dist

import em_dist as em

rank = int(os.environ["RANK"])
attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0"))
out = os.environ["EM_TEST_OUT"]
dist.init_process_group("gloo")
run = em.create_run(name="slurm-job", dist_timeout=20)
start = 10 * attempt
for step in range(start, start + 10):
    run.log(type="train", metrics={"loss": 1.0 / (step + 1), "rank": rank}, step=step)
dist.barrier()
if "--hold-first" in sys.argv and attempt == 0:
    run.flush()
    open(os.path.join(out, f"waiting-{rank}"), "w").close()
    while True:  # until SLURM requeues the job (SIGTERM, then SIGKILL after KillWait)
        time.sleep(0.1)
run.finish()
open(os.path.join(out, f"done-{rank}-{attempt}"), "w").close()
dist.destroy_process_group()
