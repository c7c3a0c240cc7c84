"""The engine-neutral rank -> rank 0 protocol, on top of a point-to-point :class:`Wire`.

A non-zero rank's sender thread packs queued messages into frames of bounded size,
numbers them (``seq`` 1, 2, ...), and sends them; the last frame carries ``bye`` with
the counts, and rank 0 answers it with an ack. Rank 0 keeps the last ``seq`` per peer,
so a frame is delivered exactly once and a gap is noticed. Every wait on the training
thread is bounded by the run's distributed timeout; a peer that never joined is
waited for only briefly, so rank-0-only scripts finish at once.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from typing import Any, Callable

from .._warn import warn_once
from .channel import Channel, Deliver

log = logging.getLogger(__name__)

FRAME_BYTES = 4 << 20
"""Pack queued messages into frames up to about this size (pickled)."""

SEND_INTERVAL = 0.2
"""A peer sends what it holds at least this often (records reach rank 0 well within 2 s)."""

JOIN_GRACE = 3.0
"""How long rank 0's ``close`` waits for peers that never joined (rank-0-only scripts)."""

PEER_JOIN_GRACE = 10.0
"""How long a non-zero rank's ``close`` waits for a rank 0 that never started serving."""

ACK = b"em_dist-ack"


class LinkClosed(Exception):
    """The link to a peer broke (the process died or the engine shut down)."""


