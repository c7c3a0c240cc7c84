"""What the rank layer may do to a Run: the host interface of fork, spawn and late join (issue 20).

A run made before its process became a rank (a fork child, a spawned process, a process
whose engine started after ``create_run``) is re-homed by the rank layer once the engine
appears: it learns where the job's run lives, gets a new sink and a ``world`` document,
and from then on watches for signals like any run. :class:`RunHost` names each of those
operations, so :mod:`.forked` and :mod:`.spawned` depend on this small contract instead
of on the Run's private fields; ``em_dist.run.Run`` implements it. The contract is a
type (mypy checks ``Run`` against it where the Run hands itself to the rank layer).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..sink import Sink
from ..store.attempts import RunPlace
from .timing import RankTimings


@dataclass(frozen=True)
class RunIdentity:
    """Where a run lives as this process knows it now: its id, folder name, folder and restart count.

    A snapshot, never a wait: on a peer that has not reached rank 0 yet it is the peer's own
    placeholder, not rank 0's (``Run.id`` and ``Run.path`` wait for rank 0 instead).
    """

    id: str
    alternative_name: str
    path: Path
    restarts: int

    def doc(self) -> dict[str, Any]:
        """The run document the ranks exchange when they meet (rank 0's is the one every rank adopts)."""
        return {"id": self.id, "alternative_name": self.alternative_name, "path": str(self.path),
                "restarts": self.restarts}


class RunHost(Protocol):
    """The operations the rank layer's join code (fork, spawn, late join) performs on a Run.

    Each is called from one place in :mod:`.forked` or :mod:`.spawned`; the docstrings say
    on which thread, since some run inside an at-fork hook (no locks, no threads, no I/O)
    or on a sink's background thread while the training thread logs on.
    """

    @property
    def name(self) -> str:
        """The run's name (what warnings about the run say)."""
        ...

    @property
    def world(self) -> dict[str, Any]:
        """The run's ``world`` document (run.json's); a rank that continues nothing keeps it."""
        ...

    @property
    def timings(self) -> RankTimings:
        """The run's waits and intervals: the joining ranks meet and forward under them."""
        ...

    @property
    def identity(self) -> RunIdentity:
        """The run's identity and folder as known now (never waits: callers run on background threads)."""
        ...

    @property
    def sink(self) -> Sink:
        """The sink the run writes through now (a fork child's is its parent's copy, with no thread)."""
        ...

    @property
    def late_join_key(self) -> str | None:
        """The key of a late join the run still waits for (its name and occurrence), else None."""
        ...

    def forget_late_join(self) -> None:
        """Drop the run's late join: another sink (a fork child's) does the joining instead."""
        ...

    def relocate(self, place: RunPlace) -> None:
        """Move the run's identity and folder to ``place`` (a join that found no job keeps a run of its own)."""
        ...

    def use_sink(self, sink: Sink) -> None:
        """Write through ``sink`` from now on; no metadata is written (an at-fork hook may call this)."""
        ...

    def adopt_sink(self, sink: Sink, world: dict[str, Any]) -> None:
        """The engine made this process a rank: write through ``sink`` as rank ``world["rank"]``, and hand
        it the run's metadata (run.json, hparams, platform, git, marked artifacts) at once."""
        ...

    def watch_signals(self) -> None:
        """Finish (or note) the run on SIGTERM/SIGINT/SIGHUP from now on (:mod:`.signals`)."""
        ...

    def detach_auto_uploader(self) -> None:
        """Forget the auto-uploader without stopping it: in a fork child it is the parent's (its thread
        did not cross the fork), and only the parent uploads its run."""
        ...
