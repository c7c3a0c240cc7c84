"""Track a Lightning DDP training on 2 CPU processes: every rank's curve in one run.

Lightning's own ``ddp`` launcher starts the second process; ``EMCallback`` makes the run at
``setup`` (after the process group exists) on every rank, records each rank's own values of
``self.log(...)`` (``sync_dist=False``), the ``save_hyperparameters()`` and, with
``log_checkpoints=True``, the checkpoints as an output artifact.

    python examples/lightning/train_lightning_ddp.py            # 2 CPU processes
    torchrun --nproc_per_node=2 examples/lightning/train_lightning_ddp.py
"""

import argparse

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from em_dist.lightning import EMCallback


class Classifier(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()  # recorded as the run's hparams
        self.net = torch.nn.Sequential(torch.nn.Linear(16, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)  # this rank's own value, on every rank
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def synthetic(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.randn(n, 16, generator=g) + torch.nn.functional.one_hot(y, 16).float() * 2
    return DataLoader(TensorDataset(x, y), batch_size=16)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=args.epochs, log_every_n_steps=5,
                         callbacks=[EMCallback(name="lightning_ddp", log_checkpoints=True)], logger=False,
                         enable_progress_bar=False)
    trainer.fit(Classifier(), synthetic(1024, 0), synthetic(256, 1))
