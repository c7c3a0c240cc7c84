"""PyTorch Lightning: an ``EMCallback`` (the seed's ``AIMDCallback``) and an ``EMLogger`` that record every rank.

    from em_dist.lightning import EMCallback
    trainer = Trainer(strategy="ddp", callbacks=[EMCallback()])      # or EMCallback(run)

Lightning's own loggers decorate their methods ``rank_zero_only``, so a DDP job shows rank
0's curve only. Here callback hooks and ``EMLogger.log_metrics`` run on every rank and each
rank logs its own values (what ``self.log(..., sync_dist=False)`` gave it) into its own
``Run`` object, which em_dist gathers into rank 0's one run: per-rank curves and the
cross-rank band. Given no run, the first hook that runs after the strategy started the
process group (``setup``) resolves the live run of the process or creates one, and the end
of the stage finishes a run created that way.

Metric names choose the type: ``val_x`` / ``val/x`` -> ``val`` ``x``; ``test_x`` / ``test/x``
-> ``test``; anything else is ``train``. Steps and epochs are those Lightning hands its
loggers (TensorBoard shows the same): the 0-based index of the optimizer step
(``trainer.global_step - 1`` after a batch) and ``trainer.current_epoch`` from 0.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import Any, Mapping

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only

from .artifact import create_artifact
from .integrations._histograms import GRADIENTS, WEIGHTS, check_every, due, log_histograms
from .integrations._target import RunTarget
from .integrations._types import group_by_type
from .run import Run
from .trial import Trial

__all__ = ["EMCallback", "EMLogger", "AIMDCallback", "split_by_type"]

_PREFIXES = (("val_", "val"), ("val/", "val"), ("test_", "test"), ("test/", "test"), ("train_", "train"), ("train/", "train"))
_SKIP = frozenset({"epoch", "step"})


def split_by_type(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Group Lightning metric names by em_dist type: ``val_loss`` -> ``{"val": {"loss": ...}}``."""
    return group_by_type(metrics, _PREFIXES, _SKIP)