class Wire(ABC):
    """Raw bytes between rank 0 and each peer, over one engine. Used only from the channel's threads."""

    rank: int
    world_size: int
    transport: str | None = None
    """What carries the bytes (``gloo``, ``mpi``), for the run's world record."""

    # -- a non-zero rank ----------------------------------------------------------
    @abstractmethod
    def connect(self) -> None:
        """Join rank 0 (blocking, on the sender thread); raise when that is impossible."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Send one frame to rank 0 (blocking); raise :class:`LinkClosed` when the link is gone."""

    @abstractmethod
    def recv_reply(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` s for rank 0's reply to the last frame; None when none came."""

    # -- rank 0 -------------------------------------------------------------------
    @abstractmethod
    def serve(self, on_join: Callable[[int], None], on_frame: Callable[[int, bytes], bytes | None],
              on_lost: Callable[[int], None], stop: threading.Event) -> None:
        """Accept peers and receive their frames until ``stop`` is set (runs on its own thread).

        ``on_frame`` may return reply bytes, which are sent back to that peer.
        """

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        """Release what the wire holds; pending engine requests are cancelled. Never blocks long.

        ``finished`` (rank 0): the peers whose goodbye was answered; their links may still be
        sending that answer and are worth a short wait. Other links are left as they are.
        """

    def release(self) -> None:
        """A peer's sender thread is done with the link: free it on this thread."""

    @property
    def ready_since(self) -> float | None:
        """``time.monotonic()`` when this side could first see the other: rank 0 accepting peers,
        a peer able to look for rank 0. None while still setting up (e.g. reaching the store)."""
        return getattr(self, "_ready_since", None)

    def mark_ready(self) -> None:
        self._ready_since = time.monotonic()


class _PeerState:
    __slots__ = ("joined_at", "last_seq", "messages", "bye", "lost", "done")

    def __init__(self) -> None:
        self.joined_at = time.monotonic()
        self.last_seq = 0
        self.messages = 0
        self.bye: dict | None = None
        self.lost = False
        self.done = False


class P2PChannel(Channel):
    """A :class:`Channel` that runs the frame protocol over a :class:`Wire`."""

    def __init__(self, wire: Wire, *, send_interval: float = SEND_INTERVAL) -> None:
        self.wire = wire
        self.rank = wire.rank
        self.world_size = wire.world_size
        self._interval = send_interval
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._closing = False
        self._done = threading.Event()
        self._connected = False
        self._deliver: Deliver | None = None
        self._peers: dict[int, _PeerState] = {}
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self.sent_messages = 0
        self.undelivered = 0
        self.absent: set[int] = set()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def pending(self) -> int:
        """Messages posted and not yet sent (a peer's backlog)."""
        return len(self._queue)

    def start(self, deliver: Deliver | None) -> None:
        self._deliver = deliver
        target = self._serve if self.rank == 0 else self._send_loop
        self._thread = threading.Thread(target=target, name=f"em_dist-p2p-{self.rank}", daemon=True)
        self._thread.start()

    def post(self, message: Any) -> None:
        self._queue.append(message)

    def close(self, timeout: float) -> set[int]:
        deadline = time.monotonic() + max(0.0, timeout)
        if self.rank == 0:
            return self._close_root(deadline)
        self._closing = True
        self._wake.set()
        # A rank 0 that never showed up (it made no run, or is gone) gets PEER_JOIN_GRACE, counted
        # from when this rank could first look for it, not the whole timeout.
        began = time.monotonic()
        while not self._done.wait(0.05):
            now = time.monotonic()
            since = self.wire.ready_since
            joining_over = since is not None and now >= max(began, since) + PEER_JOIN_GRACE
            if now >= deadline or (not self._connected and joining_over):
                break
        if not self._done.is_set():
            self.undelivered = len(self._queue)
            why = "within the timeout" if self._connected else "(rank 0 never joined)"
            warn_once("p2p-close-timeout",
                      f"em_dist: rank {self.rank} could not hand its last records to rank 0 {why}; "
                      "they are not in the run.")
        self._stop.set()
        self._shutdown_wire()
        return set()

    # -- a non-zero rank ------------------------------------------------------------
    def _send_loop(self) -> None:
        try:
            self.wire.connect()
            self._connected = True
        except Exception as exc:  # noqa: BLE001 - any engine trouble means: cannot reach rank 0
            if not self._stop.is_set():  # else close() already said so
                warn_once("p2p-connect", f"em_dist: rank {self.rank} cannot reach rank 0 ({exc}); "
                          "this rank's records stay out of the run.")
            self._done.set()
            return
        seq = 0
        try:
            while True:
                self._wake.wait(self._interval)
                self._wake.clear()
                closing = self._closing
                while self._queue or closing:
                    msgs = self._take_frame()
                    seq += 1
                    frame: dict[str, Any] = {"seq": seq, "msgs": msgs}
                    self.sent_messages += len(msgs)
                    last = closing and not self._queue
                    if last:
                        frame["bye"] = {"frames": seq, "messages": self.sent_messages}
                    self.wire.send(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
                    if last:
                        reply = self.wire.recv_reply(3600.0)
                        if reply != ACK:
                            log.debug("rank %d: no ack from rank 0 (%r)", self.rank, reply)
                        return
        except Exception as exc:  # noqa: BLE001
            warn_once("p2p-send", f"em_dist: rank {self.rank} lost its link to rank 0 ({exc}); "
                      "later records of this rank are not in the run.")
        finally:
            try:
                self.wire.release()
            except Exception:  # noqa: BLE001
                pass
            self._done.set()

    def _take_frame(self) -> list[Any]:
        msgs: list[Any] = []
        size = 0
        queue = self._queue
        while queue and size < FRAME_BYTES:
            msg = queue.popleft()
            msgs.append(msg)
            size += _rough_size(msg)
        return msgs

    # -- rank 0 ---------------------------------------------------------------------
    def _serve(self) -> None:
        self._connected = True
        try:
            self.wire.serve(self._on_join, self._on_frame, self._on_lost, self._stop)
        except Exception as exc:  # noqa: BLE001
            if not self._stop.is_set():
                warn_once("p2p-serve", f"em_dist: rank 0 stopped receiving from other ranks ({exc}).")

    def _on_join(self, peer: int) -> None:
        with self._lock:
            self._peers.setdefault(peer, _PeerState())
            self._lock.notify_all()

    def _on_frame(self, peer: int, data: bytes) -> bytes | None:
        frame = pickle.loads(data)
        with self._lock:
            state = self._peers.setdefault(peer, _PeerState())
        seq = frame.get("seq", 0)
        if seq <= state.last_seq:
            return None  # a repeat: already delivered
        if seq != state.last_seq + 1:
            warn_once(f"p2p-gap-{peer}", f"em_dist: frames {state.last_seq + 1}..{seq - 1} of rank {peer} "
                      "never arrived; the run misses some of its records.")
        state.last_seq = seq
        deliver = self._deliver
        for msg in frame.get("msgs", ()):
            state.messages += 1
            if deliver is not None:
                try:
                    deliver(peer, msg)
                except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
                    warn_once("p2p-deliver", f"em_dist: could not store a message of rank {peer} ({exc!r}).")
        bye = frame.get("bye")
        if bye is None:
            return None
        if bye.get("messages") != state.messages:
            warn_once(f"p2p-count-{peer}", f"em_dist: rank {peer} sent {bye.get('messages')} messages, "
                      f"rank 0 got {state.messages}.")
        with self._lock:
            state.bye = bye
            state.done = True
            self._lock.notify_all()
        return ACK

    def _on_lost(self, peer: int) -> None:
        with self._lock:
            state = self._peers.setdefault(peer, _PeerState())
            if not state.done:
                state.lost = True
                state.done = True
            self._lock.notify_all()

    def _close_root(self, deadline: float) -> set[int]:
        self._close_began = time.monotonic()
        peers = set(range(1, self.world_size))
        with self._lock:
            while True:
                now = time.monotonic()
                # peers get JOIN_GRACE from when rank 0 could first see them, not from close()
                since = self.wire.ready_since
                join_deadline = min(deadline, max(now if since is None else since, self._close_began) + JOIN_GRACE)
                joined = set(self._peers)
                pending = {p for p in joined if not self._peers[p].done}
                waiting_joins = peers - joined and now < join_deadline
                if (not pending and not waiting_joins) or now >= deadline:
                    break
                self._lock.wait(min(0.05, max(0.0, deadline - now)))
            joined = set(self._peers)
            lost = {p for p in joined if self._peers[p].lost or not self._peers[p].done}
            self.absent = peers - joined
            finished = frozenset(joined - lost)
        self._stop.set()
        if self._thread is not None:  # no engine call of ours may overlap the exit (MPI_Finalize)
            self._thread.join(1.0)
        self._shutdown_wire(finished)
        return lost

    def received(self) -> dict[int, int]:
        """Messages delivered so far, per peer (rank 0)."""
        with self._lock:
            return {p: s.messages for p, s in self._peers.items()}

    def _shutdown_wire(self, finished: frozenset[int] = frozenset()) -> None:
        try:
            self.wire.shutdown(finished)
        except Exception:  # noqa: BLE001
            pass


def _rough_size(msg: Any) -> int:
    """A cheap size guess for frame packing: records are ~100 bytes, chunks carry their bytes."""
    if isinstance(msg, tuple) and msg:
        body = msg[-1]
        if isinstance(body, (bytes, bytearray)):
            return len(body) + 64
        if isinstance(body, list):
            return 100 * len(body) + 64
    return 256
