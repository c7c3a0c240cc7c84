"""Pick the engine that carries this job's records to rank 0, and the run's nonce.

Preference: torch.distributed when the job is a torchrun job or its default group is
initialised (its store is reachable without any collective); Horovod when launched
by horovodrun; mpi4py when the job is an MPI job; torch.distributed again for a plain
``RANK``/``WORLD_SIZE`` launch, waiting in the background for the user's
``init_process_group``. A torchrun job never imports mpi4py.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
from typing import Any

from .._warn import warn_once
from . import deferred
from .channel import Channel
from .world import WorldInfo

_counter = itertools.count(1)
"""The k-th distributed run of this process. Every rank counts the same way, so the
nonce is agreed without talking."""


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def engine_for(world: WorldInfo) -> str | None:
    """The engine for this job: ``torch``, ``horovod``, ``mpi``, ``later`` (whichever the script
    starts first: torch.distributed or mpi4py) or None (none usable)."""
    if not world.distributed:
        return None
    env = os.environ
    torchrun = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True" and "MASTER_PORT" in env
    if torchrun or deferred.torch_ready():
        return "torch"
    horovod_imported = any(m in sys.modules for m in ("horovod.torch", "horovod.tensorflow", "horovod.keras"))
    if world.launcher == "horovod" or world.source == "horovod" or horovod_imported:
        return "horovod"
    if deferred.mpi_ready():
        return "mpi"
    if _has("torch") or _has("mpi4py"):
        return "later"
    return None


def open_channel(world: WorldInfo, timeout: float) -> tuple[Channel | None, str | None]:
    """Build (not start) the channel for this job; (None, None) when single-process or no engine fits.

    ``timeout`` bounds the background rendezvous. Never raises: trouble is one warning.
    """
    if not world.distributed:
        return None, None
    counter = next(_counter)
    engine = engine_for(world)
    try:
        channel = _build(engine, world, counter, timeout)
    except Exception as exc:  # noqa: BLE001
        channel = None
        warn_once("dist-setup", f"em_dist: could not set up the {engine} transport ({exc!r}); "
                  "each rank's records stay out of rank 0's run except rank 0's own.")
        return None, engine
    if channel is None:
        warn_once("dist-none", f"em_dist: rank {world.rank} of {world.world_size}, but no engine to reach "
                  "rank 0 (torch.distributed, Horovod or mpi4py); only rank 0's records are kept.")
    return channel, engine


def _build(engine: str | None, world: WorldInfo, counter: int, timeout: float) -> Channel | None:
    from .frames import P2PChannel

    if engine == "torch":
        return P2PChannel(_gloo_wire(world, counter, timeout))
    if engine == "mpi":
        return P2PChannel(_mpi_wire(world, counter, timeout))
    if engine == "later":
        return P2PChannel(deferred.LazyWire(world.rank, world.world_size, [
            (deferred.torch_ready, lambda: _gloo_wire(world, counter, timeout)),
            (deferred.mpi_ready, lambda: _mpi_wire(world, counter, timeout)),
        ], timeout))
    if engine == "horovod":
        try:
            from .horovod import HorovodChannel  # written beside this module; absent in some builds
        except ImportError:
            return None
        return _make_horovod(HorovodChannel, world, counter, timeout)
    return None


def _gloo_wire(world: WorldInfo, counter: int, timeout: float) -> Any:
    from . import gloo

    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        run_id = os.environ.get("TORCHELASTIC_RUN_ID", "run")
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        nonce = f"{run_id}/{restart}/{counter}"
        factory = lambda: gloo.agent_store(timeout)  # noqa: E731
    else:
        nonce = f"job/{counter}"
        factory = gloo.default_store
    return gloo.GlooWire(world.rank, world.world_size, nonce, factory, timeout)


def _mpi_wire(world: WorldInfo, counter: int, timeout: float) -> Any:
    from .mpi import MPIWire

    return MPIWire(world.rank, world.world_size, counter, timeout)


def _make_horovod(cls: Any, world: WorldInfo, counter: int, timeout: float) -> Channel:
    return cls(rank=world.rank, world_size=world.world_size)
