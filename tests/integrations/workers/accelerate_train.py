"""A tiny Accelerate job for the integration tests: 5 steps per process on synthetic data, CPU."""

import argparse
import os
import signal

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from em_dist.integrations.accelerate import EMTracker


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--until-sigterm", action="store_true",
                   help="train until SIGTERM (the script's own graceful handler, installed before the run), then 3 more logs")
    a = p.parse_args()
    if a.until_sigterm:
        return until_sigterm()
    tracker = EMTracker(name="acc")
    accelerator = Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("acc", config={"lr": 0.1, "batch_size": 4})
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)
    data = DataLoader(TensorDataset(torch.randn(8 * a.steps, 4, generator=g), torch.randn(8 * a.steps, 1, generator=g)), batch_size=4)
    model, optimizer, data = accelerator.prepare(model, optimizer, data)
    for step, (x, y) in enumerate(data):
        loss = torch.nn.functional.mse_loss(model(x), y)
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        tracker.log({"loss": loss.detach(), "process": accelerator.process_index}, step=step)
    tracker.log({"loss": 0.5 + accelerator.process_index}, step=a.steps, type="val", epoch=1)
    accelerator.end_training()


def until_sigterm() -> None:
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))  # before the run is made
    tracker = EMTracker(name="acc-sigterm")
    accelerator = Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("acc")
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model, optimizer = accelerator.prepare(model, optimizer)
    step = 0
    while True:
        # A DDP job stops at the same step on every process: a process that leaves the loop alone
        # leaves the others inside an allreduce of a peer that is gone. Accelerate's trigger is
        # that agreement (an allreduce of a flag), as a graceful stop in a real script needs.
        if stop:
            accelerator.set_trigger()
        if accelerator.check_trigger():
            break
        x = torch.randn(4, 4)
        loss = torch.nn.functional.mse_loss(model(x), x.sum(dim=1, keepdim=True))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        tracker.log({"loss": loss.detach()}, step=step)
        step += 1
        if step == 20:
            open(os.path.join(os.environ["EM_TEST_OUT"], f"ready-{accelerator.process_index}"), "w").close()
    for i in range(3):  # what the script does once told to stop: a last evaluation, say
        tracker.log({"after": float(i)}, step=step + i, type="val")
    with open(os.path.join(os.environ["EM_TEST_OUT"], f"stopped-{accelerator.process_index}"), "w") as f:
        f.write(str(step))
    accelerator.end_training()  # finishes the trackers of the main process only
    tracker.finish()  # every process says it is done: after a handled signal, an exit alone reads as Failed


if __name__ == "__main__":
    main()
