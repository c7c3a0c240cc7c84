"""The seam between a Run and the distributed machinery: one call in ``Run.__init__``.

``attach(run, writer)`` detects the job, fills ``run.world`` and returns the sink the
Run should use: the writer itself in a plain process, a :class:`RootSink` on rank 0
and a :class:`PeerSink` elsewhere. It never raises: a failure to set up the transport
is one warning, and the run then records what it can locally.
"""

from __future__ import annotations

import os
from typing import Any

from .._warn import warn_once
from ..store.writer import RunWriter
from . import signals
from .world import WorldInfo, detect_world
from .engines import open_channel
from .sinks import PeerSink, RootSink

STORE_WAIT = 600.0
"""How long a rank's background thread waits for a store or engine to appear (e.g. a
``create_run`` placed before ``init_process_group`` in a plain RANK/WORLD_SIZE launch)."""


def world_doc(world: WorldInfo, engine: str | None) -> dict[str, Any]:
    """The ``world`` entry of run.json and platform.json."""
    return {
        "size": world.world_size,
        "rank": world.rank,
        "local_rank": world.local_rank,
        "nodes": world.nodes,
        "launcher": world.launcher,
        "backend": None,
        "transport": {"torch": "gloo", "mpi": "mpi", "horovod": "horovod"}.get(engine or "", None),
    }


def attach(run: Any, writer: RunWriter) -> Any:
    """Return the sink ``run`` writes through; set ``run.world``. Never raises."""
    try:
        world = detect_world()
    except Exception as exc:  # noqa: BLE001
        warn_once("detect-world", f"em_dist: could not read the job layout ({exc!r}); recording as one process")
        return writer
    if not world.distributed:
        run.world = {**run.world, "local_rank": world.local_rank}
        return writer
    channel, engine = open_channel(world, max(STORE_WAIT, float(run.dist_timeout)))
    run.world = world_doc(world, engine if channel is not None else None)
    sink: Any
    if world.rank == 0:
        sink = RootSink(writer, channel, run)
    else:
        sink = PeerSink(channel, world.rank, writer)
    _watch_signals(run, sink)
    return sink


def _watch_signals(run: Any, sink: Any) -> None:
    def on_signal(name: str) -> None:
        sink.signalled = True  # caps the waits: the launcher kills for good soon
        if run._finished or run._finish_lock.locked():
            sink.flush(2.0)  # finish() is under way on this thread: save what we can, don't re-enter
            return
        run._finish("Failed", f"signal: {name}")

    if os.environ.get("EM_DIST_NO_SIGNALS") == "1":
        return
    signals.add_callback(on_signal)
    sink.on_close.append(lambda: signals.remove_callback(on_signal))
