"""A wire that picks its engine later, once the user's script has started one.

For a job launched by mpirun/srun or with plain ``RANK``/``WORLD_SIZE`` where
``create_run`` comes before the script initialises anything: em_dist must not
initialise an engine itself (Open MPI aborts the whole job when only some processes
call ``MPI_Init``, and the default process group is the user's). The background
thread waits for ``torch.distributed`` to be initialised or ``mpi4py.MPI`` to be
imported, then uses that engine.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable

from .frames import Wire

POLL = 0.1


class LazyWire(Wire):
    """Delegates to the first engine that becomes ready: ``choices`` are (ready?, build) pairs in preference order."""

    def __init__(self, rank: int, world_size: int, choices: list[tuple[Callable[[], bool], Callable[[], Wire]]],
                 wait: float) -> None:
        self.rank = rank
        self.world_size = world_size
        self._choices = choices
        self._wait = wait
        self._wire: Wire | None = None
        self._stop = threading.Event()

    @property
    def transport(self) -> str | None:  # type: ignore[override]
        return self._wire.transport if self._wire is not None else None

    @property
    def ready_since(self) -> float | None:
        # no engine started yet: no peer can have joined either, so the join grace starts at close
        return self._wire.ready_since if self._wire is not None else 0.0

    def _resolve(self, stop: threading.Event | None = None) -> Wire:
        deadline = time.monotonic() + self._wait
        while self._wire is None:
            for ready, build in self._choices:
                if ready():
                    self._wire = build()
                    break
            else:
                if time.monotonic() > deadline:
                    raise TimeoutError("the script started no engine (torch.distributed or mpi4py) to reach rank 0")
                if (stop is not None and stop.is_set()) or self._stop.wait(POLL):
                    raise TimeoutError("closed before an engine was started")
        return self._wire

    def connect(self) -> None:
        self._resolve().connect()

    def send(self, data: bytes) -> None:
        self._resolve().send(data)

    def recv_reply(self, timeout: float) -> bytes | None:
        return self._resolve().recv_reply(timeout)

    def serve(self, on_join, on_frame, on_lost, stop: threading.Event) -> None:
        self._resolve(stop).serve(on_join, on_frame, on_lost, stop)

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        self._stop.set()
        if self._wire is not None:
            self._wire.shutdown(finished)


def torch_ready() -> bool:
    tdist = sys.modules.get("torch.distributed")
    try:
        return bool(tdist is not None and tdist.is_available() and tdist.is_initialized())
    except Exception:  # noqa: BLE001
        return False


def mpi_ready() -> bool:
    mpi = sys.modules.get("mpi4py.MPI")
    try:
        return bool(mpi is not None and mpi.Is_initialized() and not mpi.Is_finalized())
    except Exception:  # noqa: BLE001
        return False
