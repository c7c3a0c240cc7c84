"""The frame protocol over an in-memory wire: exactly-once delivery, counts, lost and absent peers.

The wire here is a real (in-process) transport, injected like httpx's mock transport;
the engines themselves are exercised under real launchers in the other test modules.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest

from em_dist.ranks import frames as p2p
from em_dist.ranks.frames import LinkClosed, P2PChannel, Wire

pytestmark = pytest.mark.timeout(60)


class Hub:
    """Queues between rank 0 and each peer; ``kill(r)`` breaks a peer's link like a dead process."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.up = {r: queue.Queue() for r in range(1, world)}
        self.down = {r: queue.Queue() for r in range(1, world)}
        self.joined: "queue.Queue[int]" = queue.Queue()
        self.dead: set[int] = set()
        self.duplicate_first_frame = False


class MemWire(Wire):
    transport = "memory"

    def __init__(self, hub: Hub, rank: int) -> None:
        self.hub, self.rank, self.world_size = hub, rank, hub.world
        self._sent = 0

    def connect(self) -> None:
        self.hub.joined.put(self.rank)

    def send(self, data: bytes) -> None:
        if self.rank in self.hub.dead:
            raise LinkClosed("dead")
        self.hub.up[self.rank].put(data)
        self._sent += 1
        if self._sent == 1 and self.hub.duplicate_first_frame:
            self.hub.up[self.rank].put(data)

    def recv_reply(self, timeout: float):
        try:
            return self.hub.down[self.rank].get(timeout=timeout)
        except queue.Empty:
            return None

    def serve(self, on_join, on_frame, on_lost, stop) -> None:
        self.mark_ready()
        live: set[int] = set()
        while not stop.is_set():
            try:
                while True:
                    r = self.hub.joined.get_nowait()
                    live.add(r)
                    on_join(r)
            except queue.Empty:
                pass
            for r in list(live):
                if r in self.hub.dead:
                    live.discard(r)
                    on_lost(r)
                    continue
                try:
                    data = self.hub.up[r].get_nowait()
                except queue.Empty:
                    continue
                reply = on_frame(r, data)
                if reply is not None:
                    self.hub.down[r].put(reply)
            time.sleep(0.001)


def _job(hub: Hub, ranks):
    got: dict[int, list] = {}
    lock = threading.Lock()

    def deliver(src, msg):
        with lock:
            got.setdefault(src, []).append(msg)

    root = P2PChannel(MemWire(hub, 0), send_interval=0.01)
    root.start(deliver)
    peers = {r: P2PChannel(MemWire(hub, r), send_interval=0.01) for r in ranks}
    for ch in peers.values():
        ch.start(None)
    return root, peers, got


def test_every_message_once_in_order_even_when_a_frame_repeats():
    hub = Hub(3)
    hub.duplicate_first_frame = True
    root, peers, got = _job(hub, [1, 2])
    for r, ch in peers.items():
        for i in range(500 * r):
            ch.post(("m", i))
    for ch in peers.values():
        assert ch.close(10) == set()
    assert root.close(10) == set() and root.absent == set()
    for r in (1, 2):
        assert got[r] == [("m", i) for i in range(500 * r)]


def test_dead_peer_is_lost_and_absent_peer_is_not_waited_for(monkeypatch):
    monkeypatch.setattr(p2p, "JOIN_GRACE", 0.5)
    hub = Hub(3)
    root, peers, got = _job(hub, [1])  # rank 2 never creates a run
    peers[1].post(("m", 0))
    deadline = time.monotonic() + 5
    while not got.get(1) and time.monotonic() < deadline:
        time.sleep(0.01)
    hub.dead.add(1)
    t0 = time.monotonic()
    assert root.close(30) == {1}
    assert time.monotonic() - t0 < 5
    assert root.absent == {2} and got[1] == [("m", 0)]
