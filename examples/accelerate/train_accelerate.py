"""Track an Accelerate training loop on every process with ``EMTracker``.

``accelerator.init_trackers(config=...)`` records the hparams; ``tracker.log(...)`` on every
process records each process's own loss (``accelerator.log`` would record the main
process only: Accelerate runs it there alone).

    accelerate launch --multi_gpu --num_processes 2 examples/accelerate/train_accelerate.py   # 2 CPU processes without GPUs
    python examples/accelerate/train_accelerate.py
"""

import argparse

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, TensorDataset

from em_dist.integrations.accelerate import EMTracker

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.05)
    args = parser.parse_args()

    tracker = EMTracker(name="regression_accelerate")
    accelerator = Accelerator(cpu=True, log_with=tracker)
    accelerator.init_trackers("regression", config=vars(args))

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2048, 8, generator=g)
    y = x @ torch.arange(1.0, 9.0).unsqueeze(1) + 0.1 * torch.randn(2048, 1, generator=g)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    data = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model, optimizer, data = accelerator.prepare(model, optimizer, data)

    step = 0
    for epoch in range(args.epochs):
        for xb, yb in data:
            loss = torch.nn.functional.mse_loss(model(xb), yb)
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            tracker.log({"loss": loss.detach()}, step=step, epoch=epoch)  # every process, its own value
            step += 1
    accelerator.end_training()
