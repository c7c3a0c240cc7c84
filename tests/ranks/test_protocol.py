"""The frame protocol over an in-memory wire: exactly-once delivery, counts, lost and absent peers.

The wire here is a real (in-process) transport, injected like httpx's mock transport;
the engines themselves are exercised under real launchers in the other test modules.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest

from tests.poll import wait_for

from em_dist.ranks.channel import LinkClosed
from em_dist.ranks.frames import ACK, FramePeer, FrameRoot, Wire

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

    def connect(self, wait: float) -> bool:
        self.mark_ready()
        self.hub.joined.put(self.rank)
        return True

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
                    data = self.hub.up[r].get(timeout=0.001)
                except queue.Empty:
                    continue
                reply = on_frame(r, data)
                if reply is not None:
                    self.hub.down[r].put(reply)


class Root:
    """Rank 0's end with what it delivered, per peer."""

    def __init__(self, hub: Hub) -> None:
        self.got: dict[int, list] = {}
        self.channel = FrameRoot(MemWire(hub, 0))
        self.channel.start(lambda src, msg: self.got.setdefault(src, []).append(msg))


def test_every_message_once_in_order_even_when_a_frame_repeats():
    hub = Hub(3)
    hub.duplicate_first_frame = True
    root = Root(hub)
    for r in (1, 2):
        peer = FramePeer(MemWire(hub, r))
        assert peer.connect(1.0) and peer.connected
        msgs = [("m", i) for i in range(500 * r)]
        for start in range(0, len(msgs), 70):
            peer.send(msgs[start:start + 70])
        assert peer.goodbye(10)
    end = root.channel.close(10, join_grace=1)
    assert end.lost == set() and end.absent == set()
    for r in (1, 2):
        assert root.got[r] == [("m", i) for i in range(500 * r)]


def test_big_messages_split_into_frames():
    hub = Hub(2)
    root = Root(hub)
    peer = FramePeer(MemWire(hub, 1))
    peer.connect(1.0)
    peer.send([("chunk", b"x" * (3 << 20)) for _ in range(3)])  # 9 MB: more than one 4 MB frame
    assert peer.goodbye(10)
    assert hub.up[1].qsize() == 0 and peer._seq >= 3  # two or more data frames, then the goodbye
    assert root.channel.close(10, join_grace=1).lost == set()
    assert [len(m[1]) for m in root.got[1]] == [3 << 20] * 3


def test_dead_peer_is_lost_and_absent_peer_is_not_waited_for():
    hub = Hub(3)
    root = Root(hub)  # rank 2 never creates a run
    peer = FramePeer(MemWire(hub, 1))
    peer.connect(1.0)
    peer.send([("m", 0)])
    wait_for(lambda: root.got.get(1), 5, "rank 1's first message")
    hub.dead.add(1)
    t0 = time.monotonic()
    end = root.channel.close(30, join_grace=0.5)
    assert end.lost == {1} and end.absent == {2}
    assert time.monotonic() - t0 < 5
    assert root.got[1] == [("m", 0)]
    with pytest.raises(LinkClosed):
        peer.send([("m", 1)])


def test_goodbye_is_answered_with_an_ack_and_a_missing_answer_times_out():
    hub = Hub(2)
    peer = FramePeer(MemWire(hub, 1))
    peer.connect(1.0)
    t0 = time.monotonic()
    assert peer.goodbye(0.3) is None  # no rank 0 serving: bounded
    assert 0.25 < time.monotonic() - t0 < 3
    hub.down[1].put(ACK)
    assert peer.wire.recv_reply(0.1) == ACK


class CountingWire(MemWire):
    def __init__(self, hub: Hub, rank: int) -> None:
        super().__init__(hub, rank)
        self.bytes = 0

    def send(self, data: bytes) -> None:
        self.bytes += len(data)
        super().send(data)


def test_frames_from_another_node_are_compressed_and_still_delivered_once():
    hub = Hub(3)
    root = Root(hub)
    lines = [f'{{"type":"train","step":{i},"epoch":0,"time":1764000000.{i},"metrics":{{"loss":0.{i}}}}}\n'
             for i in range(20_000)]
    wires = {r: CountingWire(hub, r) for r in (1, 2)}
    for r, compress in ((1, False), (2, True)):
        peer = FramePeer(wires[r], compress=compress)
        peer.connect(1.0)
        for start in range(0, len(lines), 5000):
            peer.send([("rec", lines[start:start + 5000])])
        assert peer.goodbye(10)
    assert root.channel.close(10, join_grace=1).lost == set()
    for r in (1, 2):
        assert [line for _, batch in root.got[r] for line in batch] == lines
    assert wires[2].bytes * 3 < wires[1].bytes  # zlib: about 4x fewer bytes between nodes


