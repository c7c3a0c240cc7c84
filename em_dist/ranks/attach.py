"""The seam between a Run and the rank layer: :func:`open_sink`, the one call ``Run.__init__`` makes.

It detects the job and returns the :class:`~em_dist.sink.Sink` the Run writes through:
the run folder's writer in a plain process, a :class:`RootSink` on rank 0 and a
:class:`PeerSink` elsewhere (a peer builds no writer: it never writes the folder). It
never raises: a failure to set up the transport is one warning, and the run then
records what it can locally. The caller detected the job (``detect_world``) and placed
the run (a new folder, or the one a restarted job continues).
"""

from __future__ import annotations

from typing import Any

from ..sink import Sink
from ..store.attempts import RunPlace
from ..store.files import check_writable
from ..store.writer import RunWriter
from .engines import Meeting, open_channel
from .peer import PeerSink
from .root import RootSink
from .timing import RankTimings
from .world import WorldInfo


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


def open_sink(world: WorldInfo, place: RunPlace, *, meeting_key: str, job_attempt: int, timings: RankTimings,
              flush_interval: float, max_pending: int) -> tuple[Sink, dict[str, Any]]:
    """The sink for the run at ``place`` (rank 0's folder), and the run's ``world`` document.

    ``meeting_key`` is the run's identity that every rank derived alike; ``job_attempt`` the
    launcher's restart count.
    """
    if world.rank == 0:  # the run folder's writer: fail here, at create_run, if nothing can be written
        check_writable(place.path.parent, "create_run")
    if not world.distributed:
        writer = RunWriter(place.path, flush_interval=flush_interval, max_pending=max_pending, attempt=place.attempt)
        return writer, {**world_doc(world, None), "nodes": 1}
    run_doc = {"id": place.id, "alternative_name": place.alternative_name, "path": str(place.path),
               "restarts": place.attempt}
    channel, engine = open_channel(world, Meeting(meeting_key, job_attempt, run_doc), timings)
    doc = world_doc(world, channel.transport if channel is not None and engine != "deferred" else None)
    if world.rank == 0:
        writer = RunWriter(place.path, flush_interval=flush_interval, max_pending=max_pending, attempt=place.attempt)
        return RootSink(writer, channel, timings, run_id=place.id), doc  # type: ignore[arg-type]
    peer = PeerSink(channel, world.rank, timings=timings, max_pending=max_pending,  # type: ignore[arg-type]
                    own_place=place, flush_interval=flush_interval)
    return peer, doc
