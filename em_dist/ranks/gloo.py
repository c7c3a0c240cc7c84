"""The torch.distributed engine: em_dist's own gloo pairs, built from the job's store.

Why pairs: ``dist.new_group`` is collective over the user's default group (it would
hang a script where only rank 0 creates a run), and one full-mesh gloo group needs
every rank to join. Instead each peer ``r`` and the rank it reports to (rank 0, or its
node leader under ``via/<leader>``, see :mod:`.relay`) build a two-process
``ProcessGroupGloo`` under the store prefix ``em_dist/<nonce>/pair/<r>``, after the
peer announced itself with a numbered ``hello#<n>`` key. The server thus never waits for
a peer that did not come, reads only new hellos, and a dead peer breaks only its own
pair. The store is the job's: torchrun's agent store (``TORCHELASTIC_USE_AGENT_STORE``,
reached as a client at ``MASTER_ADDR:MASTER_PORT``) or the default group's store.
Nothing here touches the user's groups; each pair is used by one thread at a time (handed over whole).
"""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import queue
import threading
import time
from datetime import timedelta
from typing import Any, Callable

from .._warn import warn_once
from ..errors import LINK_ERRORS, WireVersionError
from ..platform.host import process_running
from . import bind
from .bind import Bind
from .channel import LinkClosed
from .frames import OnFrame, OnJoin, OnLost, Wire
from .messages import WIRE_VERSION
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


_devices: dict[tuple[str | None, str], Any] = {}


