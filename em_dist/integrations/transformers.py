"""Hugging Face Transformers: a ``TrainerCallback`` that records every process of a ``Trainer`` job.

    from em_dist.integrations.transformers import EMCallback
    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[EMCallback()])

Transformers' own integrations log on the world's process zero only; this callback logs on
every process into its own ``Run`` object, and em_dist gathers them into rank 0's one run.
Transformers chooses ``report_to=`` names from a fixed table (no entry point for a third
party), so the callback is passed with ``callbacks=[...]``.

What each process records is what the Trainer hands its callbacks: ``loss`` (the Trainer
averages it over processes before logging), ``grad_norm``, ``learning_rate``; ``eval_*``
as ``val``, ``test_*`` as ``test``; the end-of-training summary (``train_runtime``, ...) as
``summary``. Steps are ``state.global_step``; epochs are ``state.epoch`` (fractional, as the
Trainer reports them). Values arrive as Python numbers (the Trainer converted them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from ..artifact import create_artifact
from ..run import Run
from ..trial import Trial
from ._histograms import GRADIENTS, WEIGHTS, check_every, due, log_histograms
from ._target import RunTarget
from ._types import group_by_type

__all__ = ["EMCallback", "split_logs"]

_PREFIXES = (("eval_", "val"), ("test_", "test"))
_SUMMARY = dict.fromkeys(("train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"), "summary")
_SKIP = frozenset({"epoch", "step"})


def split_logs(logs: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Group a Trainer's log dict by em_dist type: ``eval_loss`` -> ``{"val": {"loss": ...}}``."""
    return group_by_type(logs, _PREFIXES, _SKIP, fixed=_SUMMARY)


class EMCallback(TrainerCallback):
    """Records a Transformers ``Trainer`` on every process: metrics, hparams, optionally the last checkpoint.

    ``run_or_trial``: a Run, a Trial, or None (the live run of the process, else one named
    ``name`` created when training begins; em_dist finishes it at exit, or call
    :meth:`finish`). At ``on_train_begin`` the TrainingArguments (``args.*``) and the model's
    config (``model_config``) go into hparams. ``log_checkpoints=True`` adds the last
    checkpoint folder the Trainer saved as an output artifact at the end of training
    (world process zero).

    ``histograms_every_n_steps``: at every n-th ``global_step``, one ``em.Histogram`` per
    parameter tensor (its name in ``named_parameters()``) of the gradients before the optimizer
    step (type ``gradients``, after the Trainer clipped them; parameters without a gradient are
    left out) and of the weights after it (type ``weights``), on every process. None or 0 (the
    default): none.
    """

    def __init__(self, run_or_trial: Run | Trial | None = None, log_checkpoints: bool = False, *, name: str = "transformers",
                 histograms_every_n_steps: int | None = None) -> None:
        self._target = RunTarget(run_or_trial, name)
        self.log_checkpoints = log_checkpoints
        self.histograms_every_n_steps = check_every(histograms_every_n_steps, "histograms_every_n_steps")
        self._last_checkpoint: Path | None = None

    @property
    def run(self) -> Run | None:
        """The run this callback records into (None before training began when none was given)."""
        return self._target.resolved

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any) -> None:
        run = self._target.get()
        hparams: dict[str, Any] = {"args": args.to_sanitized_dict()}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            hparams["model_config"] = config.to_dict()
        run.hparams.update(hparams)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if not logs:
            return
        run = self._target.get()
        for kind, values in split_logs(logs).items():
            run.log(kind, values, step=state.global_step, epoch=state.epoch)

    def on_pre_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any) -> None:
        step = state.global_step + 1  # the step being taken: global_step counts it after the optimizer step
        if model is not None and due(self.histograms_every_n_steps, step):
            grads = ((n, p.grad) for n, p in model.named_parameters())
            log_histograms(self._target.get(), GRADIENTS, grads, step=step, epoch=state.epoch)

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, model: Any = None, **kwargs: Any) -> None:
        if model is not None and due(self.histograms_every_n_steps, state.global_step):
            log_histograms(self._target.get(), WEIGHTS, model.named_parameters(), step=state.global_step, epoch=state.epoch)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if args.output_dir is not None:  # always set by then (TrainingArguments defaults it), typed optional
            self._last_checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.log_checkpoints and state.is_world_process_zero and self._last_checkpoint is not None and self._last_checkpoint.is_dir():
            run = self._target.get()
            artifact = create_artifact(name=f"{run.name}-checkpoint", description="the last checkpoint the Trainer saved")
            artifact.add_dir(str(self._last_checkpoint))
            run.mark_output(artifact)

    def finish(self) -> None:
        """Finish the run if this callback created it (otherwise em_dist finishes it at exit)."""
        self._target.finish()
