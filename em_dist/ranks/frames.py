"""The engine-neutral rank -> rank 0 protocol, over a point-to-point :class:`Wire` (gloo pairs, MPI).

A peer packs messages into frames of bounded size, numbers them (``seq`` 1, 2, ...) and
sends them; its goodbye is a last frame carrying ``bye`` with the counts, which rank 0
answers with an ack. Rank 0 keeps the last ``seq`` per peer, so a frame is delivered
exactly once and a gap is noticed.
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from abc import ABC, abstractmethod
from typing import Any, Callable

from .._warn import warn_once
from ..errors import LINK_ERRORS, WireVersionError
from . import messages
from .channel import Ack, Acknowledge, ChannelEnd, Deliver, LinkClosed, PeerChannel, RootChannel, _Readiness

FRAME_BYTES = 4 << 20
"""Pack messages into frames up to about this size (encoded)."""

ACK = b"em_dist-ack"
"""The start of a goodbye's answer; rank 0's own answer goes on with ``{rank: newest record number on
its disk}`` as JSON (a node leader answers its members with ``ACK`` alone: it confirms nothing)."""


def ack_reply(on_disk: dict[int, int]) -> bytes:
    return ACK + json.dumps({str(r): n for r, n in on_disk.items()}).encode()


def parse_ack(reply: bytes | None) -> Ack | None:
    if reply is None or not reply.startswith(ACK):
        return None
    try:
        doc = json.loads(reply[len(ACK):] or b"{}")
        return Ack({int(r): int(n) for r, n in doc.items()})
    except (ValueError, TypeError, AttributeError):
        return Ack()

_zstd: Any
try:
    import zstandard as _zstd
except ImportError:  # a dependency; an install without it still compresses, with zlib
    _zstd = None

COMPRESS_AT = 4096
"""A frame from another node is compressed from this many encoded bytes on, with zstd level 1:
JSON lines shrink about 5.8x at 0.17 µs per record on the sender and 0.05 µs on rank 0, where
zlib level 1 takes 0.58 and 0.31 µs for 4.3x and zstd level 3 is larger and slower here
(``benchmarks/bench_scale.py --codecs``). Frames within a node go as they are."""

ZSTD_LEVEL = 1

_ZSTD = b"\x28\xb5\x2f\xfd"
"""The magic number of a zstd frame."""
_ZLIB = b"\x78"
"""The first byte of a zlib stream; an encoded frame (a msgpack map of 2 to 15 keys) starts with 0x82-0x8f."""


def pack(frame: dict[str, Any], compress: bool) -> bytes:
    """A frame's bytes on the wire."""
    data = messages.dumps(frame)
    if compress and len(data) >= COMPRESS_AT:
        if _zstd is not None:
            packed: bytes = _zstd.ZstdCompressor(level=ZSTD_LEVEL).compress(data)  # one per frame: not thread-safe
            return packed
        return zlib.compress(data, 1)
    return data


def unpack(data: bytes) -> dict[str, Any]:
    """The frame in ``data``, compressed (zstd or zlib, told by its first bytes) or not."""
    if data[:4] == _ZSTD:
        if _zstd is None:
            raise ValueError("a frame is zstd-compressed but the zstandard package is not installed on this rank")
        data = _zstd.ZstdDecompressor().decompress(data)
    elif data[:1] == _ZLIB:
        data = zlib.decompress(data)
    return messages.loads(data)


OnJoin = Callable[[int], "int | None"]
"""Rank 0's side: a peer joined (returns the newest of its record numbers rank 0 has)."""
OnFrame = Callable[[int, bytes], "bytes | None"]
"""Rank 0's side: a peer's frame arrived (returns the reply to send back, if any)."""
OnLost = Callable[[int], None]
"""Rank 0's side: a peer's link broke."""


