"""A small torchrun job for the console tests: every rank logs its own loss curve; rank 0 saves a model artifact.

Rank r logs train ``loss`` = (1 + 0.4 r) / sqrt(step + 1) and ``acc``, and val ``acc`` every 10 steps.
"""

import argparse
import os

import torch
import torch.distributed as dist

import em_dist as em

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=60)
p.add_argument("--name", default="ddp-mnist")
args = p.parse_args()

dist.init_process_group("gloo")
rank = dist.get_rank()
run = em.create_run(name=args.name, labels=["ddp", "console-test"], description="per-rank curves for the console test")
run.hparams.update({"lr": 0.05, "batch_size": 64, "optimizer": "SGD", "epochs": 3})
for step in range(args.steps):
    t = torch.ones(1)
    dist.all_reduce(t)
    loss = (1 + rank * 0.4) / (step + 1) ** 0.5
    run.log(type="train", metrics={"loss": torch.tensor([loss]), "acc": step / args.steps}, step=step, epoch=step // 20)
    if step % 10 == 9:
        run.log(type="val", metrics={"acc": 0.5 + step / (4 * args.steps)}, step=step, epoch=step // 20)
if rank == 0:
    path = os.path.join(os.environ["EM_TEST_OUT"], "model_state_dict.pt")
    torch.save({"w": torch.arange(10.0)}, path)
    art = em.create_artifact(name="ddp-model")
    art.add_file(path)
    run.mark_output(art)
run.finish()
dist.destroy_process_group()
