"""A tiny Accelerate job for the integration tests: 5 steps per process on synthetic data, CPU."""

import argparse

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from em_dist.integrations.accelerate import EMTracker


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    a = p.parse_args()
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


if __name__ == "__main__":
    main()