def _serving_device(where: Bind) -> Any:
    """The gloo device (one event loop thread) that all of a serving rank's pairs on one address
    share, for every run of the process: one, or two when local peers reach rank 0 on a loopback
    address and others over the network. Created once and never destroyed: a device destroyed while
    the interpreter tears down can abort the process like a pair (see above)."""
    key = (where.interface, where.address)
    with _live_lock:
        if key not in _devices:
            device = where.device()
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(device))
            _devices[key] = device
        return _devices[key]


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
    from torch.distributed import TCPStore  # type: ignore[attr-defined]  # torch's stubs don't re-export it

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
                 store_factory: Callable[[], Any], timings: RankTimings, run_doc: dict[str, Any] | None = None,
                 root: int = 0) -> None:
        self.rank = rank
        self.root = root
        self.run_doc = run_doc or {}
        self.world_size = world_size
        self.nonce = nonce
        self._store_factory = store_factory
        self._timings = timings
        self._store: Any = None
        self._pg: Any = None
        self._tag = 0x454D  # any tag: the pair carries nothing else
        self._acceptor: threading.Thread | None = None
        self._receiver: threading.Thread | None = None
        self._builders: list[threading.Thread] = []  # rank 0: pairs being built (see _build)
        self._answering: list[threading.Thread] = []  # rank 0: goodbyes being answered (see _reply)
        self._quit = threading.Event()  # set at shutdown: the serving threads end (see shutdown)
        self._finished: set[int] = set()
        self._closed = False
        self._created: float | None = None
        self._link = 0
        """A peer: how many links it announced (1 for the first; a link rebuilt after it broke is the next)."""
        self.resume_after: int | None = None
        """A peer, once accepted: the newest of its record numbers rank 0 had when it accepted this link."""
        self._until: float | None = None  # a peer's last pass: no send outlives this (time.monotonic())
        self._bind: Bind | None = None  # a peer: where its pair listens
        self._serving: set[Bind] = set()  # a server: where its pairs listen (the accepting thread adds)

    def _prefix(self) -> str:
        """The run's keys; a node leader's (:mod:`.relay`) under ``via/<leader>``."""
        return f"em_dist/{self.nonce}" if self.root == 0 else f"em_dist/{self.nonce}/via/{self.root}"

    def _get_store(self, deadline: float) -> Any:
        """The job's store, or None if it did not appear by ``deadline``."""
        while self._store is None:
            if self._closed:
                raise LinkClosed("closed")
            try:
                self._store = self._store_factory()
            except LINK_ERRORS:  # not reachable now (a partition): looked for again, until the deadline
                self._store = None
            if self._store is None:
                if time.monotonic() >= deadline:
                    return None
                time.sleep(self._timings.poll)
        return self._store

    def _pair(self, store: Any, peer: int, my_rank: int, device: Any, build_wait: float | None = None,
              link: int = 1) -> Any:
        """The two-process group with ``peer`` over ``device`` (bound where :mod:`.bind` chose); ``link``
        numbers a peer's links (a link rebuilt after it broke has a store prefix of its own). No
        worker threads (send/recv run on gloo's event loop), and on rank 0 one device (one event
        loop) per address for all pairs. ``build_wait`` (rank 0)
        bounds the set-up, and waits afterwards get :attr:`RankTimings.silence`; a peer's waits
        get :attr:`RankTimings.link_timeout`."""
        import torch.distributed as dist

        prefixed = dist.PrefixStore(  # type: ignore[attr-defined]
            f"{self._prefix()}/pair/{peer}" + (f"/{link}" if link > 1 else ""), store)
        options = dist.ProcessGroupGloo._Options()  # type: ignore[attr-defined]  # the options' private class
        options._threads = 0
        options._devices = [device]
        options._timeout = timedelta(seconds=build_wait) if build_wait is not None else self._timings.link_timeout
        pg = dist.ProcessGroupGloo(prefixed, my_rank, 2, options)
        if build_wait is not None:
            # rank 0 waits on a pair only for the rest of a frame whose header arrived, or to hand
            # over a goodbye's answer: a peer that stalls that long is treated as gone, rather than
            # holding the one receiving thread (and every other peer) for a day
            pg.set_timeout(timedelta(seconds=self._timings.silence))
        with _live_lock:
            _live.add(pg)
        return pg

    @property
    def link(self) -> dict[str, Any] | None:
        """Where this rank's pair listens (a peer), and where its served pairs listen (``serves``)."""
        out: dict[str, Any] = self._bind.record() if self._bind is not None else {}
        serving = sorted(list(self._serving), key=lambda b: b.address)  # a copy: the accepting thread adds
        if serving:
            out["serves"] = [b.record() for b in serving]
        return out or None

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
        wire = (self.rank0_run or {}).pop("wire", None)
        if wire != WIRE_VERSION:
            raise WireVersionError(f"rank 0 speaks em_dist wire version {wire!r}, this rank {WIRE_VERSION}: install "
                                   "the same em_dist version on every node of the job")
        # Listen where the job's traffic goes (:mod:`.bind`); the hello says where, so that the
        # server binds its side of the pair on the route back to this address.
        self._bind = bind.choose(bind.store_host(store))
        # Hellos are numbered (one counter per server), so a server reads only the new ones, whatever
        # the world size and whoever comes (a relay's members, a member whose leader is gone).
        self._link += 1
        number = store.add(f"{self._prefix()}/hellos", 1)
        store.set(f"{self._prefix()}/hello#{number}",
                  json.dumps({"rank": self.rank, "pid": os.getpid(), "pids": _pid_space(), "wire": WIRE_VERSION,
                              "link": self._link, "addr": self._bind.address}))
        # Build the pair only once rank 0 took this hello: a rank 0 that just stopped serving would
        # leave us in gloo's rendezvous for good.
        accepted = f"{self._prefix()}/accepted/{self.rank}" + (f"/{self._link}" if self._link > 1 else "")
        until = time.monotonic() + self._timings.accept_wait
        while not store.check([accepted]):
            if self._closed or time.monotonic() >= until:
                raise LinkClosed("rank 0 stopped serving this run before it accepted this rank")
            time.sleep(self._timings.poll)
        try:
            self.resume_after = int(store.get(accepted))
        except ValueError:
            self.resume_after = None
        self._pg = self._pair(store, self.rank, 1, self._bind.device(), link=self._link)
        return True

    def reset(self) -> None:
        """The link broke: drop it (on the thread that used it); the next :meth:`connect` announces a
        new one, which rank 0 accepts in place of the old."""
        self.release()

    def send(self, data: bytes) -> None:
        """One frame to the server, bounded: a frame that can't drain within the silence bound (the
        link is cut, or the server stopped reading) closes the pair and raises :class:`LinkClosed`,
        so the sending thread rebuilds the link instead of waiting on it for good."""
        bound = self._timings.silence
        if self._until is not None:
            bound = max(0.001, min(bound, self._until - time.monotonic()))
        _send(self._pg, 0, data, self._tag, timeout=bound)

    def send_until(self, deadline: float) -> None:
        self._until = deadline

    def recv_reply(self, timeout: float) -> bytes | None:
        return _recv(self._pg, 0, self._tag, deadline=time.monotonic() + timeout)

    def release(self) -> None:
        pg, self._pg = self._pg, None
        if pg is not None:
            _forget(pg)
            del pg  # destroyed here, on the thread that used it

    # -- rank 0 ---------------------------------------------------------------------
    def serve(self, on_join: OnJoin, on_frame: OnFrame, on_lost: OnLost, stop: threading.Event) -> None:
        """Two threads whatever the number of peers: one receives every peer's frames, one accepts
        peers and builds their pairs (gloo's pair set-up blocks until the peer connects)."""
        store = None
        deadline = time.monotonic() + self._timings.engine_wait
        while store is None and not stop.is_set():
            store = self._get_store(min(deadline, time.monotonic() + 1.0))
            if store is None and time.monotonic() > deadline:
                raise TimeoutError("torch.distributed was not initialised in time")
        if store is None:
            return
        store.set(f"{self._prefix()}/root", json.dumps({**self.run_doc, "wire": WIRE_VERSION}))  # served here
        self.mark_ready()
        built: queue.SimpleQueue[_Link | tuple[int, int]] = queue.SimpleQueue()
        self._acceptor = threading.Thread(target=self._accept, args=(store, on_join, built, stop),
                                          name="em_dist-gloo-accept", daemon=True)
        self._acceptor.start()
        self._receiver = threading.Thread(target=self._receive, args=(built, on_frame, on_lost, stop),
                                          name="em_dist-gloo-recv", daemon=True)
        self._receiver.start()
        stop.wait()

    def _accept(self, store: Any, on_join: OnJoin, built: queue.SimpleQueue[_Link | tuple[int, int]], stop: threading.Event) -> None:
        """Take each peer's hello, accept it and build rank 0's side of its pair (each on its own thread)."""
        hellos = _Hellos(store, self._prefix(), self._timings)
        seen: dict[int, int] = {}  # peer -> its newest link accepted
        while not stop.is_set() and not self._quit.is_set() and not (self.expected and self.expected <= seen.keys()):
            accepted = []
            for doc in hellos.new():  # accept all first, so each pair is being built on the peer's side meanwhile
                peer, link = doc.get("rank"), doc.get("link", 1)
                if not isinstance(peer, int) or not 0 < peer < self.world_size or not isinstance(link, int) \
                        or link <= seen.get(peer, 0):
                    continue
                if doc.get("wire") != WIRE_VERSION:  # refused clearly; its records stay in its journal
                    seen[peer] = 1 << 30
                    warn_once(f"gloo-version-{peer}", f"em_dist: rank {peer} speaks em_dist wire version "
                              f"{doc.get('wire')!r}, rank 0 {WIRE_VERSION}: it is not accepted. Install the same "
                              "em_dist version on every node of the job.")
                    continue
                seen[peer] = link
                accepted.append((peer, _local_pid(doc), doc.get("addr") or bind.store_host(store), link))
                # a link rebuilt after it broke: rank 0 says how far it got, the peer re-sends the rest
                resume = on_join(peer)
                store.set(f"{self._prefix()}/accepted/{peer}" + (f"/{link}" if link > 1 else ""),
                          str(resume if resume is not None else ""))
            for peer, pid, toward, link in accepted:
                # each pair on a thread of its own: gloo's set-up blocks until the peer built its side
                # (bounded by pair_wait), and a peer that can't (its host just lost the network) must
                # not hold up the others' set-ups
                builder = threading.Thread(target=self._build, args=(store, peer, pid, toward, link, built),
                                           name=f"em_dist-gloo-pair-{peer}", daemon=True)
                self._builders = [t for t in self._builders if t.is_alive()] + [builder]
                builder.start()
            stop.wait(self._timings.poll)

    def _build(self, store: Any, peer: int, pid: int | None, toward: str, link: int,
               built: queue.SimpleQueue[_Link | tuple[int, int]]) -> None:
        """Rank 0's side of one peer's pair, handed to the receiving thread (or the failure, as
        ``(peer, link)``: the peer never built its side, so that link is lost)."""
        try:
            where = bind.choose(toward, label="peers")
            self._serving.add(where)
            pg = self._pair(store, peer, 0, _serving_device(where), build_wait=self._timings.pair_wait, link=link)
        except LINK_ERRORS:  # the peer never built its side (or no address leads to it)
            built.put((peer, link))
            return
        built.put(_Link(peer, pg, self._tag, pid, link))

    def _receive(self, built: queue.SimpleQueue[_Link | tuple[int, int]], on_frame: OnFrame, on_lost: OnLost,
                 stop: threading.Event) -> None:
        """Poll every link's posted header receive; read a frame only once its header arrived, so a
        quiet link never holds this thread (gloo's waits can't be interrupted)."""
        links: dict[int, _Link] = {}
        newest: dict[int, int] = {}  # peer -> the number of its newest link here
        delay = 0.0005
        # After stop, links still open keep being served (a late peer's goodbye gets its answer
        # instead of blocking in a send nobody receives); the thread ends with the last of them.
        while (not stop.is_set() or links or not built.empty()) and not self._quit.is_set():
            while not built.empty():
                item = built.get()
                if isinstance(item, tuple):  # a pair not built: lost, unless a newer link of the peer's is here
                    peer, number = item
                    if newest.get(peer, 0) <= number:
                        on_lost(peer)
                    continue
                if item.number < newest.get(item.peer, 0):  # built after a newer link of the peer's: stale
                    item.close()
                    continue
                newest[item.peer] = item.number
                old = links.pop(item.peer, None)
                if old is not None:  # the peer rebuilt its link: the old one is dead to it
                    old.close()
                links[item.peer] = item
                item.post()
            busy = False
            now = time.monotonic()
            for peer, link in list(links.items()):
                try:
                    if not link.arrived():
                        if link.gone(now) or now - link.heard > self._timings.silence:
                            link.test()  # raises: the peer died (or froze, and this closes its link)
                        continue
                    busy = True
                    data = link.take()
                    reply = on_frame(peer, data)
                    if reply is not None:  # the goodbye's answer: handed to a thread of its own (see _reply)
                        del links[peer]
                        answering = threading.Thread(target=self._reply, args=(link, reply, on_lost),
                                                     name=f"em_dist-gloo-bye-{peer}", daemon=True)
                        # a list of its own: only this thread appends to it (the acceptor to _builders)
                        self._answering = [t for t in self._answering if t.is_alive()] + [answering]
                        answering.start()
                        continue
                    link.post()
                except Exception as exc:  # noqa: BLE001 - one peer's trouble never stops the others: a broken
                    # pair or a frame we can't read (LINK_ERRORS) means a lost peer; anything else is a fault
                    # of ours, said once, and the peer is let go the same way (its journal keeps its records)
                    if not isinstance(exc, LINK_ERRORS):
                        warn_once(f"gloo-serve-{peer}", f"em_dist: rank 0 let rank {peer}'s link go after an "
                                  f"internal error ({exc!r}); its records stay in its journal.")
                    del links[peer]
                    on_lost(peer)
                    link.release()
            if busy:
                delay = 0.0005
            else:
                (self._quit if stop.is_set() else stop).wait(delay)
                delay = min(delay * 2, 0.02)
        # Shut down: the links still open are late peers'. Close them, so that a send of theirs
        # fails at once rather than waiting for a receive that will never be posted.
        for link in links.values():
            link.close()

    def _reply(self, link: _Link, reply: bytes, on_lost: OnLost) -> None:
        """Send a goodbye's answer and destroy the pair, on a short-lived thread of its own.

        gloo's send completes only once the peer posted its receive: a peer whose host drops
        during its goodbye would hold the sender for the whole bound (1 s). On the receiving thread
        that held up every other peer's frames, one goodbye after another. The receiving thread has
        dropped the link (no receive of it is posted, it never touches the pair again), so the pair
        is used, then destroyed, by this thread alone: still one thread at a time per pair. The
        thread is joined (bounded) at :meth:`shutdown`, like the pair builders."""
        answered = False
        try:  # small, into a socket the peer reads: bounded all the same
            _send(link.pg, 1, reply, self._tag, timeout=min(1.0, self._timings.silence))
            answered = True
        except Exception as exc:  # noqa: BLE001 - as on the receiving thread: the peer is let go
            if not isinstance(exc, LINK_ERRORS):
                warn_once(f"gloo-serve-{link.peer}", f"em_dist: rank 0 let rank {link.peer}'s link go after an "
                          f"internal error ({exc!r}); its records stay in its journal.")
        link.release()
        if answered:
            self._finished.add(link.peer)  # answered, and its pair destroyed (shutdown waits for this)
        else:
            on_lost(link.peer)  # the servers' on_lost take their own lock: safe from any thread

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        self._closed = True
        if self.rank == self.root and self._store is not None:
            try:  # a peer that comes later must not wait for this run: it goes elsewhere or keeps its records
                self._store.set(f"{self._prefix()}/root", "")
            except LINK_ERRORS:  # the store may be gone with the job
                pass
        # A gloo group still alive when the interpreter exits can abort the process ("terminate
        # called without an active exception"): wait (bounded) until the receiving thread has
        # answered and destroyed the pairs of the peers that finished (on their answering threads).
        deadline = time.monotonic() + self._timings.release_wait
        while not finished <= self._finished and time.monotonic() < deadline:
            time.sleep(self._timings.poll / 10)
        # Then end the serving threads and wait for them (bounded): a daemon thread still inside a
        # torch call (a store check, a gloo wait) when the interpreter finalises is ended by
        # pthread_exit as it takes the GIL back inside pybind11's guard, a noexcept destructor,
        # and that aborts the whole process with the same message. The receiving thread closes
        # the links of late peers on its way out (their goodbye is no longer answered).
        self._quit.set()
        deadline = time.monotonic() + self._timings.release_wait
        for thread in (self._acceptor, self._receiver, *self._builders, *self._answering):
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))


