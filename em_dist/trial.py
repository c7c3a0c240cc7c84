"""The older ``aimd`` names (``create_trial``, ``trial.params``, ``trial.log(metrics_type=...)``) over a Run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .hparams import Hparams
from .run import Run, create_run
from .store import layout


class Trial:
    """An ``aimd`` trial: a thin alias of :class:`Run`; saved in the same run folder format."""

    def __init__(self, run: Run) -> None:
        self.run = run

    @property
    def params(self) -> Hparams:
        """The trial's hyperparameters (``run.hparams``)."""
        return self.run.hparams

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def path(self) -> Path:
        """The run folder."""
        return self.run.path

    def log(self, metrics_type: str, metrics: Mapping[str, Any], step: int, epoch: int | float | None = None) -> None:
        """``Run.log`` under its old keyword name."""
        self.run.log(type=metrics_type, metrics=metrics, step=step, epoch=epoch)

    def finish(self) -> None:
        self.run.finish()

    def upload(self, folder_path: str | None = None, make_folder: bool | None = None, *, folder_id: str | None = None) -> Any:
        """Upload to the folder given at ``create_trial`` unless another is named here."""
        return self.run.upload(folder=folder_path, make_folder=make_folder, folder_id=folder_id)

    def __enter__(self) -> Trial:
        return self

    def __exit__(self, *exc: Any) -> bool:
        return self.run.__exit__(*exc)


def create_trial(
    trial_name: str = "default",
    folder_path: str | None = None,
    folder_id: str | None = None,
    make_folder: bool = False,
    params: Mapping[str, Any] | None = None,
    labels: list[str] | None = None,
    description: str = "",
) -> Trial:
    """Start a trial (``aimd.create_trial``); ``folder_id`` wins over ``folder_path``; neither means ``default``.

    The trial's folder is ``.aimd/trials/<name>_<date>_<time>_<suffix>`` (``$AIMD_TRIAL_PARENT_DIR``),
    as the ``aimd`` SDK kept them; ``em run list/upload -d .aimd/trials`` and ``aimd trial upload`` read them.
    """
    with layout.runs_under(layout.trial_parent_dir()):
        run = create_run(
            name=trial_name,
            hparams=params,
            labels=labels,
            description=description,
            folder=folder_path or "default",
            make_folder=make_folder,
            folder_id=folder_id,
        )
    return Trial(run)