def test_a_quiet_peer_sends_a_heartbeat_frame():
    hub = Hub(2)
    peer = FramePeer(MemWire(hub, 1), heartbeat=0.05)
    peer.connect(1.0)
    peer.send([])
    assert hub.up[1].qsize() == 0  # not quiet long enough yet
    wait_for(lambda: (peer.send([]), hub.up[1].qsize())[1] == 1, 5, "a heartbeat frame")


def test_a_leader_relays_its_members_frames_once_and_rank0_waits_on_its_own_links_only():
    """Rank 2 relays rank 3 (whose first frame arrives twice); rank 1 talks to rank 0 directly.
    Rank 0 delivers every message once, and at close waits for the release of its own links
    only (a relayed rank has none there: waiting for it cost every relayed job 2 s)."""
    from em_dist.ranks.relay import RelayPeer
    from em_dist.ranks.timing import RankTimings

    hub, node = Hub(4), Hub(4)
    node.duplicate_first_frame = True
    released: list[set[int]] = []

    class RootWire(MemWire):
        def shutdown(self, finished=frozenset()) -> None:
            released.append(set(finished))

    got: dict[int, list] = {}
    root = FrameRoot(RootWire(hub, 0))
    root.start(lambda src, msg: got.setdefault(src, []).append(msg))
    leader = RelayPeer(FramePeer(MemWire(hub, 2)), MemWire(node, 2), range(3, 4),
                       RankTimings(send_interval=0.05, root_join_grace=1.0))
    assert leader.connect(1.0)
    member = FramePeer(MemWire(node, 3))
    assert member.connect(1.0)
    for start in range(0, 300, 50):
        member.send([("m", i) for i in range(start, start + 50)])
    leader.send([("own", 0)])
    assert member.goodbye(10)  # answered by the leader, which holds its frames
    direct = FramePeer(MemWire(hub, 1))
    assert direct.connect(1.0)
    direct.send([("m", "one")])
    assert direct.goodbye(10)
    assert leader.goodbye(10)
    leader.shutdown()
    end = root.close(10, join_grace=1)
    assert end.lost == set() and end.late == set() and end.absent == set() and end.relayed_by == {3: 2}
    assert got[3] == [("m", i) for i in range(300)] and got[2] == [("own", 0)] and got[1] == [("m", "one")]
    assert released == [{1, 2}]


def test_a_lost_leader_loses_the_members_it_relayed_that_had_not_finished():
    hub = Hub(5)
    root = Root(hub)
    leader = FramePeer(MemWire(hub, 2))
    leader.connect(1.0)
    from em_dist.ranks.frames import pack

    bye = pack({"seq": 1, "msgs": [("m", 4)], "bye": {"frames": 1, "messages": 1}}, False)
    leader.send([("relay_join", 3), ("relay_join", 4), ("relay", 4, bye),
                 ("relay", 3, pack({"seq": 1, "msgs": [("m", 3)]}, False))])
    wait_for(lambda: root.got.get(3) and root.got.get(4), 5, "the relayed messages")
    hub.dead.add(2)
    end = root.channel.close(30, join_grace=0.5)
    assert end.lost == {2, 3} and end.absent == {1} and end.relayed_by == {3: 2, 4: 2}
    assert root.got[3] == [("m", 3)] and root.got[4] == [("m", 4)]


def test_frames_between_nodes_are_zstd_and_zlib_frames_still_read():
    import pickle
    import zlib

    from em_dist.ranks.frames import pack, unpack

    frame = {"seq": 1, "msgs": [("rec", [f"{i:06d}" + "x" * 100 for i in range(100)])]}
    assert pack(frame, True)[:4] == b"\x28\xb5\x2f\xfd" and unpack(pack(frame, True)) == frame
    assert pack(frame, False)[:1] == b"\x80" and unpack(pack(frame, False)) == frame
    assert unpack(zlib.compress(pickle.dumps(frame), 1)) == frame
