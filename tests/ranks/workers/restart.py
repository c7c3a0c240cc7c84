"""An elastic job that fails once: under ``torchrun --max-restarts=1`` rank 1 raises on the
first attempt after logging; the second attempt runs to the end. Ranks take their place
from torchrun's environment (no default group: em_dist uses the agent's store)."""

import os
import sys

import em_dist as em

rank = int(os.environ["RANK"])
# Which attempt: torchrun's restart count, or the first argument for a job started afresh by
# something else (a recreated Kubernetes pod, where torchrun's count is 0 again).
attempt = int(sys.argv[1]) if len(sys.argv) > 1 else int(os.environ["TORCHELASTIC_RESTART_COUNT"])
run = em.create_run(name="elastic", dist_timeout=20)
start = 0 if attempt == 0 else 10  # the script resumes from its "checkpoint" at step 10
for step in range(start, start + 10):
    run.log(type="train", metrics={"loss": 1.0 / (step + 1), "attempt_seen": attempt}, step=step)
run.flush()
if attempt == 0 and rank == 1:
    raise RuntimeError("first attempt fails")
if attempt == 0:  # rank 0 waits for torchrun to stop it (SIGTERM), as after a peer's failure
    import time

    time.sleep(60)
run.finish()
with open(os.path.join(os.environ["EM_TEST_OUT"], f"rank-{rank}.json"), "w") as f:
    f.write('{"id": "%s", "restarts": %d}' % (run.id, run.restarts))
