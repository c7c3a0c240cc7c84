"""A worker that trains in fixed-length steps without a process group; one rank may be slower per step.

Every rank waits at a file barrier first (so the ranks start their steps together), then logs
``train/loss`` each step and sleeps ``--step-s`` (plus ``--slow-s`` on ``--slow-rank``).
"""

import argparse
import os
import time

import em_dist as em

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=30)
p.add_argument("--step-s", type=float, default=0.05)
p.add_argument("--slow-rank", type=int, default=-1)
p.add_argument("--slow-s", type=float, default=0.05)
args = p.parse_args()

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
out = os.environ["EM_TEST_OUT"]
run = em.create_run(name="steps")
open(os.path.join(out, f"ready-{rank}"), "w").close()
deadline = time.monotonic() + 60
while not all(os.path.exists(os.path.join(out, f"ready-{r}")) for r in range(world)) and time.monotonic() < deadline:
    time.sleep(0.005)
for step in range(args.steps):
    run.log("train", {"loss": 1.0 / (step + 1)}, step)
    time.sleep(args.step_s + (args.slow_s if rank == args.slow_rank else 0.0))
run.finish()
