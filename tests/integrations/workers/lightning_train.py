"""A tiny Lightning job for the integration tests: 2 epochs of 4 batches per rank on synthetic data."""

import argparse
import os

import torch
from torch.utils.data import DataLoader, TensorDataset

import lightning.pytorch as pl

import em_dist as em
from em_dist.lightning import EMCallback, EMLogger


class Tiny(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 8) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.log("rank_value", float(self.global_rank), on_step=True, on_epoch=False)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader(n: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(torch.randn(n, 8, generator=g), torch.randint(0, 2, (n,), generator=g)), batch_size=8)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--strategy", default="ddp")
    p.add_argument("--devices", type=int, default=2)
    p.add_argument("--run-at-top", action="store_true")
    p.add_argument("--logger", action="store_true")
    p.add_argument("--checkpoints", action="store_true")
    p.add_argument("--root", default=".")
    p.add_argument("--histograms", type=int, default=None, help="EMCallback(histograms_every_n_steps=...)")
    p.add_argument("--import-mpi", action="store_true", help="import mpi4py first (a singleton MPI init)")
    a = p.parse_args()
    if a.import_mpi:
        from mpi4py import MPI  # noqa: F401 - Open MPI then sets PMIX_* for the processes this one spawns
    torch.manual_seed(0)
    run = em.create_run(name="lit-top") if a.run_at_top else None
    callbacks = [EMCallback(run, log_checkpoints=a.checkpoints, name="lit", histograms_every_n_steps=a.histograms)]
    logger = EMLogger(run, log_checkpoints=a.checkpoints, name="lit") if a.logger else False
    trainer = pl.Trainer(
        accelerator="cpu", devices=a.devices, strategy=a.strategy, max_epochs=2, log_every_n_steps=1,
        callbacks=callbacks, logger=logger, enable_checkpointing=a.checkpoints, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=a.root, num_sanity_val_steps=0,
    )
    trainer.fit(Tiny(), loader(64, 1), loader(32, 2))
    if run is not None:
        run.finish()


if __name__ == "__main__":
    main()