class _Link:
    """Rank 0's side of one peer's pair, its next frame's receives posted.

    gloo's receive has no ``test``: its ``wait`` blocks, and a timed-out wait closes the pair. So
    the header is received into a tensor pre-filled with -1 (a length is never negative); gloo's
    event loop writes the arrived bytes into it. Then the body and the trailer (the length again,
    sent after the body) are posted the same way: once the trailer's bytes are there, the whole
    frame is, and only then does this thread wait on it (returning at once). A frame cut off half
    way (its peer's host lost the network) thus never holds the thread that serves every peer.
    """

    __slots__ = ("peer", "pg", "tag", "pid", "number", "header", "view", "trailer", "tail", "body", "work", "body_work",
                 "waited", "heard", "checked", "dead_since")

    def __init__(self, peer: int, pg: Any, tag: int, pid: int | None = None, number: int = 1) -> None:
        import torch

        self.peer, self.pg, self.tag, self.pid, self.number = peer, pg, tag, pid, number
        self.checked = 0.0
        self.dead_since: float | None = None
        self.header = torch.full((1,), -1, dtype=torch.int64)
        self.view = self.header.numpy()
        self.trailer = torch.full((1,), -1, dtype=torch.int64)
        self.tail = self.trailer.numpy()
        self.body: Any = None
        self.work: Any = None  # the receive waited on next: the header's, then the trailer's
        self.body_work: Any = None
        self.waited = False
        self.heard = time.monotonic()

    def post(self) -> None:
        self.view[0] = -1
        self.body = self.body_work = None
        self.waited = False
        self.work = self.pg.recv([self.header], 1, self.tag)

    def arrived(self) -> bool:
        """True once a whole frame is here (never waits on more than bytes already received)."""
        import torch

        if self.body is None:
            if self.view[0] == -1:
                return False
            try:
                if not self.waited:
                    self.work.wait()  # its bytes are here: returns at once
                size = int(self.view[0])
                self.body = torch.empty(size, dtype=torch.uint8)
                self.body_work = self.pg.recv([self.body], 1, self.tag) if size else None
                self.tail[0] = -1
                self.waited = False
                self.work = self.pg.recv([self.trailer], 1, self.tag)
            except RuntimeError as exc:
                raise LinkClosed(str(exc).splitlines()[0]) from exc
            self.heard = time.monotonic()
        return bool(self.tail[0] != -1)

    def gone(self, now: float) -> bool:
        """A peer in rank 0's own process space (same host and pid namespace) whose process ended:
        true half a second after that was seen, so gloo's event loop has drained what it sent."""
        if self.pid is None or now - self.heard < GONE_CHECK or now - self.checked < GONE_CHECK:
            return False
        self.checked = now
        if self.dead_since is None:
            if process_running(self.pid):
                return False
            self.dead_since = now
        return now - self.dead_since >= GONE_CHECK

    def take(self) -> bytes:
        """The frame that :meth:`arrived` (its receives end at once)."""
        try:
            if not self.waited:
                self.work.wait()
            if self.body_work is not None:
                self.body_work.wait()
        except RuntimeError as exc:
            raise LinkClosed(str(exc).splitlines()[0]) from exc
        if int(self.tail[0]) != int(self.view[0]):
            raise LinkClosed(f"a frame of rank {self.peer} ended with {int(self.tail[0])}, not its length "
                             f"{int(self.view[0])}")
        self.heard = time.monotonic()
        data: bytes = self.body.numpy().tobytes()
        return data

    def test(self) -> None:
        """Wait a moment on the silent link: gloo raises at once when the peer is gone, and closes
        the pair when the wait times out; either way the link is finished."""
        try:
            self.work.wait(timedelta(milliseconds=1))
        except RuntimeError as exc:
            raise LinkClosed(str(exc).splitlines()[0]) from exc
        self.waited = True  # what it waited for did arrive meanwhile: arrived()/take() go on from there

    def release(self) -> None:
        """Destroy the pair (on the thread that used it last: the receiving thread, or a goodbye's answering one)."""
        _forget(self.pg)
        self.pg = self.work = self.body_work = None

    def close(self) -> None:
        """Give up on the link: a timed-out wait closes the pair (the peer's next send fails), then
        destroy it."""
        try:
            if self.work is not None:
                self.test()
        except LINK_ERRORS:  # LinkClosed is the expected way out
            pass
        self.release()


