"""Which engine carries a job's records to rank 0: a table of engines, tried in order.

- ``torch``: a torchrun job (its agent store is reachable without any collective) or a
  script whose default process group is initialised; em_dist's own gloo pairs.
- ``horovod``: launched by horovodrun, or Horovod imported; Horovod finds the ranks, the
  records travel beside its cycle (gloo pairs or MPI; alltoall rounds as a last resort).
  gloo pairs and rounds only in a script that imported torch: em_dist never imports torch
  itself, except for torch.distributed's store under torchrun.
- ``mpi``: the script imported mpi4py; point-to-point on ``COMM_WORLD``.
- ``deferred``: a job whose script has not started an engine yet (``create_run``
  before ``init_process_group``, an MPI job before ``import mpi4py``); the channel waits
  in the background for torch.distributed or mpi4py, whichever comes first.

A torchrun job never imports mpi4py, and no engine is ever initialised by em_dist.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .._warn import warn_once
from . import deferred, relay
from .channel import PeerChannel, RootChannel
from .frames import FramePeer, FrameRoot, Wire
from .timing import RankTimings
from .world import WorldInfo

Channel = RootChannel | PeerChannel


@dataclass(frozen=True)
class Meeting:
    """What every rank of the job agrees on for one run, without talking (see :mod:`.identity`)."""

    key: str
    """The run's identity: rank 0 and each peer meet under it."""
    attempt: int
    """The launcher's restart count: a restarted job meets afresh, never on a dead attempt's keys."""
    run_doc: dict[str, Any]
    """Rank 0's announcement to the peers that join: ``id``, ``alternative_name``, ``path``."""

    @property
    def nonce(self) -> str:
        return f"{self.key}/{self.attempt}"


