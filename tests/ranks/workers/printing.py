"""Every rank prints (stdout, stderr, a subprocess) around a short training loop; for the output-capture tests.

``--init none`` starts no engine (the ranks then meet through the filesystem).
"""

import argparse
import os
import subprocess
import sys

import em_dist as em

p = argparse.ArgumentParser()
p.add_argument("--init", choices=["gloo", "none"], default="gloo")
p.add_argument("--fail-rank", type=int, default=-1, help="this rank raises after printing")
args = p.parse_args()
rank = int(os.environ["RANK"])

dist = None
if args.init == "gloo":
    import torch.distributed as dist

    dist.init_process_group("gloo")
run = em.create_run(name="printing", dist_timeout=30)
for step in range(20):
    run.log("train", {"loss": 1.0 / (step + 1)}, step=step)
    if step % 5 == 0:
        print(f"rank {rank} step {step}")
print(f"rank {rank} warns", file=sys.stderr)
sys.stdout.flush()
subprocess.run(["sh", "-c", f"echo rank {rank} child"])
if rank == args.fail_rank:
    raise RuntimeError(f"rank {rank} gives up")
run.finish()
if dist is not None:
    dist.destroy_process_group()
