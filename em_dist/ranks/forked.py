"""A run made before a fork, used by the forked children as their rank's run (issue 15).

PyTorch Lightning's ``ddp_fork`` and ``start_processes(start_method="fork")`` fork the ranks
from the process that ran ``create_run`` at the top of the script. Each child holds a copy of
that Run (the parent's writer object, but not its thread) and learns its rank when
``init_process_group`` runs in it. At fork, :func:`after_fork` gives such a run a
:class:`ForkedSink`: it keeps what the child logs and watches, from a thread of its own
(one ``sys.modules`` lookup per flush interval), for the child's engine. When
torch.distributed makes the child rank r of N:

- rank 0 continues the parent's run folder (same id and path) with a writer of its own and
  receives the other ranks; it leaves :data:`TAKEN_OVER_FILE` in the folder, so the parent,
  which forked and waits, writes nothing more there (:func:`taken_over`);
- every other rank sends what it logged, and what follows, to rank 0 through a PeerSink.

The children meet under the parent's late-join key (its run's name and occurrence), which
they all inherited. A fork that is no new rank keeps the parent's Run object but not the
run: a process whose engine already existed when it forked (a DataLoader worker of a rank),
or whose run already belongs to a job. What such a child logs is not kept; it says so once.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from .._warn import warn_once
from ..sink import EndReport, QueuedSink
from ..store import attempts, layout
from ..store.files import write_json_atomic
from ..store.writer import DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_PENDING, RunWriter
from .deferred import torch_ready
from .frames import FramePeer
from .host import RunHost
from .late import engine_rank, meet, root_sink
from .peer import PeerSink

WATCH = 0.2
"""Seconds between a fork child's looks for its engine."""

TAKEN_OVER_FILE = "taken_over.json"
"""Left in a run folder by the forked rank 0 that continues it: the forking parent writes no more there."""


def after_fork(run: RunHost) -> bool:
    """In a fork child (from the at-fork hook: no locks, no I/O), before the child uses ``run``;
    True when the child keeps the run (it finishes it at its end).

    A single-process run whose engine has not started yet may be a rank's run soon: it gets
    a :class:`ForkedSink`. Any other inherited run is the parent's: log() into it goes nowhere,
    with one warning.
    """
    run.detach_auto_uploader()  # the parent uploads its run, never a child
    key = run.late_join_key
    if key is None or torch_ready():
        run.use_sink(Orphaned(run))
        return False
    parent = run.sink  # the parent's writer (its thread stayed behind): the child keeps its settings
    interval = parent.interval if isinstance(parent, QueuedSink) else DEFAULT_FLUSH_INTERVAL
    max_pending = parent.max_pending if isinstance(parent, QueuedSink) else DEFAULT_MAX_PENDING
    sink = ForkedSink(run, key, interval=interval, max_pending=max_pending)
    run.forget_late_join()  # the ForkedSink joins now; the parent's LateJoin watched the parent's writer
    run.use_sink(sink)  # started once multiprocessing set the child up (no threads from an at-fork hook)
    return True