@dataclass(frozen=True)
class Engine:
    """One way to reach rank 0: when it applies to a job, and how to build this rank's end."""

    name: str
    applies: Callable[[WorldInfo], bool]
    build: Callable[[WorldInfo, Meeting, RankTimings], Channel]


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _torchrun_job(world: WorldInfo) -> bool:
    env = os.environ
    return (env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_PORT" in env) or deferred.torch_ready()


def _horovod_job(world: WorldInfo) -> bool:
    imported = any(m in sys.modules for m in ("horovod.torch", "horovod.tensorflow", "horovod.keras"))
    return world.launcher == "horovodrun" or world.source == "horovod" or imported


def _no_engine_yet(world: WorldInfo) -> bool:
    return _has("torch") or _has("mpi4py")


WireFor = Callable[[int], Wire]
"""Builds this rank's wire to (or, on that rank, serving as) the given root: rank 0 or a node leader."""


def _frames(world: WorldInfo, wire_for: WireFor, timings: RankTimings) -> Channel:
    """This rank's end of the frame protocol: rank 0 serves; a node leader relays its node
    (:mod:`.relay`); every other rank reports to its leader, or to rank 0 on rank 0's node."""
    if world.rank == 0:
        return FrameRoot(wire_for(0), release_wait=timings.release_wait)
    leader = relay.leader_of(world)
    if leader == 0:
        return FramePeer(wire_for(0), heartbeat=timings.heartbeat, compress=compress_frames(world))
    if leader == world.rank:
        up = FramePeer(wire_for(0), heartbeat=timings.heartbeat, compress=compress_frames(world))
        return relay.RelayPeer(up, wire_for(leader), relay.members_of(world, leader), timings)
    # a member: same node as its leader, so its frames go uncompressed
    return FramePeer(relay.ViaLeader(wire_for(leader), lambda: wire_for(0), timings), heartbeat=timings.heartbeat)


def compress_frames(world: WorldInfo, env: Mapping[str, str] | None = None) -> bool:
    """Whether this rank compresses what it sends rank 0: a rank on another node than rank 0's
    does (a node leader, or any such rank when relaying is off), unless ``EM_DIST_COMPRESS=0``
    (a fast network, or CPUs too busy to spare)."""
    env = os.environ if env is None else env
    size = relay.node_size(env)
    node = world.rank // size if size is not None else world.node_rank
    return node != 0 and env.get("EM_DIST_COMPRESS", "1").strip() != "0"


def _gloo_wire(world: WorldInfo, meeting: Meeting, timings: RankTimings, root: int = 0) -> Wire:
    from . import gloo

    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # Imported now, on the thread that calls create_run: a rank that dies a moment later
        # connects from its exit path, where an import that registers an atexit hook (torch's
        # concurrent.futures) raises "can't register atexit after shutdown".
        import torch.distributed  # noqa: F401

        # each store call (and each try to reach the store) bounded by accept_wait, not by the engine
        # wait: a host cut off from the store's must not hold a thread of ours in a call for minutes
        factory: Callable[[], Any] = lambda: gloo.agent_store(timings.accept_wait)  # noqa: E731
    else:
        factory = gloo.default_store
    return gloo.GlooWire(world.rank, world.world_size, meeting.nonce, factory, timings, meeting.run_doc, root=root)


def _mpi_wire(world: WorldInfo, meeting: Meeting, timings: RankTimings, root: int = 0) -> Wire:
    from .mpi import MPIWire

    return MPIWire(world.rank, world.world_size, meeting.nonce, meeting.run_doc, root=root)


def _build_torch(world: WorldInfo, meeting: Meeting, timings: RankTimings) -> Channel:
    return _frames(world, lambda root: _gloo_wire(world, meeting, timings, root), timings)


def _build_mpi(world: WorldInfo, meeting: Meeting, timings: RankTimings) -> Channel:
    return _frames(world, lambda root: _mpi_wire(world, meeting, timings, root), timings)


def _build_deferred(world: WorldInfo, meeting: Meeting, timings: RankTimings) -> Channel:
    def wire_for(root: int) -> Wire:
        return deferred.DeferredWire(world.rank, world.world_size, [
            (deferred.torch_ready, lambda: _gloo_wire(world, meeting, timings, root)),
            (deferred.mpi_ready, lambda: _mpi_wire(world, meeting, timings, root)),
        ], timings)

    return _frames(world, wire_for, timings)


def _build_horovod(world: WorldInfo, meeting: Meeting, timings: RankTimings) -> Channel:
    """Horovod finds the ranks; the records travel beside its cycle (see ranks/horovod_store.py)."""
    from . import horovod_store

    # gloo pairs (torch's TCPStore) and Horovod rounds (torch tensors) need torch: only in a script
    # that imported it. Imported by em_dist, torch costs seconds and prints tracebacks at a failing rank's exit.
    torch_loaded = "torch" in sys.modules
    server = horovod_store.rendezvous() if torch_loaded else None
    if server is not None:  # horovodrun --gloo: gloo pairs on a store published through Horovod's rendezvous
        from . import gloo

        store = horovod_store.RendezvousStore(world.rank, meeting.nonce, server, timings)
        return _frames(world, lambda root: gloo.GlooWire(world.rank, world.world_size, meeting.nonce, store, timings,
                                                         meeting.run_doc, root=root), timings)
    if horovod_store.mpi_with_threads():  # horovodrun --mpi, hvd.init() done with MPI_THREAD_MULTIPLE
        return _build_mpi(world, meeting, timings)
    if not torch_loaded:  # as an MPI job before mpi4py: whichever engine the script starts, else rank 0's folder
        return _build_deferred(world, meeting, timings)
    from .horovod import HorovodPeer, HorovodRoot

    warn_once("horovod-rounds", "em_dist: records travel in Horovod alltoall rounds, which share Horovod's "
              "negotiation cycle and slow training; under horovodrun --mpi call create_run after hvd.init() "
              "with MPI_THREAD_MULTIPLE available (or use horovodrun --gloo) for em_dist's own links.")
    if world.rank == 0:
        return HorovodRoot(rank=0, world_size=world.world_size, nonce=meeting.nonce, timings=timings,
                           run_doc=meeting.run_doc)
    return HorovodPeer(rank=world.rank, world_size=world.world_size, nonce=meeting.nonce, timings=timings)


ENGINES: tuple[Engine, ...] = (
    Engine("torch", _torchrun_job, _build_torch),
    Engine("horovod", _horovod_job, _build_horovod),
    Engine("mpi", lambda world: deferred.mpi_ready(), _build_mpi),
    Engine("deferred", _no_engine_yet, _build_deferred),
)
"""In order of preference: the first that applies to the job carries its records."""


def engine_for(world: WorldInfo) -> Engine | None:
    """The engine for this job, or None (single process, or nothing usable installed)."""
    if not world.distributed:
        return None
    return next((e for e in ENGINES if e.applies(world)), None)


def open_channel(world: WorldInfo, meeting: Meeting, timings: RankTimings) -> tuple[Channel | None, str | None]:
    """Build (not start) this rank's end of the channel for the run ``meeting`` names, and name the
    engine; (None, None) when single-process. Never raises: trouble is one warning, and the rank
    then records locally."""
    if not world.distributed:
        return None, None
    engine = engine_for(world)
    if engine is None:
        warn_once("dist-none", f"em_dist: rank {world.rank} of {world.world_size}, but no engine to reach "
                  "rank 0 (torch.distributed, Horovod or mpi4py); only rank 0's records are kept.")
        return None, None
    try:
        return engine.build(world, meeting, timings), engine.name
    except Exception as exc:  # noqa: BLE001
        warn_once("dist-setup", f"em_dist: could not set up the {engine.name} transport ({exc!r}); "
                  "each rank's records stay out of rank 0's run except rank 0's own.")
        return None, engine.name