GONE_CHECK = 0.5
"""Seconds of quiet after which rank 0 looks whether a local peer's process still exists."""


def _pid_space() -> str:
    """This machine boot and pid namespace: two processes that share it can check each other's pid."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


class _Hellos:
    """The numbered hellos under a server's prefix. A number taken (``store.add``) whose hello is not
    written yet (its rank was killed, or cut off between ``add`` and ``set`` in ``connect``) is a
    hole: the hellos after it are read at once all the same, so one rank never holds up another's
    hello (a relink, a late joiner). The hole is looked at again on each pass and read when its
    hello shows up, or given up ``accept_wait`` after it was first seen (its rank stopped waiting by
    then; it announces itself again under a new number)."""

    def __init__(self, store: Any, prefix: str, timings: RankTimings) -> None:
        self._store, self._prefix, self._timings = store, prefix, timings
        self._next = 1  # the first number never looked at
        self._holes: dict[int, float] = {}  # a number taken but not written yet -> when first seen

    def new(self) -> list[dict[str, Any]]:
        """The hellos written since the last call (a late one after those that overtook it)."""
        taken = int(self._store.add(f"{self._prefix}/hellos", 0))  # one store call while nothing is new
        now = time.monotonic()
        numbers = sorted(self._holes) + list(range(self._next, taken + 1))
        self._next = max(self._next, taken + 1)
        docs = []
        for number in numbers:
            key = f"{self._prefix}/hello#{number}"
            if self._store.check([key]):
                self._holes.pop(number, None)
                try:
                    docs.append(json.loads(self._store.get(key)))
                except ValueError:
                    pass
            elif now - self._holes.setdefault(number, now) > self._timings.accept_wait:
                del self._holes[number]
        return docs


def _local_pid(doc: dict[str, Any]) -> int | None:
    """The peer's pid from its hello when it runs in this process's own pid space, else None."""
    try:
        space = _pid_space()
        return int(doc["pid"]) if space and doc.get("pids") == space else None
    except (ValueError, KeyError, TypeError):
        return None


def _send(pg: Any, dst: int, data: bytes, tag: int, timeout: float | None = None) -> None:
    """One length-prefixed frame to ``dst``; with a ``timeout`` (seconds, for the whole frame), a send
    still not drained by then makes gloo close the pair (its other waits end too) and raises
    :class:`LinkClosed`: the pair is not used again."""
    import torch

    deadline = time.monotonic() + timeout if timeout is not None else None
    try:
        size = torch.tensor([len(data)], dtype=torch.int64)
        _wait_send(pg.send([size], dst, tag), deadline)
        if data:
            _wait_send(pg.send([torch.frombuffer(bytearray(data), dtype=torch.uint8)], dst, tag), deadline)
        _wait_send(pg.send([size.clone()], dst, tag), deadline)  # the trailer: the receiver sees the frame whole
    except RuntimeError as exc:
        raise LinkClosed(str(exc).splitlines()[0]) from exc


def _wait_send(work: Any, deadline: float | None) -> None:
    if deadline is None:
        work.wait()
    else:
        work.wait(timedelta(seconds=max(0.001, deadline - time.monotonic())))


def _recv(pg: Any, src: int, tag: int, deadline: float | None = None) -> bytes | None:
    """One length-prefixed frame from ``src``; with a ``deadline``, None when it did not come by then."""
    import torch

    try:
        header = torch.zeros(1, dtype=torch.int64)
        _wait(pg.recv([header], src, tag), deadline)
        size = int(header.item())
        body = torch.empty(size, dtype=torch.uint8)
        if size:
            _wait(pg.recv([body], src, tag), deadline)
        _wait(pg.recv([torch.zeros(1, dtype=torch.int64)], src, tag), deadline)  # the trailer
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
