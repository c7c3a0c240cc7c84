"""PyTorch Lightning's own DDP launcher (``strategy="ddp"``, no torchrun) (issue 15): Lightning
re-runs this script for rank 1 with only LOCAL_RANK set; every process must end up in rank
0's one Run, wherever the script creates it: ``top`` (before Lightning starts anything),
``module`` (the LightningModule's ``setup``) or ``callback`` (a Callback's ``on_fit_start``)."""

import json
import os
import sys

import em_dist as em

WHERE = sys.argv[2] if len(sys.argv) > 2 else "top"
run = em.create_run(name="lit", dist_timeout=20) if WHERE == "top" else None  # before Lightning starts any process

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402


class Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def setup(self, stage):
        global run
        if WHERE == "module":
            run = em.create_run(name="lit", dist_timeout=20)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        run.log(type="train", metrics={"loss": loss.detach(), "rank": self.global_rank}, step=self.global_step)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class MakeRun(L.Callback):
    def on_fit_start(self, trainer, pl_module):
        global run
        if WHERE == "callback":
            run = em.create_run(name="lit", dist_timeout=20)


if __name__ == "__main__":
    strategy = sys.argv[1] if len(sys.argv) > 1 else "ddp"
    data = TensorDataset(torch.randn(4000, 4), torch.randn(4000, 1))  # a few seconds of training
    trainer = L.Trainer(strategy=strategy, devices=2, accelerator="cpu", max_epochs=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, callbacks=[MakeRun()])
    trainer.fit(Tiny(), DataLoader(data, batch_size=8))
    run.finish()
    with open(os.path.join(os.environ["EM_TEST_OUT"], f"rank-{trainer.global_rank}.json"), "w") as f:
        json.dump({"id": run.id, "path": str(run.path)}, f)
