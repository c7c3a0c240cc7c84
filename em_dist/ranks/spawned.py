"""A run made in a process that then spawns the ranks: the Run crosses to them as a handle.

PyTorch Lightning's ``ddp_spawn`` and ``torch.multiprocessing.spawn`` pickle what the
ranks need (the Trainer with its loggers and callbacks, the function's arguments) into
fresh interpreters. A Run holds locks, threads and open files that can't cross; what
crosses instead is a :class:`RunHandle`: the run's identity and the state its records
need. Unpickled in another process, the handle re-attaches there (:func:`attach`) the
way a fork child does (:mod:`em_dist.ranks.forked`): the child keeps what it logs until
torch.distributed makes it a rank, then its rank 0 continues the parent's run folder and
every other rank sends to it, under the parent's late-join key. The spawning parent,
which waits, finds the folder taken over at its own ``finish()`` and writes no more.

Unpickled in the process that pickled it (``copy.deepcopy``, a pickle round trip), the
handle gives back the live Run itself. A run that already belongs to a job (the parent is
a rank) can't be continued by another process: the child gets a Run whose records go
nowhere, and one warning says so and what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .timing import RankTimings

if TYPE_CHECKING:
    from ..run import Run


@dataclass(frozen=True)
class RunHandle:
    """What of a Run crosses to a spawned process: identity, metadata, settings. No locks, no threads."""

    pid: int
    """The process that pickled it: unpickled there, the handle is the live Run itself."""
    id: str
    name: str
    alternative_name: str
    path: str
    restarts: int
    start_timestamp: str
    status: str
    join_key: str | None
    """The parent's late-join key, which the spawned ranks meet under; None when the parent's run
    already belongs to a job (then no other process can continue it)."""
    timings: RankTimings
    flush_interval: float
    max_pending: int
    max_output: int
    """The bound on captured output lines waiting (``create_run(max_output=...)``)."""
    meeting_key: str
    labels: list[str] = field(default_factory=list)
    description: str = ""
    folder: str = "default"
    folder_id: str | None = None
    make_folder: bool = False
    conflict_strategy: str = "new"
    auto_upload: bool = False
    attempts: list[dict[str, Any]] = field(default_factory=list)
    hparams: dict[str, Any] = field(default_factory=dict)
    world: dict[str, Any] = field(default_factory=dict)
    platform: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)


def attach(handle: RunHandle) -> Run:
    """Unpickling a Run: the live Run in its own process, else a Run of this process that joins
    the parent's run once this process becomes a rank (see the module docstring)."""
    from .. import lifecycle
    from ..run import Run

    if handle.pid == os.getpid():
        live = next((r for r in lifecycle.live_runs() if r.identity.id == handle.id), None)
        if live is not None:
            return live
    return Run.from_handle(handle)  # tracked by the lifecycle, its background work started
