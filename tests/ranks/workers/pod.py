"""A Kubernetes pod restart, as the recipe in launch/k8s-pytorchjob.yaml runs it: ``EM_JOB_ID``
names the job, and the restarted pod runs torchrun afresh (its restart count is 0 again).
Phase 0 fails on rank 1 after logging steps 0-9; phase 1 resumes at step 10."""

import os
import sys

import em_dist as em

rank = int(os.environ["RANK"])
phase = int(sys.argv[1])
run = em.create_run(name="pod", dist_timeout=20)
for step in range(10 * phase, 10 * phase + 10):
    run.log(type="train", metrics={"loss": 1.0 / (step + 1), "phase": phase}, step=step)
run.flush()
if phase == 0 and rank == 1:
    raise RuntimeError("the pod dies")
if phase == 0:  # rank 0 waits for torchrun to stop it (SIGTERM), as after a peer's failure
    import time

    time.sleep(60)
run.finish()
