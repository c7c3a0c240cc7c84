"""Hugging Face Accelerate: ``EMTracker``, a ``GeneralTracker`` whose run holds every process's series.

    from em_dist.integrations.accelerate import EMTracker
    tracker = EMTracker()
    accelerator = Accelerator(log_with=tracker)
    accelerator.init_trackers("my_project", config=vars(args))
    ...
    tracker.log({"loss": loss}, step=step)      # on every process
    accelerator.end_training()

``Accelerator.log`` and ``init_trackers`` run on the main process only (Accelerate decorates
them so, whatever the tracker says), so ``accelerator.log(...)`` records rank 0's values
alone. ``tracker.log(...)``, called on every process, records each process's own values
(``main_process_only = False``); em_dist gathers them into rank 0's one run. Use one or the
other for a metric, not both. The tracker makes its run the first time it is used (after
the Accelerator started the process group); a run made so is finished by
``accelerator.end_training()`` on the main process and at exit on the others.
"""

from __future__ import annotations

from typing import Any

from accelerate.tracking import GeneralTracker

from ..run import Run
from ..trial import Trial
from ._target import RunTarget

__all__ = ["EMTracker"]


class EMTracker(GeneralTracker):  # type: ignore[misc]  # accelerate ships no type information
    """An Accelerate tracker recording into an em_dist Run (given, live, or created on first use)."""

    name = "em_dist"
    requires_logging_directory = False
    main_process_only = False

    def __init__(self, run_or_trial: Run | Trial | None = None, *, name: str = "accelerate", log_type: str = "train") -> None:
        super().__init__()
        self._target = RunTarget(run_or_trial, name)
        self.log_type = log_type
        self._step = 0

    @property
    def tracker(self) -> Run:
        """The em_dist Run (Accelerate's ``get_tracker("em_dist", unwrap=True)``)."""
        return self._target.get()

    def start(self) -> None:
        self._target.get()

    def store_init_configuration(self, values: dict[str, Any]) -> None:
        """``init_trackers(config=...)``: the run's hparams."""
        self._target.get().hparams.update(values)

    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        """Record ``values`` (numbers or 0-dim tensors) at ``step`` (default: one more than the last).

        ``type=`` (``"val"``, ``"test"``, ...) and ``epoch=`` may come as keyword arguments or
        through ``accelerator.log(..., log_kwargs={"em_dist": {"type": "val"}})``.
        """
        at = self._step if step is None else int(step)
        self._step = at + 1
        numbers = {k: v for k, v in values.items() if not isinstance(v, (str, bytes)) and v is not None}
        if numbers:
            self._target.get().log(kwargs.get("type", self.log_type), numbers, step=at, epoch=kwargs.get("epoch"))

    def finish(self) -> None:
        """Finish the run if this tracker created it."""
        self._target.finish()