class Wire(_Readiness, ABC):
    """Raw bytes between rank 0 and each peer, over one engine. Used only from the channel's threads."""

    rank: int
    world_size: int
    transport: str = "?"
    rank0_run: dict[str, Any] | None = None
    """A peer: rank 0's run as it announced it when it accepted this rank."""
    run_doc: dict[str, Any] = {}
    """A server: the run it announces to the peers it accepts (rank 0's, also at a node leader)."""
    expected: frozenset[int] | None = None
    """A server that knows every peer it can get (a node leader's members): once all of them joined
    it stops looking for more (no store traffic, and no thread left in a store call on a link that
    may break)."""
    engine_started: bool = True
    """False while the engine under the wire does not exist yet (see :class:`.deferred.DeferredWire`)."""

    @property
    def link(self) -> dict[str, Any] | None:
        """Where this end's links listen (``address``, ``by``; a server's ``serves``), for the rank's
        platform entry; None when the engine has no addresses of its own (MPI) or did not bind yet."""
        return None

    # -- a non-zero rank ----------------------------------------------------------
    @abstractmethod
    def connect(self, wait: float) -> bool:
        """Try for at most ``wait`` s to join rank 0; True once joined, False for "not yet"."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Send one frame to rank 0 (blocking); raise :class:`LinkClosed` when the link is gone."""

    @abstractmethod
    def recv_reply(self, timeout: float) -> bytes | None:
        """Wait up to ``timeout`` s for rank 0's reply to the last frame; None when none came."""

    def release(self) -> None:
        """The peer is done with the link: free it (on the thread that used it)."""

    def send_until(self, deadline: float) -> None:
        """A peer: no send outlives ``deadline`` from now on (see :meth:`.channel.PeerChannel.send_until`)."""

    # -- rank 0 -------------------------------------------------------------------
    @abstractmethod
    def serve(self, on_join: OnJoin, on_frame: OnFrame, on_lost: OnLost, stop: threading.Event) -> None:
        """Accept peers and receive their frames until ``stop`` is set (runs on its own thread).

        ``on_join`` returns the newest of the peer's record numbers rank 0 has (for a link rebuilt
        after it broke: the peer re-sends from there), ``on_frame`` may return reply bytes, which
        are sent back to that peer.
        """

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        """Release what the wire holds; never blocks long. ``finished`` (rank 0): the peers whose
        goodbye was answered; their links may still be sending that answer."""


class FramePeer(PeerChannel):
    """A peer's end of the frame protocol. ``send([])`` sends an empty frame when nothing went out
    for ``heartbeat`` seconds (the peer sink calls it every cycle); ``compress``: this peer runs
    on another node than rank 0, so its frames are compressed."""

    def __init__(self, wire: Wire, heartbeat: float = 1.0, compress: bool = False) -> None:
        self.wire = wire
        self._heartbeat = heartbeat
        self._compress = compress
        self._last_frame = time.monotonic()
        self.rank = wire.rank
        self.world_size = wire.world_size
        self._connected = False
        self._seq = 0
        self._messages = 0

    @property
    def transport(self) -> str:
        return self.wire.transport

    @property
    def link(self) -> dict[str, Any] | None:
        return self.wire.link

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def ready_since(self) -> float | None:
        return self.wire.ready_since

    @property
    def rank0_run(self) -> dict[str, Any] | None:
        return self.wire.rank0_run

    @property
    def engine_started(self) -> bool:
        return self.wire.engine_started

    def connect(self, wait: float) -> bool:
        if not self._connected:
            self._connected = self.wire.connect(wait)
        return self._connected

    def send(self, messages: list[Any], compress: bool | None = None) -> None:
        """``compress=False``: the messages are compressed already (a leader's relayed frames)."""
        start, size = 0, 0
        for i, msg in enumerate(messages):
            size += _rough_size(msg)
            if size >= FRAME_BYTES:
                self._frame(messages[start:i + 1], compress=compress)
                start, size = i + 1, 0
        if start < len(messages):
            self._frame(messages[start:], compress=compress)
        elif not messages and time.monotonic() - self._last_frame >= self._heartbeat:
            self._frame([])  # a heartbeat: this link is alive, only quiet

    def goodbye(self, timeout: float, records: int = 0) -> Ack | None:
        """Rank 0's answer; None when it did not come within ``timeout``, or rank 0 closed the link
        first (this rank was late: rank 0 had finished without it)."""
        try:
            until = time.monotonic() + timeout
            self.wire.send_until(until)  # the goodbye's own send too: a frame rank 0 no longer reads
            self._frame([], bye=True, records=records)
            return parse_ack(self.wire.recv_reply(max(0.0, until - time.monotonic())))
        except LinkClosed:
            return None

    def send_until(self, deadline: float) -> None:
        self.wire.send_until(deadline)

    def shutdown(self) -> None:
        try:
            self.wire.release()
        finally:
            self.wire.shutdown()

    @property
    def reconnects(self) -> bool:
        return callable(getattr(self.wire, "reset", None))

    def reset(self) -> None:
        """Drop the broken link; frame numbers go on (rank 0 keeps counting them across links)."""
        self.wire.reset()  # type: ignore[attr-defined]
        self._connected = False

    @property
    def resume_after(self) -> int | None:
        value = getattr(self.wire, "resume_after", None)
        return value if isinstance(value, int) else None

    def _frame(self, msgs: list[Any], bye: bool = False, compress: bool | None = None, records: int = 0) -> None:
        self._seq += 1
        self._messages += len(msgs)
        frame: dict[str, Any] = {"seq": self._seq, "msgs": msgs}
        if bye:
            frame["bye"] = {"frames": self._seq, "messages": self._messages, "records": records}
        self.wire.send(pack(frame, self._compress if compress is None else compress))
        self._last_frame = time.monotonic()


