"""Per-step overhead of each framework integration: the same training with and without em_dist's hook.

For each framework, in a fresh process of its own (single process, CPU, one thread):

- **keras** (torch backend): ``model.fit`` of a small MLP, 256 batches; with ``EMFitCallback(run)``
  (logging every batch) against no callback.
- **lightning**: ``Trainer.fit`` of the same MLP, 256 batches, ``logger=False``; with
  ``EMCallback(run)`` (``log_every_n_steps=1``) against no callback.
- **transformers**: ``Trainer.train`` of a 1-layer BERT built from a config, 64 steps,
  ``logging_steps=1`` in both; with ``EMCallback(run)`` against no callback.
- **accelerate**: a hand-written loop of 256 steps; with ``tracker.log({"loss": loss.detach()})``
  every step against none.

The two configurations alternate over ``--reps`` repetitions after one warm-up of each;
the median time per step of each is reported, with the difference in µs and percent, and the
spread (max - min over repetitions) of the baseline as the noise to compare against. On a
shared machine that noise can exceed the hook's cost, so the time spent inside the hook's
own methods is measured too (``in hook``: wall time per step inside the integration's
per-step methods, timed around each call; for Keras on a helper thread, off the training
thread).
Run by hand (about 2 minutes on 2 cores)::

    KERAS_BACKEND=torch python benchmarks/bench_integrations.py
    python benchmarks/bench_integrations.py --only keras --reps 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("keras", "lightning", "transformers", "accelerate")


_IN_HOOK = [0]  # ns spent inside the timed hook methods in this process


def timed(obj: Any, *names: str) -> Any:
    """Wrap ``obj``'s methods ``names`` so the time spent in them adds to ``_IN_HOOK``."""
    for name in names:
        method = getattr(obj, name)

        def wrapper(*args: Any, _method: Callable = method, **kwargs: Any) -> Any:
            t0 = time.perf_counter_ns()
            try:
                return _method(*args, **kwargs)
            finally:
                _IN_HOOK[0] += time.perf_counter_ns() - t0

        setattr(obj, name, wrapper)
    return obj


def _keras(with_hook: bool, run) -> tuple[float, int]:
    import keras
    import numpy as np

    from em_dist.keras import EMFitCallback

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x, y = rng.random((256 * 16, 32), dtype=np.float32), rng.integers(0, 10, 256 * 16)
    callbacks = [timed(EMFitCallback(run, log_hparams=False), "on_train_batch_end", "on_epoch_end")] if with_hook else []
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=16, epochs=1, callbacks=callbacks, verbose=0)
    return time.perf_counter() - t0, 256


def _lightning(with_hook: bool, run) -> tuple[float, int]:
    import lightning.pytorch as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from em_dist.lightning import EMCallback

    class MLP(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    torch.manual_seed(0)
    data = DataLoader(TensorDataset(torch.randn(256 * 16, 32), torch.randint(0, 10, (256 * 16,))), batch_size=16)
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                         callbacks=[timed(EMCallback(run, log_every_n_steps=1), "on_train_batch_end", "on_train_epoch_end")] if with_hook else [])
    t0 = time.perf_counter()
    trainer.fit(MLP(), data)
    return time.perf_counter() - t0, 256


def _transformers(with_hook: bool, run) -> tuple[float, int]:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments
    from transformers.utils import logging as hf_logging

    from em_dist.integrations.transformers import EMCallback

    hf_logging.set_verbosity_error()

    class Synthetic(torch.utils.data.Dataset):
        def __init__(self, n: int) -> None:
            g = torch.Generator().manual_seed(0)
            self.ids, self.labels = torch.randint(0, 50, (n, 16), generator=g), torch.randint(0, 2, (n,), generator=g)

        def __len__(self) -> int:
            return len(self.labels)

        def __getitem__(self, i: int) -> dict:
            return {"input_ids": self.ids[i], "labels": self.labels[i]}

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=16, num_labels=2)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, max_steps=64, per_device_train_batch_size=8, logging_steps=1,
                                 report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=BertForSequenceClassification(config), args=args, train_dataset=Synthetic(512),
                          callbacks=[timed(EMCallback(run), "on_log")] if with_hook else [])
        t0 = time.perf_counter()
        with open(os.devnull, "w") as devnull:  # the Trainer prints its logs when no tqdm bar is shown
            stdout, sys.stdout = sys.stdout, devnull
            try:
                trainer.train()
            finally:
                sys.stdout = stdout
        return time.perf_counter() - t0, 64


def _accelerate(with_hook: bool, run) -> tuple[float, int]:
    import torch
    from accelerate import Accelerator

    from em_dist.integrations.accelerate import EMTracker

    tracker = timed(EMTracker(run), "log")
    accelerator = Accelerator(cpu=True, log_with=tracker)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    x, y = torch.randn(256, 16, 32), torch.randint(0, 10, (256, 16))
    t0 = time.perf_counter()
    for step in range(256):
        loss = torch.nn.functional.cross_entropy(model(x[step]), y[step])
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        if with_hook:
            tracker.log({"loss": loss.detach()}, step=step)
    return time.perf_counter() - t0, 256


WORKLOADS: dict[str, Callable] = {"keras": _keras, "lightning": _lightning, "transformers": _transformers, "accelerate": _accelerate}


def measure(framework: str, reps: int) -> dict:
    """In this process: warm up both configurations, then alternate them ``reps`` times."""
    import em_dist as em

    work = WORKLOADS[framework]
    times: dict[str, list[float]] = {"without": [], "with": [], "in_hook": []}
    with em.create_run(name=f"bench-{framework}") as run:
        for rep in range(reps + 1):
            for config in (("without", "with") if rep % 2 else ("with", "without")):
                _IN_HOOK[0] = 0
                seconds, steps = work(config == "with", run)
                if rep:  # the first round is the warm-up
                    times[config].append(seconds / steps)
                    if config == "with":
                        times["in_hook"].append(_IN_HOOK[0] / 1e9 / steps)
    return {"framework": framework, **times}


def report(result: dict) -> str:
    base, hook = statistics.median(result["without"]), statistics.median(result["with"])
    noise = max(result["without"]) - min(result["without"])
    diff = hook - base
    inside = statistics.median(result["in_hook"])
    return (f"| {result['framework']} | {base * 1e6:,.0f} | {hook * 1e6:,.0f} | {diff * 1e6:+,.0f} | "
            f"{100 * diff / base:+.1f} % | ±{noise * 1e6:,.0f} | {inside * 1e6:,.1f} ({100 * inside / base:.2f} %) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=FRAMEWORKS, help="measure only this framework (repeatable)")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions after the warm-up (default 5)")
    parser.add_argument("--child", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.reps)))
        return 0
    print("| framework | without, µs/step | with, µs/step | difference | overhead | baseline spread | in hook, µs/step |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for framework in args.only or FRAMEWORKS:
        with tempfile.TemporaryDirectory() as tmp:
            env = dict(os.environ, EM_RUN_PARENT_DIR=str(Path(tmp) / "runs"), EM_ARTIFACT_PARENT_DIR=str(Path(tmp) / "artifacts"),
                       KERAS_BACKEND="torch", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
            env = {k: v for k, v in env.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
            proc = subprocess.run([sys.executable, __file__, "--child", framework, "--reps", str(args.reps)], env=env,
                                  capture_output=True, text=True, timeout=900, cwd=tmp)
        if proc.returncode != 0:
            print(f"| {framework} | failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode} |")
            continue
        print(report(json.loads(proc.stdout.strip().splitlines()[-1])), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
