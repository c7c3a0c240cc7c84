"""Which Run an integration records into: the one it was given, the live one, or one it makes at setup.

A framework callback is built before the framework started its processes (Lightning's
``ddp`` launcher, ``ddp_spawn``, ``accelerate launch``), so a callback given no run must
not create one in ``__init__``: it resolves its run the first time a hook that runs on
every rank needs it (after the strategy set up the process group), and finishes only a
run it made itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import lifecycle
from ..run import Run, create_run
from ..trial import Trial


class RunTarget:
    """The run of one integration object; resolved lazily, finished only when this object made it."""

    def __init__(self, run_or_trial: Run | Trial | None, name: str, create_kwargs: Mapping[str, Any] | None = None) -> None:
        if run_or_trial is not None and not isinstance(run_or_trial, (Run, Trial)):
            raise TypeError(
                f"expected an em_dist Run (em.create_run), a Trial (em.create_trial) or None, got {type(run_or_trial).__name__}"
            )
        self._given = run_or_trial.run if isinstance(run_or_trial, Trial) else run_or_trial
        self._run: Run | None = self._given
        self._owned = False
        self.name = name
        self._create_kwargs = dict(create_kwargs or {})

    @property
    def resolved(self) -> Run | None:
        """The run, if one was given or resolved already (never creates one)."""
        return self._run

    def get(self) -> Run:
        """The run to record into: the given one, else the live run of this process, else a new one."""
        run = self._run
        if run is not None and not (self._owned and _ended(run)):
            return run
        live = lifecycle.current()
        if live is not None and self._given is None:
            self._run, self._owned = live, False
        else:
            self._run, self._owned = create_run(name=self.name, **self._create_kwargs), True
        return self._run

    def finish(self) -> None:
        """Finish the run if this object created it; a run the user passed stays theirs to finish."""
        if self._owned and self._run is not None:
            self._run.finish()

    def fail(self, exception: BaseException) -> None:
        """End the run as Failed with ``exception`` if this object created it."""
        if self._owned and self._run is not None:
            self._run.__exit__(type(exception), exception, exception.__traceback__)


def _ended(run: Run) -> bool:
    """True once ``run.finish()`` (or an exit hook) ended the run."""
    return run.status not in ("Initializing", "Running")