class _PeerState:
    __slots__ = ("last_seq", "messages", "lost", "done", "said", "joins")

    def __init__(self) -> None:
        self.joins = 0  # links it built (more than one: frames on a broken link were lost, their records re-sent)
        self.last_seq = 0
        self.messages = 0
        self.lost = False
        self.done = False
        self.said: int | None = None  # a relayed member: the newest record number its goodbye said


class FrameRoot(RootChannel):
    """Rank 0's end of the frame protocol: one serving thread (plus the wire's own, if any)."""

    def __init__(self, wire: Wire, *, release_wait: float = 2.0) -> None:
        self.wire = wire
        self.world_size = wire.world_size
        self._release_wait = release_wait
        self._deliver: Deliver | None = None
        self._acknowledge: Acknowledge | None = None
        self._resume: Callable[[int], int] | None = None
        self._peers: dict[int, _PeerState] = {}
        self._via: dict[int, int] = {}  # member -> the node leader that relays it
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def transport(self) -> str:
        return self.wire.transport

    @property
    def link(self) -> dict[str, Any] | None:
        return self.wire.link

    @property
    def ready_since(self) -> float | None:
        return self.wire.ready_since

    @property
    def engine_started(self) -> bool:
        return self.wire.engine_started

    def start(self, deliver: Deliver, acknowledge: Acknowledge | None = None,
              resume: Callable[[int], int] | None = None) -> None:
        self._deliver = deliver
        self._acknowledge = acknowledge
        self._resume = resume
        self._thread = threading.Thread(target=self._serve, name="em_dist-frames-0", daemon=True)
        self._thread.start()

    def close(self, timeout: float, join_grace: float) -> ChannelEnd:
        began = time.monotonic()
        deadline = began + max(0.0, timeout)
        peers = set(range(1, self.world_size))
        if not self.wire.engine_started:
            join_grace = 0.0  # the script started no engine: no peer can have joined
        interrupted: BaseException | None = None
        with self._lock:
            try:
                while True:
                    now = time.monotonic()
                    deadline = self._until(deadline)  # a signal ending the process may cut the wait short
                    # peers that have not joined get join_grace from when rank 0 could first see them
                    since = self.wire.ready_since
                    join_deadline = min(deadline, max(now if since is None else since, began) + join_grace)
                    joined = set(self._peers)
                    pending = {p for p in joined if not self._peers[p].done}
                    waiting_joins = bool(peers - joined) and now < join_deadline
                    if (not pending and not waiting_joins) or now >= deadline:
                        break
                    self._lock.wait(min(0.05, max(0.0, deadline - now)))
            except (KeyboardInterrupt, SystemExit) as exc:  # the program's signal handler ended the wait
                interrupted = exc
            joined = set(self._peers)
            lost = {p for p in joined if self._peers[p].lost}
            late = {p for p in joined if not self._peers[p].done}
            via = dict(self._via)
            end = ChannelEnd(lost=lost, late=late, absent=peers - joined, relayed_by=via, interrupted=interrupted)
        self._stop.set()
        if self._thread is not None:  # no engine call of ours may overlap the exit (MPI_Finalize)
            self._thread.join(1.0)
        try:
            # only finished links of this wire are worth a wait (relayed ranks have none here)
            self.wire.shutdown(frozenset(joined - lost - late - set(via)))
        except LINK_ERRORS:  # best effort: never block exit
            pass
        return end

    def hurry(self, by: float) -> None:
        with self._lock:
            super().hurry(by)
            self._lock.notify_all()

    def _serve(self) -> None:
        try:
            self.wire.serve(self._on_join, self._on_frame, self._on_lost, self._stop)
        except Exception as exc:  # noqa: BLE001
            if not self._stop.is_set():
                warn_once("frames-serve", f"em_dist: rank 0 stopped receiving from other ranks ({exc}).")

    def _on_join(self, peer: int, relayed: bool = False) -> int | None:
        with self._lock:
            if not relayed:  # a member whose leader died or lost rank 0 joins directly: no longer relayed
                self._via.pop(peer, None)
            state = self._peers.setdefault(peer, _PeerState())
            state.joins += 1
            if state.lost:  # a link rebuilt after it broke: the peer is back
                state.lost = state.done = False
            self._lock.notify_all()
        return self._resume(peer) if self._resume is not None else None

    def _on_frame(self, peer: int, data: bytes, relayed: bool = False) -> bytes | None:
        try:
            frame = unpack(data)
        except WireVersionError as exc:  # said once, clearly; the peer is then dropped (its journal keeps its records)
            warn_once(f"frames-version-{peer}", f"em_dist: rank {peer}: {exc}")
            raise
        with self._lock:
            state = self._peers.setdefault(peer, _PeerState())
        seq = frame.get("seq", 0)
        if seq <= state.last_seq:
            return None  # a repeat: already delivered
        # a gap in frame numbers (frames lost with a broken link) is no loss: records carry their own
        # numbers, and the peer re-sends from the newest rank 0 has (RootSink._records)
        state.last_seq = seq
        deliver = self._deliver
        for msg in frame.get("msgs", ()):
            state.messages += 1
            if isinstance(msg, messages.RELAYED):
                self._relayed(peer, msg)
                continue
            if deliver is not None:
                try:
                    deliver(peer, msg)
                except Exception as exc:  # noqa: BLE001 - one bad message must not stop the others
                    warn_once("frames-deliver", f"em_dist: could not store a message of rank {peer} ({exc!r}).")
        bye = frame.get("bye")
        if bye is None:
            return None
        if bye.get("messages") != state.messages and state.joins <= 1:  # after a rebuilt link, records count
            warn_once(f"frames-count-{peer}", f"em_dist: rank {peer} sent {bye.get('messages')} messages, "
                      f"rank 0 got {state.messages}.")
        on_disk: dict[int, int] = {}
        if relayed:  # its leader answered it; rank 0's answer to the leader confirms it (with this number)
            state.said = int(bye.get("records") or 0)
        elif self._acknowledge is not None:
            with self._lock:
                members = {m: self._peers[m].said if m in self._peers else None
                           for m, leader in self._via.items() if leader == peer}
            try:
                on_disk = self._acknowledge(peer, int(bye.get("records") or 0), members)
            except Exception as exc:  # noqa: BLE001 - an answer that confirms nothing keeps the journal
                warn_once("frames-ack", f"em_dist: could not confirm rank {peer}'s records ({exc!r}).")
        with self._lock:
            state.done = True
            self._lock.notify_all()
        return ack_reply(on_disk)

    def _on_lost(self, peer: int) -> None:
        with self._lock:
            # a node leader's death loses its members too (those that had not finished): what they
            # send from now on goes to runs of their own (see :mod:`.relay`)
            for rank in [peer] + [m for m, leader in self._via.items() if leader == peer]:
                state = self._peers.setdefault(rank, _PeerState())
                if not state.done:
                    state.lost = True
                    state.done = True
            self._lock.notify_all()

    def _relayed(self, leader: int, msg: messages.RelayJoin | messages.Relayed | messages.RelayLost) -> None:
        """A node leader's wrapping of a member's traffic (:mod:`.relay`): applied as if the member
        had sent it here, so its frame numbers keep every frame exactly once."""
        member = msg.member
        if not isinstance(member, int) or not 0 < member < self.world_size or member == leader:
            return
        with self._lock:
            if member in self._peers and member not in self._via and not isinstance(msg, messages.RelayJoin):
                return  # it joined rank 0 directly since: what its old leader still forwards is stale
            self._via[member] = leader
        if isinstance(msg, messages.RelayJoin):
            self._on_join(member, relayed=True)
        elif isinstance(msg, messages.Relayed):
            try:
                self._on_frame(member, msg.frame, relayed=True)  # its goodbye was answered by the leader already
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the leader's others
                warn_once(f"frames-relay-{member}", f"em_dist: could not read a frame of rank {member} relayed "
                          f"by rank {leader} ({exc!r}).")
        else:
            self._on_lost(member)


def _rough_size(msg: Any) -> int:
    """A cheap size guess for frame packing: records are ~100 bytes, chunks carry their bytes."""
    if isinstance(msg, messages.Records):
        return 100 * len(msg.lines) + 64
    data = getattr(msg, "data", None) or getattr(msg, "frame", None)
    if isinstance(data, (bytes, bytearray)):
        return len(data) + 64
    return 256
