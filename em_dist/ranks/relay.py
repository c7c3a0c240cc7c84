"""Node leaders: a rank on another node than rank 0 reaches rank 0 through its node's leader.

Rank 0 then holds one link per node (plus its own node's ranks) instead of one per rank,
and what crosses between nodes goes as one compressed frame per leader cycle.

- :func:`leader_of` says which rank relays for this one (its node's local rank 0, or a
  block of ``EM_DIST_NODE_SIZE`` ranks); rank 0 and the ranks on its node talk to rank 0
  directly.
- A leader's channel is a :class:`RelayPeer`: its own :class:`~.frames.FramePeer` to rank 0
  (sent from its peer sink's thread, as on any rank), plus a serving thread that receives
  its node's ranks on a :class:`~.frames.Wire` of their own and queues their frames
  **unopened**. Each cycle the leader sends its own messages and the queued frames
  together, wrapped as ``("relay", rank, frame)``; rank 0 unwraps them and applies the
  frame protocol per original rank, so exactly-once (the frame numbers) holds end to end.
- A member's goodbye is answered by its leader once the leader holds it; the leader's own
  goodbye waits (bounded) for its members' goodbyes and forwards them first.

Failure semantics: a leader acknowledges nothing to a member (its answer to a member's
goodbye confirms nothing: only rank 0's numbers delete a journal), so what a leader held
and never forwarded is still in the member's journal. A member whose link to its leader
breaks (the leader died, or it lost rank 0 and cut its members off) goes to rank 0
directly (:meth:`ViaLeader.reset`): rank 0 takes it back and says the newest of its
records it has, and the member re-sends the rest from its journal. The leader rebuilds
its own link like any rank. A member whose leader never serves (it made no run, or finished before the member
joined) goes to rank 0 directly, so uneven ranks still land in the one Run.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable

from .._warn import warn_once
from ..errors import LINK_ERRORS
from .channel import Ack, LinkClosed, PeerChannel
from .frames import ACK, FramePeer, OnFrame, OnJoin, OnLost, Wire, unpack
from .messages import RelayJoin, Relayed, RelayLost
from .timing import RankTimings
from .world import WorldInfo

WAKE_BYTES = 1 << 20
"""Held members' frames past which the leader forwards them before its next cycle."""

BYE_BYTES = 512
"""A member's goodbye frame is smaller than this (no messages, a few counts)."""

RELAY_BYTES = 64 << 20
"""The most a leader holds of its members' frames; past it the leader stops reading them, so
the members' sends block and their records wait in their own bounded buffers (back-pressure)."""


def node_size(env: Mapping[str, str]) -> int | None:
    """``EM_DIST_NODE_SIZE``: ranks per node in contiguous blocks, when set to a positive number."""
    size = env.get("EM_DIST_NODE_SIZE", "").strip()
    return int(size) if size.isdigit() and int(size) > 0 else None


def leader_of(world: WorldInfo, env: Mapping[str, str] | None = None) -> int:
    """The rank that relays this rank's records to rank 0; 0 for direct.

    ``EM_DIST_RELAY=0`` turns relaying off (every rank talks to rank 0). ``EM_DIST_NODE_SIZE=k``
    groups the ranks in blocks of ``k``; otherwise the launcher's local rank says where this
    rank's node starts (launchers give a node contiguous ranks: torchrun always, mpirun and
    srun with their default block mapping). A wrong guess costs a detour, never a record: any
    rank can relay for any other.
    """
    env = os.environ if env is None else env
    if env.get("EM_DIST_RELAY", "1").strip() == "0" or world.rank == 0:
        return 0
    size = node_size(env)
    if size is not None:
        return world.rank - world.rank % size
    if 0 <= world.local_rank <= world.rank:  # a launcher that names no local rank gives rank itself: direct
        return world.rank - world.local_rank
    return 0


def members_of(world: WorldInfo, leader: int, env: Mapping[str, str] | None = None) -> range:
    """The ranks a leader expects to relay for (itself excluded), when the layout tells: their
    goodbyes are worth waiting for at the leader's end, as rank 0 waits for its peers."""
    env = os.environ if env is None else env
    count = node_size(env) or max(1, world.local_world_size)
    return range(leader + 1, min(world.world_size, leader + count))


