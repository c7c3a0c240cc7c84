"""The torch.distributed engine: em_dist's own gloo pairs, built from the job's store.

Why pairs: ``dist.new_group`` is collective over the user's default group (it would
hang a script where only rank 0 creates a run), and one full-mesh gloo group needs
every rank to join. Instead each peer ``r`` and rank 0 build a two-process
``ProcessGroupGloo`` under the store prefix ``em_dist/<nonce>/pair/<r>``, after the
peer announced itself with a ``hello/<r>`` key. Rank 0 thus never waits for a peer
that did not come, and a dead peer breaks only its own pair. The store is the job's:
torchrun's agent store (``TORCHELASTIC_USE_AGENT_STORE``, reached as a client at
``MASTER_ADDR:MASTER_PORT``) or the default group's store. Nothing here touches the
user's groups; each pair is used from one thread only.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import threading
import time
from datetime import timedelta
from typing import Any, Callable

from .channel import LinkClosed
from .frames import Wire
from .timing import RankTimings

_live: set[Any] = set()
_live_lock = threading.Lock()


@atexit.register
def _keep_live_pairs() -> None:
    """Pairs still in use at exit (a silent peer, a rank 0 that never answered) are never destroyed.

    Runs after the runs were finished (atexit is last-in, first-out). A gloo group
    destroyed while the interpreter tears down can abort the process, which would turn a
    finished job into a failed one; the kernel closes its sockets at exit anyway.
    """
    with _live_lock:
        for pg in _live:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(pg))


def _forget(pg: Any) -> None:
    with _live_lock:
        _live.discard(pg)


def agent_store(timeout: float) -> Any:
    """A client connection to torchrun's agent store, or None when this is not a torchrun job."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
    if not addr or not port:
        return None
    from torch.distributed import TCPStore

    return TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=timeout),
                    wait_for_workers=False)