def taken_over(run_dir: Path) -> dict[str, Any] | None:
    """The run document of ``run_dir`` if a forked rank 0 continued the run there, else None."""
    if not (run_dir / TAKEN_OVER_FILE).is_file():
        return None
    try:
        doc = json.loads((run_dir / layout.RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


class ForkedSink(QueuedSink):
    """Holds a fork child's records until its engine makes it a rank, then hands them to the job."""

    _drain_verb = "handed to rank 0"
    _slow_hint = "Did this forked process never call init_process_group?"

    def __init__(self, run: RunHost, key: str, *, interval: float, max_pending: int) -> None:
        """``interval`` and ``max_pending`` are the run's (its parent's writer's, or its handle's)."""
        # Looks for the engine every WATCH seconds (a sys.modules lookup): a short-lived rank must
        # not end before its records could join; the writer that follows keeps the run's interval.
        super().__init__(interval=min(interval, WATCH), max_pending=max_pending, thread_name="em_dist-forked")
        self._flush_interval = interval
        self._run = run
        self._key = key
        self._joined = False

    # metadata waits on the Run itself: the sink that replaces this one gets all of it at once
    def write_run(self, doc: dict[str, Any]) -> None: ...
    def write_hparams(self, hparams: dict[str, Any]) -> None: ...
    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None: ...
    def write_git(self, git: dict[str, Any]) -> None: ...
    def write_artifacts(self, entries: list[dict[str, Any]]) -> None: ...

    def start(self) -> None:
        if self._thread.ident is None:
            super().start()

    def flush(self, timeout: float = 10.0) -> bool:
        if self._thread.ident is None:  # a plain os.fork child: nobody started the thread; look now
            self._cycle(final=False)
            return True
        return super().flush(timeout)

    def end(self, timeout: float) -> EndReport:
        return EndReport()

    def close(self, timeout: float) -> bool:
        stopped = self._stop(timeout)
        if self.buffer:
            warn_once("forked-unjoined", f"em_dist: {len(self.buffer)} records logged in this forked process "
                      f"(pid {os.getpid()}) to run {self._run.name!r} are not kept: it never became a rank of a "
                      "job. Create the run in the child, or call init_process_group before logging.")
        return stopped

    def _cycle(self, final: bool) -> None:
        found = None if self._joined else engine_rank()
        if found is None:
            return
        rank, size = found
        self._joined = True
        self._stopping = True  # this thread ends after this cycle; the new sink's takes over
        if size <= 1:
            self._join_alone()
            return
        try:
            self._join(rank, size)
        except Exception as exc:  # noqa: BLE001 - keep the records in a run of this process instead
            warn_once("forked-join", f"em_dist: this forked process became rank {rank} of {size} but could not "
                      f"join rank 0's run ({exc!r}); it keeps a run of its own")
            self._join_alone()

    def _join(self, rank: int, size: int) -> None:
        run = self._run
        me, timings = run.identity, run.timings
        wire, doc = meet(rank, size, self._key, me.doc(), timings)
        if rank == 0:
            writer = RunWriter(me.path, flush_interval=self._flush_interval, max_pending=self._max_pending,
                               attempt=me.restarts, buffer=self.buffer)
            write_json_atomic(me.path / TAKEN_OVER_FILE, {"pid": os.getpid()}, durable=True)
            sink: Any = root_sink(writer, wire, timings, me.id)
        else:
            own = attempts.new_place(run.name, f"{me.id}-rank{rank}", time.time(), size)
            sink = PeerSink(FramePeer(wire), rank, timings=timings, max_pending=self._max_pending,
                            own_place=own, flush_interval=self._flush_interval, buffer=self.buffer)
        self._adopt(sink, doc)

    def _join_alone(self) -> None:
        """No job after all (a group of one): the run continues in a folder of this process."""
        run = self._run
        place = attempts.new_place(run.name, f"{run.identity.id}-pid{os.getpid()}", time.time(), 1)
        run.relocate(place)
        writer = RunWriter(place.path, flush_interval=self._flush_interval, max_pending=self._max_pending,
                           buffer=self.buffer)
        self._adopt(writer, run.world)

    def _adopt(self, sink: Any, world: dict[str, Any]) -> None:
        run = self._run
        run.adopt_sink(sink, world)  # the Run's metadata goes to the new sink
        sink.start()
        run.watch_signals()


class Orphaned(QueuedSink):
    """The sink of a parent's run in a child that is no new rank (a fork child, or a spawned
    process given a run that already belongs to a job): records go nowhere, once said."""

    def __init__(self, run: RunHost, message: str | None = None) -> None:
        super().__init__(interval=3600.0, max_pending=1, thread_name="em_dist-orphaned")
        self.wake_at = 0  # log() calls wake() (where the warning is) on its first record
        self.encode_at = 1 << 62  # and never encodes for nothing
        self._message = message or (f"em_dist: this process (pid {os.getpid()}) was forked from the one that owns "
                                    f"run {run.name!r}; what it logs there is not kept. Create a run in this process.")

    def wake(self) -> None:
        warn_once("forked-orphan", self._message)
        self.buffer.clear()

    def flush(self, timeout: float = 10.0) -> bool:
        return True

    def write_run(self, doc: dict[str, Any]) -> None: ...
    def write_hparams(self, hparams: dict[str, Any]) -> None: ...
    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None: ...
    def write_git(self, git: dict[str, Any]) -> None: ...
    def write_artifacts(self, entries: list[dict[str, Any]]) -> None: ...

    def end(self, timeout: float) -> EndReport:
        return EndReport()

    def close(self, timeout: float) -> bool:
        return True

    def _cycle(self, final: bool) -> None:
        self.buffer.clear()
