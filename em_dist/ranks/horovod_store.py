"""Under Horovod, em_dist's records travel *beside* Horovod's cycle, not inside it.

Horovod runs every collective through one background negotiation cycle; em_dist's
alltoall rounds (:mod:`em_dist.ranks.horovod`) shared it, and a loop of 200 small
allreduces went from 3.1 s to 5.0 s median at 4 ranks (issue 8, item 9). Horovod is
now used for discovery only:

- ``horovodrun --gloo`` (the launcher sets ``HOROVOD_GLOO_RENDEZVOUS_ADDR``/``_PORT``):
  rank 0 hosts a ``torch.distributed.TCPStore`` on a free port and publishes its address
  in Horovod's own rendezvous key-value store (HTTP, scope ``em_dist``); the other ranks
  read it and connect as clients. em_dist's gloo pairs (:class:`~em_dist.ranks.gloo.GlooWire`)
  then carry the frames exactly as under torchrun. Needs no ``hvd.init()`` and touches
  no Horovod state.
- ``horovodrun --mpi`` with MPI initialised by ``hvd.init()`` at ``MPI_THREAD_MULTIPLE``:
  point-to-point messages on ``COMM_WORLD`` (:class:`~em_dist.ranks.mpi.MPIWire`);
  Horovod's own traffic runs on its duplicate of that communicator.
- otherwise (``--mpi`` without thread support, or ``create_run`` before ``hvd.init()``
  under ``--mpi``): the alltoall rounds, with one warning saying what it costs.
"""

from __future__ import annotations

import os
import socket
import sys
from datetime import timedelta
from typing import Any

from .timing import RankTimings
from .world import QUERY_ERRORS

SCOPE = "em_dist"
"""The key-value scope em_dist uses in Horovod's rendezvous server (its own, apart from Horovod's)."""


def rendezvous() -> tuple[str, int] | None:
    """Horovod's rendezvous server (``horovodrun --gloo``), or None."""
    addr, port = os.environ.get("HOROVOD_GLOO_RENDEZVOUS_ADDR"), os.environ.get("HOROVOD_GLOO_RENDEZVOUS_PORT")
    if not addr or not port:
        return None
    try:
        return addr, int(port)
    except ValueError:
        return None


class RendezvousStore:
    """A ``store_factory`` for :class:`~em_dist.ranks.gloo.GlooWire` under ``horovodrun --gloo``.

    Called repeatedly by the wire until it returns a store: rank 0 creates and publishes
    its store on the first call; another rank returns None until rank 0's address is
    published, then a client of it.
    """

    def __init__(self, rank: int, nonce: str, server: tuple[str, int], timings: RankTimings) -> None:
        self.rank = rank
        self.key = "store." + nonce.replace("/", ".")  # the KV server splits its paths on "/"
        self.server = server
        self._timings = timings
        self._store: Any = None

    def __call__(self) -> Any:
        if self._store is None:
            self._store = self._host() if self.rank == 0 else self._join()
        return self._store

    def _host(self) -> Any:
        from horovod.runner.http.http_client import put_data_into_kvstore
        from torch.distributed import TCPStore  # type: ignore[attr-defined]  # torch's stubs don't re-export it

        store = TCPStore(_advertised_host(), 0, is_master=True, wait_for_workers=False,
                         timeout=timedelta(seconds=self._timings.engine_wait))
        put_data_into_kvstore(*self.server, SCOPE, self.key, (_advertised_host(), store.port))
        return store

    def _join(self) -> Any:
        from horovod.runner.http.http_client import read_data_from_kvstore
        from torch.distributed import TCPStore  # type: ignore[attr-defined]  # torch's stubs don't re-export it

        try:
            host, port = read_data_from_kvstore(*self.server, SCOPE, self.key)
        except RuntimeError:  # 404 until rank 0 published (or never, in a rank-0-only script)
            return None
        try:  # a rank 0 that finished and exited took its store along: don't let TCPStore retry for minutes
            socket.create_connection((host, int(port)), timeout=STORE_PROBE).close()
        except OSError:
            return None
        return TCPStore(host, int(port), is_master=False, wait_for_workers=False,
                        timeout=timedelta(seconds=self._timings.engine_wait))


STORE_PROBE = 2.0
"""Seconds to reach rank 0's published store before treating it as gone (it is on the job's network)."""


def mpi_with_threads() -> bool:
    """True when Horovod initialised MPI (``--mpi``) at ``MPI_THREAD_MULTIPLE``, so em_dist may
    talk on ``COMM_WORLD`` from its own thread. Imports mpi4py only then (MPI is initialised on
    every rank already, so the import initialises nothing)."""
    hvd = sys.modules.get("horovod.torch")
    try:
        if hvd is None or not hvd.is_initialized() or not hvd.mpi_enabled() or not hvd.mpi_threads_supported():
            return False
        from mpi4py import MPI

        return MPI.Is_initialized() and MPI.Query_thread() >= MPI.THREAD_MULTIPLE
    except QUERY_ERRORS:  # an older Horovod, mpi4py missing: the rounds then
        return False


def _advertised_host() -> str:
    """How the other ranks reach rank 0: the host name horovodrun gave it (``-H``), else ours."""
    return os.environ.get("HOROVOD_HOSTNAME") or socket.gethostname()
