"""The mpi4py engine: point-to-point messages on ``COMM_WORLD`` under em_dist's own tag.

No collectives (a ``Dup`` or barrier would hang a script where only rank 0 creates
a run). A peer sends a small ``hello`` and waits for rank 0's answer before sending
frames, so that no large send is ever left pending when rank 0 is absent. Rank 0
polls with a matched probe instead of posting receives, so at ``MPI_Finalize`` no
request of ours is outstanding; a peer's unanswered ``hello`` is cancelled.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import zlib
from typing import Any

from .._warn import warn_once
from ..errors import LINK_ERRORS
from .channel import LinkClosed
from .frames import OnFrame, OnJoin, OnLost, Wire

TAG_BASE = 30_000
"""em_dist's tags lie between this and the MPI's ``TAG_UB`` (32767 at least, 2**31 - 1 in Open MPI)."""

HELLO = b"em_dist-hello"
READY = b"em_dist-ready"


def mpi_module() -> Any:
    """``mpi4py.MPI`` when the script imported it, else None. em_dist never imports it: that
    initialises MPI, and Open MPI aborts the job when only some processes do."""
    return sys.modules.get("mpi4py.MPI")


class MPIWire(Wire):
    """Byte frames over ``COMM_WORLD`` point-to-point, tagged per run."""

    transport = "mpi"

    def __init__(self, rank: int, world_size: int, key: str, run_doc: dict[str, Any] | None = None,
                 root: int = 0) -> None:
        self.rank = rank
        self.world_size = world_size
        self.key = key
        self.root = root
        """The rank this wire reports to or serves as: rank 0, or a node leader (:mod:`.relay`)."""
        self.tag = -1  # known once MPI is (its TAG_UB bounds the tag space)
        self.run_doc = run_doc or {}
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
            # The run's tag comes from its identity, so every rank picks it alone; rank 0 also
            # checks the identity in each hello, so even a clash of tags can't mix two runs.
            # A leader serves its node on the next tag, so that what its node sends it is never taken
            # for rank 0's answers to the leader itself (both arrive at the leader).
            tag_ub = mpi.COMM_WORLD.Get_attr(mpi.TAG_UB) or 32767
            span = max(2, tag_ub - TAG_BASE) // 2
            self.tag = TAG_BASE + 2 * (zlib.crc32(self.key.encode()) % span) + (self.root != 0)
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
            self._hello = HELLO + self.key.encode()
            self._hello_req = comm.Isend([self._hello, self._mpi.BYTE], dest=self.root, tag=self.tag)
        deadline = time.monotonic() + wait
        delay = 0.001
        while not self._closed:
            got = self._probe(comm, self.root)
            if got is not None and got[1].startswith(READY):  # rank 0's READY, with its run
                try:
                    self.rank0_run = json.loads(got[1][len(READY):] or b"{}")
                except ValueError:
                    self.rank0_run = None
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
        comm.Send([data, self._mpi.BYTE], dest=self.root, tag=self.tag)

    def recv_reply(self, timeout: float) -> bytes | None:
        comm = self._comm()
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not self._closed and time.monotonic() < deadline:
            got = self._probe(comm, self.root)
            if got is not None:
                return got[1]
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return None

    # -- rank 0 ---------------------------------------------------------------------
    def serve(self, on_join: OnJoin, on_frame: OnFrame, on_lost: OnLost, stop: threading.Event) -> None:
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
                if data != HELLO + self.key.encode():
                    warn_once(f"mpi-clash-{peer}", f"em_dist: rank {peer} said hello for another run on this "
                              "run's MPI tag; ignored (its records stay out of this run).")
                    continue
                joined.add(peer)
                on_join(peer)
                comm.Send([READY + json.dumps(self.run_doc).encode(), mpi.BYTE], dest=peer, tag=self.tag)
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
            except LINK_ERRORS:  # best effort: never block exit (MPI.Exception is a RuntimeError)
                pass
