"""Engines that start after ``create_run``, in processes the launcher gave no rank (issue 15).

``torch.multiprocessing.spawn`` children and the processes of PyTorch Lightning's own
DDP launcher learn their rank only when the script (or Lightning) calls
``init_process_group``; their ``create_run`` ran before, as a single process with a run
folder of its own. A :class:`LateJoin` watches for that moment from the writer's thread
(one ``sys.modules`` lookup per writer cycle) and then joins the job's one Run:

- rank 0 keeps its folder and starts receiving (its writer becomes a :class:`RootSink`);
- any other rank hands every line it wrote so far, and what follows, to rank 0 through
  a :class:`PeerSink`; its own folder is removed once rank 0 acknowledged the end.

The processes meet under the run's identity key (its name and occurrence, alike on
every rank), on em_dist's own gloo pairs over the default group's store.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from .._warn import warn_once
from ..sink import Sink
from ..store.attempts import RunPlace
from ..store.writer import RunWriter
from .deferred import torch_ready
from .engines import Meeting, _gloo_wire
from .frames import FramePeer, FrameRoot
from .peer import PeerSink
from .root import RootSink
from .timing import RankTimings
from .world import WorldInfo, ask_engine, launcher_guess


class LateJoin:
    """Turns a single-process run into its rank's part of the job once torch.distributed is up."""

    def __init__(self, writer: RunWriter, place: RunPlace, key: str, timings: RankTimings,
                 become: Callable[[Sink, dict[str, Any]], None], doc: Callable[[], dict[str, Any]]) -> None:
        self._writer = writer
        self._place = place
        self.key = key
        """What the processes meet under: the run's name and occurrence, alike on every rank."""
        self._timings = timings
        self._become = become
        self._doc = doc
        self.done = False
        writer.on_cycle = self.check

    def check(self) -> None:
        """On the writer thread, after a cycle: join the job if an engine of several ranks appeared."""
        found = None if self.done else engine_rank()
        if found is None:
            return
        rank, size = found
        self.done = True
        self._writer.on_cycle = None
        if size <= 1:
            return
        try:
            self._join(rank, size)
        except Exception as exc:  # noqa: BLE001 - the run goes on as it was: a run of this process
            warn_once("late-join", f"em_dist: this process became rank {rank} of {size} after create_run, but "
                      f"could not join rank 0's run ({exc!r}); it keeps a run of its own at {self._place.path}")

    def _join(self, rank: int, size: int) -> None:
        place = self._place
        run_doc = {"id": place.id, "alternative_name": place.alternative_name, "path": str(place.path),
                   "restarts": place.attempt}
        wire, doc = meet(rank, size, self.key, run_doc, self._timings)
        sink: Sink
        if rank == 0:
            sink = root_sink(self._writer, wire, self._timings, place.id)
        else:
            lines = self._writer.handover()
            peer = PeerSink(FramePeer(wire, heartbeat=self._timings.heartbeat), rank, timings=self._timings,
                            max_pending=self._writer.max_pending, own_place=place, flush_interval=self._writer.interval,
                            retired=self._writer)
            peer.buffer.extendleft(reversed(lines))  # before what log() appends meanwhile (one deque)
            peer.write_run(self._doc())
            peer.start()
            sink = peer
        self._become(sink, doc)


def engine_rank() -> tuple[int, int] | None:
    """``(rank, world size)`` of torch.distributed's default group once the script made one, else None
    (also while a group is being torn down: look again later)."""
    if not torch_ready():
        return None
    import torch.distributed as dist

    return ask_engine(lambda: (dist.get_rank(), dist.get_world_size()), None)


def meet(rank: int, size: int, key: str, run_doc: dict[str, Any], timings: RankTimings) -> tuple[Any, dict[str, Any]]:
    """Meet the job's other processes under ``key`` on em_dist's gloo pairs over the default group's
    store; returns the wire and the ``world`` document of this rank."""
    local = int(os.environ.get("LOCAL_RANK", rank))
    world = WorldInfo(rank=rank, world_size=size, local_rank=local, local_world_size=0,
                      launcher=launcher_guess(), source="torch.distributed")
    wire = _gloo_wire(world, Meeting(key, 0, run_doc), timings)
    from .attach import world_doc

    return wire, world_doc(world, "gloo")


def root_sink(writer: RunWriter, wire: Any, timings: RankTimings, run_id: str) -> RootSink:
    """Rank 0's sink over ``writer``, receiving the other ranks on ``wire`` from now on."""
    channel = FrameRoot(wire, release_wait=timings.release_wait)
    sink = RootSink(writer, channel, timings, run_id=run_id)
    channel.start(sink._deliver, sink._acknowledge, sink._resume)
    return sink
