"""Issue 8, item 1: a rank whose main thread updates ``run.hparams`` in a tight loop until signalled.

Every update takes the metadata path's locks; a SIGTERM landing while the main thread holds
one of them used to deadlock a handler that finished the run on the interrupted thread.
Writes ``$EM_TEST_OUT/ready-<rank>`` once the loop has run for a moment.
"""

import os
import time

import torch.distributed as dist

import em_dist as em

dist.init_process_group("gloo")
rank = dist.get_rank()
run = em.create_run(name="hparams_loop", dist_timeout=10)
t0 = time.monotonic()
i, said = 0, False
while True:
    run.hparams["i"] = i
    run.hparams.update({"j": i, "k": [i, i]})
    run.log(type="train", metrics={"loss": 1.0 / (i + 1)}, step=i)
    i += 1
    if not said and time.monotonic() - t0 > 0.3:
        open(os.path.join(os.environ["EM_TEST_OUT"], f"ready-{rank}"), "w").close()
        said = True
