"""A wire that picks its engine later, once the user's script has started one.

For a job launched by mpirun/srun or with plain ``RANK``/``WORLD_SIZE`` where
``create_run`` comes before the script initialises anything: em_dist must not
initialise an engine itself (Open MPI aborts the whole job when only some processes
call ``MPI_Init``, and the default process group is the user's). Each attempt to
connect (peers) or to serve (rank 0) looks whether ``torch.distributed`` is
initialised or ``mpi4py.MPI`` imported, and then uses that engine.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from .channel import LinkClosed
from .frames import OnFrame, OnJoin, OnLost, Wire
from .timing import RankTimings
from .world import ask_engine


class DeferredWire(Wire):
    """Delegates to the first engine that becomes ready: ``choices`` are (ready?, build) pairs in preference order."""

    def __init__(self, rank: int, world_size: int, choices: list[tuple[Callable[[], bool], Callable[[], Wire]]],
                 timings: RankTimings) -> None:
        self.rank = rank
        self.world_size = world_size
        self._choices = choices
        self._timings = timings
        self._created = time.monotonic()
        self._wire: Wire | None = None

    @property
    def transport(self) -> str:  # type: ignore[override]
        return self._wire.transport if self._wire is not None else "?"

    @property
    def engine_started(self) -> bool:  # type: ignore[override]
        return self._wire is not None or any(ready() for ready, _ in self._choices)

    @property
    def rank0_run(self) -> dict[str, Any] | None:  # type: ignore[override]
        return self._wire.rank0_run if self._wire is not None else None

    @property
    def link(self) -> dict[str, Any] | None:
        return self._wire.link if self._wire is not None else None

    @property
    def ready_since(self) -> float | None:
        # no engine started yet: no peer can have joined either, so the join grace starts at close
        return self._wire.ready_since if self._wire is not None else 0.0

    def _resolve(self, until: float) -> Wire | None:
        """The engine's wire once the script started one, else None when ``until`` passed."""
        while self._wire is None:
            for ready, build in self._choices:
                if ready():
                    self._wire = build()
                    break
            else:
                now = time.monotonic()
                if now - self._created > self._timings.engine_wait:
                    raise TimeoutError("the script started no engine (torch.distributed or mpi4py) to reach rank 0")
                if now >= until:
                    return None
                time.sleep(min(self._timings.poll, max(0.0, until - now)))
        return self._wire

    def connect(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        wire = self._resolve(deadline)
        return wire is not None and wire.connect(max(0.0, deadline - time.monotonic()))

    def send(self, data: bytes) -> None:
        if self._wire is None:
            raise LinkClosed("no engine was started, so there is no link to rank 0")
        self._wire.send(data)

    def recv_reply(self, timeout: float) -> bytes | None:
        return self._wire.recv_reply(timeout) if self._wire is not None else None

    def release(self) -> None:
        if self._wire is not None:
            self._wire.release()

    def send_until(self, deadline: float) -> None:
        if self._wire is not None:
            self._wire.send_until(deadline)

    def serve(self, on_join: OnJoin, on_frame: OnFrame, on_lost: OnLost, stop: threading.Event) -> None:
        wire = None
        while wire is None and not stop.is_set():
            wire = self._resolve(time.monotonic() + 1.0)
        if wire is not None:
            wire.run_doc = self.run_doc or wire.run_doc  # a node leader set rank 0's run on this wrapper
            wire.serve(on_join, on_frame, on_lost, stop)

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        if self._wire is not None:
            self._wire.shutdown(finished)


def torch_ready() -> bool:
    """True when the script initialised torch.distributed's default group."""
    tdist = sys.modules.get("torch.distributed")
    return tdist is not None and bool(ask_engine(lambda: tdist.is_available() and tdist.is_initialized(), False))


def mpi_ready() -> bool:
    """True when the script imported mpi4py (which initialises MPI) and MPI is not finalized."""
    mpi = sys.modules.get("mpi4py.MPI")
    return mpi is not None and bool(ask_engine(lambda: mpi.Is_initialized() and not mpi.Is_finalized(), False))
