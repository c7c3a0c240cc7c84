"""The seam between a Run and the rank layer: :func:`open_sink`, the one call ``Run.__init__`` makes.

It detects the job and returns the :class:`~em_dist.sink.Sink` the Run writes through:
the run folder's writer in a plain process, a :class:`RootSink` on rank 0 and a
:class:`PeerSink` elsewhere (a peer builds no writer: it never writes the folder). It
never raises: a failure to set up the transport is one warning, and the run then
records what it can locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .._warn import warn_once
from ..sink import Sink
from ..store.writer import RunWriter
from .engines import open_channel
from .peer import PeerSink
from .root import RootSink
from .timing import RankTimings
from .world import WorldInfo, detect_world


def world_doc(world: WorldInfo, transport: str | None) -> dict[str, Any]:
    """The ``world`` entry of run.json and platform.json."""
    return {
        "size": world.world_size,
        "rank": world.rank,
        "local_rank": world.local_rank,
        "nodes": world.nodes,
        "launcher": world.launcher,
        "backend": None,
        "transport": transport,
    }


def open_sink(run_dir: Path, *, timings: RankTimings, flush_interval: float,
              max_pending: int) -> tuple[Sink, dict[str, Any]]:
    """The sink for a run folder at ``run_dir`` (rank 0's), and the run's ``world`` document."""
    try:
        world = detect_world()
    except Exception as exc:  # noqa: BLE001
        warn_once("detect-world", f"em_dist: could not read the job layout ({exc!r}); recording as one process")
        world = WorldInfo()
    if not world.distributed:
        writer = RunWriter(run_dir, flush_interval=flush_interval, max_pending=max_pending)
        return writer, {**world_doc(world, None), "nodes": 1}
    channel, engine = open_channel(world, timings)
    doc = world_doc(world, channel.transport if channel is not None and engine != "deferred" else None)
    if world.rank == 0:
        writer = RunWriter(run_dir, flush_interval=flush_interval, max_pending=max_pending)
        return RootSink(writer, channel, timings), doc  # type: ignore[arg-type]
    return PeerSink(channel, world.rank, timings=timings, max_pending=max_pending), doc  # type: ignore[arg-type]
