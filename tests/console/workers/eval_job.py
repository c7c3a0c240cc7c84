"""Evaluate the model of the console test's torchrun job: a run that consumes its artifact (dataflow)."""

import sys

import em_dist as em

source = em.load_run(sys.argv[1])
(model,) = [a for a in source.artifacts if a.role == "output"]
run = em.create_run(name="eval-model", labels=["eval"])
run.hparams.update({"lr": 0.05, "batch_size": 256, "optimizer": "SGD"})
run.mark_input(model.path)
for step in range(5):
    run.log(type="test", metrics={"acc": 0.9 + step / 100}, step=step)
run.finish()
