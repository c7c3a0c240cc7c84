"""The mpi4py engine: point-to-point messages on ``COMM_WORLD`` under em_dist's own tag.

No collectives (a ``Dup`` or barrier would hang a script where only rank 0 creates
a run). A peer sends a small ``hello`` and waits for rank 0's answer before sending
frames, so that no large send is ever left pending when rank 0 is absent. Rank 0
polls with a matched probe instead of posting receives, so at ``MPI_Finalize`` no
request of ours is outstanding; a peer's unanswered ``hello`` is cancelled.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from .channel import LinkClosed
from .frames import Wire

TAG_BASE = 30_000
"""em_dist's tags are ``TAG_BASE + run counter % 2000``: below the 32767 every MPI allows."""

HELLO = b"em_dist-hello"
READY = b"em_dist-ready"


def mpi_module() -> Any:
    """``mpi4py.MPI`` when the script imported it, else None. em_dist never imports it: that
    initialises MPI, and Open MPI aborts the job when only some processes do."""
    return sys.modules.get("mpi4py.MPI")


class MPIWire(Wire):
    """Byte frames over ``COMM_WORLD`` point-to-point, tagged per run."""

    transport = "mpi"

    def __init__(self, rank: int, world_size: int, counter: int) -> None:
        self.rank = rank
        self.world_size = world_size
        self.tag = TAG_BASE + counter % 2000
        self._mpi: Any = None
        self._hello_req: Any = None
        self._closed = False

    def _comm(self) -> Any:
        if self._mpi is None:
            mpi = mpi_module()
            if mpi is None:
                raise RuntimeError("the script has not imported mpi4py")
            if mpi.Query_thread() < mpi.THREAD_MULTIPLE:
                raise RuntimeError("MPI was initialised without THREAD_MULTIPLE; em_dist needs a thread of its own")
            self._mpi = mpi
        if self._mpi.Is_finalized():
            raise LinkClosed("MPI is finalized")
        return self._mpi.COMM_WORLD

    def _probe(self, comm: Any, source: int) -> tuple[int, bytes] | None:
        mpi = self._mpi
        status = mpi.Status()
        msg = comm.Improbe(source=source, tag=self.tag, status=status)
        if msg is None:
            return None
        buf = bytearray(status.Get_count(mpi.BYTE))
        msg.Recv([buf, mpi.BYTE])
        return status.Get_source(), bytes(buf)

    # -- a non-zero rank ------------------------------------------------------------
    def connect(self, wait: float) -> bool:
        comm = self._comm()
        self.mark_ready()
        if self._hello_req is None:
            self._hello_req = comm.Isend([HELLO, self._mpi.BYTE], dest=0, tag=self.tag)
        deadline = time.monotonic() + wait
        delay = 0.001
        while not self._closed:
            if self._probe(comm, 0) is not None:  # rank 0's READY
                self._hello_req.Wait()
                self._hello_req = None
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        raise LinkClosed("closed while connecting")

    def send(self, data: bytes) -> None:
        comm = self._comm()
        comm.Send([data, self._mpi.BYTE], dest=0, tag=self.tag)

    def recv_reply(self, timeout: float) -> bytes | None:
        comm = self._comm()
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not self._closed and time.monotonic() < deadline:
            got = self._probe(comm, 0)
            if got is not None:
                return got[1]
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return None

    # -- rank 0 ---------------------------------------------------------------------
    def serve(self, on_join, on_frame, on_lost, stop: threading.Event) -> None:
        comm = self._comm()
        mpi = self._mpi
        self.mark_ready()
        joined: set[int] = set()
        delay = 0.0005
        while not stop.is_set():
            got = self._probe(comm, mpi.ANY_SOURCE)
            if got is None:
                stop.wait(delay)
                delay = min(delay * 2, 0.02)
                continue
            delay = 0.0005
            peer, data = got
            if peer not in joined:  # its first message is always the hello
                joined.add(peer)
                on_join(peer)
                comm.Send([READY, mpi.BYTE], dest=peer, tag=self.tag)
                continue
            reply = on_frame(peer, data)
            if reply is not None:
                comm.Send([reply, mpi.BYTE], dest=peer, tag=self.tag)

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        self._closed = True
        req, self._hello_req = self._hello_req, None
        if req is not None and self._mpi is not None and not self._mpi.Is_finalized():
            try:
                if not req.Test():
                    req.Cancel()
                    req.Free()
            except Exception:  # noqa: BLE001 - best effort: never block exit
                pass
