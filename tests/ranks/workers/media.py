"""Each rank logs an Image, a Histogram and a Text at steps 0..2 with rank-dependent content
(tests/test_media.py). The image of rank r at step s is 4x5 pixels of the value 10 * r + s; the
histogram holds 100 values of r * 1000 + s (one full bin)."""

import os

import numpy as np
import torch
import torch.distributed as dist

import em_dist as em

dist.init_process_group("gloo")
rank = dist.get_rank()
run = em.create_run(name="media", dist_timeout=20)
for step in range(3):
    img = np.full((4, 5, 3), 10 * rank + step, dtype=np.uint8)
    values = torch.full((100,), float(rank * 1000 + step)) if rank else np.full(100, float(rank * 1000 + step))
    run.log(type="val", step=step, metrics={
        "loss": 0.5 * step,
        "sample": em.Image(img, caption=f"r{rank}s{step}"),
        "dist": em.Histogram(values, bins=4),
        "note": em.Text(f"rank {rank} step {step}"),
    })
run.finish()
with open(os.path.join(os.environ["EM_TEST_OUT"], f"rank-{rank}.path"), "w") as f:
    f.write(str(run.path))
dist.destroy_process_group()