class RelayPeer(PeerChannel):
    """A node leader's end: its own link to rank 0 (``up``), and its node's ranks (``down``)."""

    def __init__(self, up: FramePeer, down: Wire, members: range, timings: RankTimings) -> None:
        self.up = up
        self.down = down
        self.rank = up.rank
        self.world_size = up.world_size
        self._members = set(members)
        down.expected = frozenset(members)  # its members, once joined, are all it serves
        self._timings = timings
        self._cond = threading.Condition()
        self._queue: deque[RelayJoin | Relayed | RelayLost] = deque()
        self._held = 0
        self._state: dict[int, str] = {}  # member -> joined | done | lost
        self._stop = threading.Event()
        self._broken = False
        self._wake: Callable[[], None] | None = None
        self._thread: threading.Thread | None = None

    # -- the PeerChannel face (the leader's peer sink thread) ------------------------
    @property
    def transport(self) -> str:
        return self.up.transport

    @property
    def connected(self) -> bool:
        return self.up.connected

    @property
    def ready_since(self) -> float | None:
        return self.up.ready_since

    @property
    def rank0_run(self) -> dict[str, Any] | None:
        return self.up.rank0_run

    @property
    def engine_started(self) -> bool:
        return self.up.engine_started

    @property
    def link(self) -> dict[str, Any] | None:
        """Where the link to rank 0 listens (the members' own entries say where they reach this leader:
        its platform entry may have gone to rank 0 before they joined)."""
        return self.up.link

    def connect(self, wait: float) -> bool:
        joined = self.up.connect(wait)
        if joined and self._thread is None:
            # serve the node only once rank 0 took this leader: members then learn rank 0's run,
            # and a leader that can't reach rank 0 never strands them behind it
            self.down.run_doc = dict(self.up.rank0_run or {})
            self._thread = threading.Thread(target=self._serve, name=f"em_dist-relay-{self.rank}", daemon=True)
            self._thread.start()
        return joined

    def on_backlog(self, wake: Callable[[], None]) -> None:
        self._wake = wake

    def send_until(self, deadline: float) -> None:
        self.up.send_until(deadline)

    @property
    def reconnects(self) -> bool:
        return self.up.reconnects

    def reset(self) -> None:
        """The link to rank 0 broke: rebuild it (this leader's own records are re-sent from its
        journal). Its members stay cut off (:meth:`_cut_off`): they went to rank 0 directly."""
        self.up.reset()

    @property
    def resume_after(self) -> int | None:
        return self.up.resume_after

    def send(self, messages: list[Any]) -> None:
        """This leader's own messages (compressed when rank 0 is on another node), then its
        members' frames as one batch, unopened: they were compressed where they were made, which
        spreads that work over the node's ranks instead of loading the leader with it."""
        relayed = self._take()
        try:
            if messages or not relayed:
                self.up.send(list(messages))
            if relayed:
                self.up.send(relayed, compress=False)
        except Exception:
            self._cut_off()
            raise

    def _cut_off(self) -> None:
        """Rank 0 is out of reach: stop taking the members' frames (their next send fails, and they
        go to rank 0 directly, re-sending from their journals what rank 0 lacks; see
        :meth:`ViaLeader.reset`) instead of holding what can't be forwarded. What this leader had
        taken of theirs and could not send is in their journals: nothing is acknowledged to a
        member that rank 0 did not acknowledge."""
        self._broken = True
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def goodbye(self, timeout: float, records: int = 0) -> Ack | None:
        """Forward every member's frames until each said goodbye (or the time is up; members that
        never joined get the join grace), then say this leader's own goodbye: rank 0's answer
        confirms the members' records too."""
        deadline = time.monotonic() + timeout
        join_deadline = min(deadline, time.monotonic() + self._timings.root_join_grace)
        while True:
            self.send([])
            now = time.monotonic()
            with self._cond:
                pending = any(s == "joined" for s in self._state.values())
                missing = bool(self._members - set(self._state)) and now < join_deadline
                if (not pending and not missing) or now >= deadline:
                    break
                if not self._queue:
                    self._cond.wait(min(self._timings.send_interval, max(0.0, deadline - now)))
        self._stop.set()  # late members now see this leader gone, and go to rank 0 directly
        self.send([])
        return self.up.goodbye(max(0.0, deadline - time.monotonic()), records)

    def shutdown(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            done = frozenset(m for m, s in self._state.items() if s == "done")
        try:
            self.up.shutdown()
        finally:
            try:
                self.down.shutdown(done)
            finally:
                if self._thread is not None:
                    self._thread.join(1.0)

    # -- the serving thread ------------------------------------------------------------
    def _serve(self) -> None:
        try:
            self.down.serve(self._on_join, self._on_frame, self._on_lost, self._stop)
        except Exception as exc:  # noqa: BLE001
            if not self._stop.is_set():
                warn_once("relay-serve", f"em_dist: node leader rank {self.rank} stopped relaying its node's "
                          f"ranks ({exc}); they keep their records in runs of their own.")

    def _on_join(self, member: int) -> None:
        with self._cond:
            self._state[member] = "joined"
            self._queue.append(RelayJoin(member))
            self._cond.notify_all()

    def _on_frame(self, member: int, data: bytes) -> bytes | None:
        if self._broken:  # the serving loop drops this member's link: it keeps its records itself
            raise LinkClosed(f"node leader rank {self.rank} lost its link to rank 0")
        bye = len(data) < BYE_BYTES and "bye" in unpack(data)  # a goodbye is a small frame: only those are opened
        with self._cond:
            # hold at most RELAY_BYTES: past it this thread waits, so the members' sends block. This is
            # the one wait of a serving thread that holds up every peer (all of this node's members, on
            # the leader's one receiving thread): by design, the leader's memory stays bounded and the
            # members' records wait in their own buffers until rank 0 drains it (docs/distributed.md)
            while self._held > RELAY_BYTES and not self._stop.is_set():
                self._cond.wait(0.1)
            self._queue.append(Relayed(member, data))
            self._held += len(data)
            if bye:
                self._state[member] = "done"
            self._cond.notify_all()
            early = self._held >= WAKE_BYTES
        if early and self._wake is not None:
            self._wake()  # a burst (a member's backlog at its end): forward it now, not at the next cycle
        return ACK if bye else None

    def _on_lost(self, member: int) -> None:
        with self._cond:
            if self._state.get(member) != "done":
                self._state[member] = "lost"
                if not self._broken:  # dropped by this leader's cut-off: it goes to rank 0 itself, not lost
                    self._queue.append(RelayLost(member))
                self._cond.notify_all()

    def _take(self) -> list[RelayJoin | Relayed | RelayLost]:
        with self._cond:
            items = list(self._queue)
            self._queue.clear()
            self._held = 0
            self._cond.notify_all()
        return items


class ViaLeader(Wire):
    """A member's wire: its leader's, or rank 0's directly when the leader never serves this run
    (it made no run, or it finished before this rank joined)."""

    def __init__(self, leader: Wire, direct: Callable[[], Wire], timings: RankTimings) -> None:
        self.rank = leader.rank
        self.world_size = leader.world_size
        self._leader = leader
        self._direct = direct
        self._timings = timings
        self.wire = leader

    @property
    def transport(self) -> str:  # type: ignore[override]
        return self.wire.transport

    @property
    def engine_started(self) -> bool:  # type: ignore[override]
        return self.wire.engine_started

    @property
    def rank0_run(self) -> dict[str, Any] | None:  # type: ignore[override]
        return self.wire.rank0_run

    @property
    def link(self) -> dict[str, Any] | None:
        return self.wire.link

    @property
    def ready_since(self) -> float | None:
        # from when the leader could first be looked for: a switch to rank 0 does not restart the join grace
        since = self._leader.ready_since
        return since if since is not None else self.wire.ready_since

    def connect(self, wait: float) -> bool:
        if self.wire is self._leader:
            try:
                if self._leader.connect(wait):
                    return True
            except LinkClosed as exc:  # the leader finished this run before this rank joined
                self._switch(f"it finished before this rank joined ({exc})")
                return self.wire.connect(wait)
            since = self._leader.ready_since
            if since is not None and time.monotonic() - since > self._timings.peer_join_grace:
                self._switch(f"it did not serve within {self._timings.peer_join_grace:.0f}s")
            return False
        return self.wire.connect(wait)

    def _switch(self, why: str) -> None:
        warn_once(f"relay-direct-{self.rank}", f"em_dist: rank {self.rank} goes to rank 0 directly, not through "
                  f"its node leader: {why}.")
        try:
            self._leader.shutdown()
        except LINK_ERRORS:  # best effort
            pass
        self.wire = self._direct()

    def send(self, data: bytes) -> None:
        self.wire.send(data)

    def recv_reply(self, timeout: float) -> bytes | None:
        return self.wire.recv_reply(timeout)

    def release(self) -> None:
        self.wire.release()

    def send_until(self, deadline: float) -> None:
        self.wire.send_until(deadline)

    def reset(self) -> None:
        """The link broke. Through the leader: the leader died or lost rank 0, so go to rank 0 directly
        (the next :meth:`connect` joins it, and rank 0 says from where to re-send); else rebuild the
        direct link."""
        if self.wire is self._leader:
            try:
                self._leader.release()  # on the thread that used it
            except LINK_ERRORS:  # what it held is gone either way
                pass
            self._switch("its link to its node leader broke")
            return
        reset = getattr(self.wire, "reset", None)
        if callable(reset):
            reset()

    @property
    def resume_after(self) -> int | None:
        value = getattr(self.wire, "resume_after", None)
        return value if isinstance(value, int) else None

    def serve(self, on_join: OnJoin, on_frame: OnFrame, on_lost: OnLost, stop: threading.Event) -> None:
        raise NotImplementedError("a member's wire does not serve")

    def shutdown(self, finished: frozenset[int] = frozenset()) -> None:
        self.wire.shutdown(finished)