def default_store() -> Any:
    """The user's default group store, or None while the default group is not initialised."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist.distributed_c10d._get_default_store()


class GlooWire(Wire):
    """Length-prefixed byte frames over two-process gloo groups, one per peer."""

    transport = "gloo"

    def __init__(self, rank: int, world_size: int, nonce: str,
                 store_factory: Callable[[], Any], timings: RankTimings, run_doc: dict[str, Any] | None = None) -> None:
        self.rank = rank
        self._run_doc = run_doc or {}
        self.world_size = world_size
        self.nonce = nonce
        self._store_factory = store_factory
        self._timings = timings
        self._store: Any = None
        self._pg: Any = None
        self._tag = 0x454D  # any tag: the pair carries nothing else
        self._threads: dict[int, threading.Thread] = {}
        self._closed = False
        self._created: float | None = None

    def _prefix(self) -> str:
        return f"em_dist/{self.nonce}"

    def _get_store(self, deadline: float) -> Any:
        """The job's store, or None if it did not appear by ``deadline``."""
        while self._store is None:
            if self._closed:
                raise LinkClosed("closed")
            self._store = self._store_factory()
            if self._store is None:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(self._timings.poll)
        return self._store

    def _pair(self, store: Any, peer: int, my_rank: int) -> Any:
        import torch.distributed as dist

        prefixed = dist.PrefixStore(f"{self._prefix()}/pair/{peer}", store)
        pg = dist.ProcessGroupGloo(prefixed, my_rank, 2, self._timings.link_timeout)
        with _live_lock:
            _live.add(pg)
        return pg

    # -- a non-zero rank ------------------------------------------------------------
    def connect(self, wait: float) -> bool:
        if self._pg is not None:
            return True
        if self._created is None:
            self._created = time.monotonic()
        deadline = time.monotonic() + wait
        store = self._get_store(deadline)
        if store is None:
            if time.monotonic() - self._created > self._timings.engine_wait:
                raise TimeoutError("torch.distributed was not initialised in time")
            return False
        self.mark_ready()
        # Build the pair only once rank 0 serves: gloo's rendezvous can't be interrupted, and a
        # thread stuck in it would outlive finish() when rank 0 never makes a run.
        root_key = f"{self._prefix()}/root"
        while not store.check([root_key]):
            if self._closed:
                raise LinkClosed("closed while connecting")
            if time.monotonic() >= deadline:
                return False
            time.sleep(self._timings.poll)
        announced = store.get(root_key)
        if not announced:
            raise LinkClosed("rank 0 already finished this run")
        try:
            self.rank0_run = json.loads(announced)
        except ValueError:
            self.rank0_run = None
        store.set(f"{self._prefix()}/hello/{self.rank}", str(os.getpid()))
        # Build the pair only once rank 0 took this hello: a rank 0 that just stopped serving would
        # leave us in gloo's rendezvous for good.
        accepted = f"{self._prefix()}/accepted/{self.rank}"
        until = time.monotonic() + self._timings.accept_wait
        while not store.check([accepted]):
            if self._closed or time.monotonic() >= until:
                raise LinkClosed("rank 0 stopped serving this run before it accepted this rank")
            time.sleep(self._timings.poll)
        self._pg = self._pair(store, self.rank, 1)
        return True

    def send(self, data: bytes) -> None:
        _send(self._pg, 0, data, self._tag)

    def recv_reply(self, timeout: float) -> bytes | None:
        return _recv(self._pg, 0, self._tag, deadline=time.monotonic() + timeout)

    def release(self) -> None:
        pg, self._pg = self._pg, None
        if pg is not None:
            _forget(pg)
            del pg  # destroyed here, on the thread that used it

    # -- rank 0 ---------------------------------------------------------------------
    def serve(self, on_join, on_frame, on_lost, stop: threading.Event) -> None:
        store = None
        deadline = time.monotonic() + self._timings.engine_wait
        while store is None and not stop.is_set():
            store = self._get_store(min(deadline, time.monotonic() + 1.0))
            if store is None and time.monotonic() > deadline:
                raise TimeoutError("torch.distributed was not initialised in time")
        if store is not None:
            store.set(f"{self._prefix()}/root", json.dumps(self._run_doc))  # rank 0 serves this run
            self.mark_ready()
        waiting = {f"{self._prefix()}/hello/{p}": p for p in range(1, self.world_size)}
        while waiting and not stop.is_set():
            for key in [k for k in waiting if store.check([k])]:
                peer = waiting.pop(key)
                store.set(f"{self._prefix()}/accepted/{peer}", "1")
                on_join(peer)
                thread = threading.Thread(target=self._serve_peer, args=(store, peer, on_frame, on_lost),
                                          name=f"em_dist-gloo-peer-{peer}", daemon=True)
                self._threads[peer] = thread
                thread.start()
            stop.wait(self._timings.poll)

    def _serve_peer(self, store: Any, peer: int, on_frame, on_lost) -> None:
        pg = None
        try:
            pg = self._pair(store, peer, 0)
            while True:
                data = _recv(pg, 1, self._tag)
                reply = on_frame(peer, data)
                if reply is not None:
                    _send(pg, 1, reply, self._tag)
                    return
        except Exception:  # noqa: BLE001 - a broken pair means a lost peer
            on_lost(peer)
        finally:
            if pg is not None:
                _forget(pg)
            del pg  # destroyed on this thread, while the interpreter is alive

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        self._closed = True
        if self.rank == 0 and self._store is not None:
            try:  # a peer that comes later must not wait for this run: it keeps its records itself
                self._store.set(f"{self._prefix()}/root", "")
            except Exception:  # noqa: BLE001 - the store may be gone with the job
                pass
        # A gloo group still alive when the interpreter exits can abort the process ("terminate
        # called without an active exception"), so each pair is destroyed by its own thread once
        # done; wait (bounded) for those whose goodbye was answered.
        deadline = time.monotonic() + self._timings.release_wait
        for peer, thread in self._threads.items():
            if peer in finished:  # it is sending the last ack, then destroys its pair
                thread.join(max(0.0, deadline - time.monotonic()))


def _send(pg: Any, dst: int, data: bytes, tag: int) -> None:
    import torch

    try:
        pg.send([torch.tensor([len(data)], dtype=torch.int64)], dst, tag).wait()
        if data:
            pg.send([torch.frombuffer(bytearray(data), dtype=torch.uint8)], dst, tag).wait()
    except RuntimeError as exc:
        raise LinkClosed(str(exc).splitlines()[0]) from exc


def _recv(pg: Any, src: int, tag: int, deadline: float | None = None) -> bytes | None:
    """One length-prefixed frame from ``src``; with a ``deadline``, None when it did not come by then."""
    import torch

    try:
        header = torch.zeros(1, dtype=torch.int64)
        _wait(pg.recv([header], src, tag), deadline)
        size = int(header.item())
        if size == 0:
            return b""
        body = torch.empty(size, dtype=torch.uint8)
        _wait(pg.recv([body], src, tag), deadline)
    except _TimedOut:
        return None
    except RuntimeError as exc:
        raise LinkClosed(str(exc).splitlines()[0]) from exc
    return body.numpy().tobytes()


class _TimedOut(Exception):
    pass


def _wait(work: Any, deadline: float | None) -> None:
    """Wait for a gloo receive; with a deadline, gloo's own timeout bounds it (the pair is not used
    again after a timeout: only the goodbye's answer is waited for this way)."""
    if deadline is None:
        work.wait()
        return
    left = deadline - time.monotonic()
    if left <= 0:
        raise _TimedOut()
    try:
        work.wait(timedelta(seconds=left))
    except RuntimeError as exc:
        if time.monotonic() >= deadline - 0.01 or "timeout" in str(exc).lower() or "timed out" in str(exc).lower():
            raise _TimedOut() from exc
        raise