class EMCallback(Callback):
    """Records a Trainer on every rank: train metrics every ``log_every_n_steps``, validation and test per epoch.

    ``run_or_trial``: a Run, a Trial, or None (the live run of the process, else one named
    ``name`` created at ``setup``). Train points hold the ``training_step`` loss and the
    step-level values in ``trainer.callback_metrics`` (this rank's own tensors, converted off
    the training thread by em_dist); ``*_epoch`` values follow at each epoch's end. The
    LightningModule's ``save_hyperparameters()`` go into hparams; ``log_checkpoints=True``
    adds the checkpoint files rank 0 saved as an output artifact at the end of ``fit``.
    With an :class:`EMLogger` on the same Trainer, the logger records the metrics and this
    callback only hparams, checkpoints and histograms, so nothing is recorded twice.

    ``histograms_every_n_steps``: at every n-th optimizer step (Lightning's logger step, as the
    train metrics), one ``em.Histogram`` per parameter tensor (its name in ``named_parameters()``)
    of the gradients before the optimizer step (type ``gradients``; parameters without a
    gradient are left out) and of the weights after it (type ``weights``), on every rank. None
    or 0 (the default): none.
    """

    def __init__(
        self,
        run_or_trial: Run | Trial | None = None,
        log_every_n_steps: int | None = None,
        log_checkpoints: bool = False,
        *,
        name: str = "lightning",
        histograms_every_n_steps: int | None = None,
    ) -> None:
        if log_every_n_steps is not None and (isinstance(log_every_n_steps, bool) or not isinstance(log_every_n_steps, int) or log_every_n_steps < 1):
            raise ValueError(f"log_every_n_steps must be a positive integer or None, got {log_every_n_steps!r}")
        self._target = RunTarget(run_or_trial, name)
        self.log_every_n_steps = log_every_n_steps
        self.log_checkpoints = log_checkpoints
        self.histograms_every_n_steps = check_every(histograms_every_n_steps, "histograms_every_n_steps")
        self._run: Run | None = None
        self._metrics = True
        self._every = 1
        self._weights_at = -1
        self._grads_at = -1

    @property
    def run(self) -> Run | None:
        """The run this callback records into (None before ``setup`` when none was given)."""
        return self._target.resolved

    def _active(self) -> Run:
        """The run of the fit, validation or test in progress (``setup`` set it)."""
        run = self._run
        if run is None:
            raise RuntimeError("EMCallback: a hook ran before setup")
        return run

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._run = run = self._target.get()
        self._metrics = not any(isinstance(lg, EMLogger) for lg in trainer.loggers)
        self._weights_at = self._grads_at = -1  # the steps histograms were last logged at (this stage's)
        # log_every_n_steps: set on the Trainer by Lightning's logger connector, not declared on the class
        self._every = self.log_every_n_steps or trainer.log_every_n_steps or 1  # type: ignore[attr-defined]
        hparams = dict(pl_module.hparams)
        if hparams:
            run.hparams.update(hparams)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        # global_step is the index of the step about to be taken: the logger step after this batch
        step = trainer.global_step
        if due(self.histograms_every_n_steps, step) and step != self._grads_at:
            self._grads_at = step  # once per step (several optimizers: the first one's hook)
            grads = ((n, p.grad) for n, p in pl_module.named_parameters())
            log_histograms(self._active(), GRADIENTS, grads, step=step, epoch=trainer.current_epoch)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = _step(trainer)
        if due(self.histograms_every_n_steps, step) and trainer.global_step > 0 and step != self._weights_at:
            self._weights_at = step  # once per optimizer step (gradient accumulation: several batches per step)
            log_histograms(self._active(), WEIGHTS, pl_module.named_parameters(), step=step, epoch=trainer.current_epoch)
        if not self._metrics:
            return
        if step % self._every:
            return
        values = {k: v for k, v in trainer.callback_metrics.items() if not k.endswith("_epoch")}
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if loss is not None and hasattr(loss, "detach"):
            values.setdefault("loss", loss.detach())
        self._log(trainer, values, only="train", step=step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._metrics:
            self._log(trainer, {k: v for k, v in trainer.callback_metrics.items() if k.endswith("_epoch")}, only="train")

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._metrics and not trainer.sanity_checking:
            self._log(trainer, trainer.callback_metrics, only="val")

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._metrics:
            self._log(trainer, trainer.callback_metrics, only="test")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.log_checkpoints and trainer.is_global_zero:
            record_checkpoints(self._run, trainer.checkpoint_callbacks)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._target.fail(exception)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._target.finish()

    def _log(self, trainer: pl.Trainer, metrics: Mapping[str, Any], only: str, step: int | None = None) -> None:
        part = split_by_type(metrics).get(only)
        if part:
            self._active().log(only, part, step=_step(trainer) if step is None else step, epoch=trainer.current_epoch)


class EMLogger(Logger):
    """A Lightning ``Logger`` whose ``log_metrics`` records on every rank (no ``rank_zero_only``).

    Lightning hands every rank's logger that rank's values of ``self.log(..., sync_dist=False)``
    (as Python numbers: Lightning converts them itself). ``log_hyperparams`` fills the run's
    hparams (``save_hyperparameters()``); ``log_checkpoints=True`` records the checkpoints
    ModelCheckpoint saved as an output artifact when training ends (rank 0).
    """

    def __init__(
        self,
        run_or_trial: Run | Trial | None = None,
        log_checkpoints: bool = False,
        *,
        name: str = "lightning",
    ) -> None:
        super().__init__()
        self._target = RunTarget(run_or_trial, name)
        self.log_checkpoints = log_checkpoints
        self._checkpoint_callbacks: list[Any] = []

    @property
    def name(self) -> str:
        return self._target.name if self._target.resolved is None else self._target.resolved.name

    @property
    def version(self) -> str | None:
        # Lightning asks for a version early; the run (and its id) may not exist yet.
        run = self._target.resolved
        return None if run is None else run.id

    @property
    def save_dir(self) -> str | None:
        return None  # checkpoints go to the Trainer's default_root_dir

    @property
    def experiment(self) -> Run:
        """The em_dist Run (created on first use when none was given)."""
        return self._target.get()

    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        if params:
            self.experiment.hparams.update(dict(params))

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        run = self.experiment
        epoch = metrics.get("epoch")
        at = int(step) if step is not None else 0
        for kind, values in split_by_type(metrics).items():
            run.log(kind, values, step=at, epoch=epoch)

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if checkpoint_callback not in self._checkpoint_callbacks:
            self._checkpoint_callbacks.append(checkpoint_callback)

    def finalize(self, status: str) -> None:
        run = self._target.resolved
        if run is None:
            return
        if status == "finished":
            # Lightning's SLURM auto-requeue handler (SIGUSR1) finalizes loggers "to get all the metrics",
            # and training goes on until SLURM stops the job: end nothing, copy no checkpoints. This runs
            # inside a signal handler, so it waits for nothing either (the interrupted code may hold the
            # sink's lock); what was logged is on disk within the flush interval as ever.
            return
        if self.log_checkpoints and rank_zero_only.rank == 0 and self._checkpoint_callbacks:  # type: ignore[attr-defined]  # Lightning sets .rank on the function
            record_checkpoints(run, self._checkpoint_callbacks)
        if status == "success":
            self._target.finish()
        else:
            self._target.fail(RuntimeError(f"Lightning ended with status {status!r}"))


AIMDCallback = EMCallback
"""The seed's name (``t9k.aimd.lightning.AIMDCallback``)."""


def _step(trainer: pl.Trainer) -> int:
    """Lightning's logger step: the index of the last optimizer step (0 before the first)."""
    return max(trainer.global_step - 1, 0)


def record_checkpoints(run: Run | None, checkpoint_callbacks: list[Any]) -> None:
    """Add the files the ModelCheckpoint callbacks kept (best k and last) to one output artifact of ``run``."""
    if run is None:
        return
    files: list[Path] = []
    for cb in checkpoint_callbacks:
        for path in [*getattr(cb, "best_k_models", {}), getattr(cb, "best_model_path", ""), getattr(cb, "last_model_path", "")]:
            p = Path(path) if path else None
            if p is not None and p.is_file() and p.resolve() not in {f.resolve() for f in files}:
                files.append(p)
    if not files:
        return
    artifact = create_artifact(name=f"{run.name}-checkpoints", description="checkpoints saved by Lightning's ModelCheckpoint")
    for f in files:
        artifact.add_file(str(f))
    run.mark_output(artifact)

