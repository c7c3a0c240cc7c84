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

from em_dist.errors import WireVersionError
from em_dist.ranks.channel import LinkClosed
from em_dist.ranks.frames import ACK, FramePeer, FrameRoot, Wire, pack
from em_dist.ranks.messages import ArtifactChunk, Hparams, Records, RelayJoin, Relayed


def msg(i: object) -> Hparams:
    """A small typed message standing for 'message i'."""
    return Hparams({"i": i})

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
                try:
                    reply = on_frame(r, data)
                except Exception:  # as the real wires do: a frame rank 0 can't read loses that peer
                    live.discard(r)
                    on_lost(r)
                    continue
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
        msgs = [msg(i) for i in range(500 * r)]
        for start in range(0, len(msgs), 70):
            peer.send(msgs[start:start + 70])
        assert peer.goodbye(10)
    end = root.channel.close(10, join_grace=1)
    assert end.lost == set() and end.absent == set()
    for r in (1, 2):
        assert root.got[r] == [msg(i) for i in range(500 * r)]


def test_big_messages_split_into_frames():
    hub = Hub(2)
    root = Root(hub)
    peer = FramePeer(MemWire(hub, 1))
    peer.connect(1.0)
    peer.send([ArtifactChunk("a", "f", 0, b"x" * (3 << 20)) for _ in range(3)])  # 9 MB: more than one 4 MB frame
    assert peer.goodbye(10)
    assert hub.up[1].qsize() == 0 and peer._seq >= 3  # two or more data frames, then the goodbye
    assert root.channel.close(10, join_grace=1).lost == set()
    assert [len(m.data) for m in root.got[1]] == [3 << 20] * 3


def test_dead_peer_is_lost_and_absent_peer_is_not_waited_for():
    hub = Hub(3)
    root = Root(hub)  # rank 2 never creates a run
    peer = FramePeer(MemWire(hub, 1))
    peer.connect(1.0)
    peer.send([msg(0)])
    wait_for(lambda: root.got.get(1), 5, "rank 1's first message")
    hub.dead.add(1)
    t0 = time.monotonic()
    end = root.channel.close(30, join_grace=0.5)
    assert end.lost == {1} and end.absent == {2}
    assert time.monotonic() - t0 < 5
    assert root.got[1] == [msg(0)]
    with pytest.raises(LinkClosed):
        peer.send([msg(1)])


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
            peer.send([Records(lines[start:start + 5000], start + 1)])
        assert peer.goodbye(10)
    assert root.channel.close(10, join_grace=1).lost == set()
    for r in (1, 2):
        assert [line for m in root.got[r] for line in m.lines] == lines
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
        member.send([msg(i) for i in range(start, start + 50)])
    leader.send([msg("own")])
    assert member.goodbye(10)  # answered by the leader, which holds its frames
    direct = FramePeer(MemWire(hub, 1))
    assert direct.connect(1.0)
    direct.send([msg("one")])
    assert direct.goodbye(10)
    assert leader.goodbye(10)
    leader.shutdown()
    end = root.close(10, join_grace=1)
    assert end.lost == set() and end.late == set() and end.absent == set() and end.relayed_by == {3: 2}
    assert got[3] == [msg(i) for i in range(300)] and got[2] == [msg("own")] and got[1] == [msg("one")]
    assert released == [{1, 2}]


def test_a_lost_leader_loses_the_members_it_relayed_that_had_not_finished():
    hub = Hub(5)
    root = Root(hub)
    leader = FramePeer(MemWire(hub, 2))
    leader.connect(1.0)
    from em_dist.ranks.frames import pack

    bye = pack({"seq": 1, "msgs": [msg(4)], "bye": {"frames": 1, "messages": 1}}, False)
    leader.send([RelayJoin(3), RelayJoin(4), Relayed(4, bye),
                 Relayed(3, pack({"seq": 1, "msgs": [msg(3)]}, False))])
    wait_for(lambda: root.got.get(3) and root.got.get(4), 5, "the relayed messages")
    hub.dead.add(2)
    end = root.channel.close(30, join_grace=0.5)
    assert end.lost == {2, 3} and end.absent == {1} and end.relayed_by == {3: 2, 4: 2}
    assert root.got[3] == [msg(3)] and root.got[4] == [msg(4)]


def test_hurry_ends_a_close_waiting_for_silent_ranks_and_names_them_late_with_their_relay():
    """A signal ending rank 0 while its close waits (for ranks on a host that was cut off, say): a
    hurry from another thread ends the wait by its deadline, and the end still says who was waited
    for (late: their links never broke), who relayed whom, and who never came."""
    hub = Hub(5)
    root = Root(hub)
    leader = FramePeer(MemWire(hub, 2))
    leader.connect(1.0)
    leader.send([RelayJoin(3), Relayed(3, pack({"seq": 1, "msgs": [msg(3)]}, False))])
    wait_for(lambda: root.got.get(3), 5, "the relayed message")
    result: list = []
    closing = threading.Thread(target=lambda: result.append(root.channel.close(60, join_grace=0.5)))
    t0 = time.monotonic()
    closing.start()
    wait_for(lambda: time.monotonic() - t0 > 0.6, 5, "close waiting past the join grace")  # what is tested: it waits
    assert closing.is_alive() and not result
    root.channel.hurry(time.monotonic() + 0.2)
    closing.join(5)
    assert not closing.is_alive() and time.monotonic() - t0 < 3
    end = result[0]
    assert end.late == {2, 3} and end.lost == set() and end.absent == {1, 4} and end.relayed_by == {3: 2}


def test_frames_between_nodes_are_zstd_and_zlib_frames_still_read():
    import zlib

    from em_dist.ranks.frames import pack, unpack
    from em_dist.ranks.messages import WIRE_VERSION, dumps

    frame = {"seq": 1, "msgs": [Records([f"{i:06d}" + "x" * 100 for i in range(100)], 1)]}
    decoded = dict(frame, v=WIRE_VERSION)
    assert pack(frame, True)[:4] == b"\x28\xb5\x2f\xfd" and unpack(pack(frame, True)) == decoded
    assert pack(frame, False)[:1] in (b"\x83", b"\x84") and unpack(pack(frame, False)) == decoded
    assert unpack(zlib.compress(dumps(frame), 1)) == decoded


def test_two_wire_versions_refuse_each_other_clearly():
    """A frame of another em_dist (a pickled one of version 1, or a newer version) is refused with a
    message that says what to do, never unpickled or misread; a message of an unknown kind too."""
    import pickle

    import msgpack

    from em_dist.ranks.frames import unpack
    from em_dist.ranks.messages import WIRE_VERSION

    newer, ours = WIRE_VERSION + 1, WIRE_VERSION
    with pytest.raises(WireVersionError, match="pickled frame .* same em_dist version on every node"):
        unpack(pickle.dumps({"seq": 1, "msgs": [("rec", ["x"])]}, protocol=4))
    with pytest.raises(WireVersionError, match=f"wire version {newer}; this rank speaks version {ours}"):
        unpack(msgpack.packb({"v": newer, "seq": 1, "msgs": []}))
    with pytest.raises(ValueError, match="unknown em_dist message kind 'exec'"):
        unpack(msgpack.packb({"v": ours, "seq": 1, "msgs": [["exec", "rm -rf /"]]}))
    hub = Hub(2)
    root = Root(hub)
    peer = MemWire(hub, 1)
    peer.connect(1.0)
    peer.send(msgpack.packb({"v": newer, "seq": 1, "msgs": []}))  # a newer rank: dropped, not delivered
    end = root.channel.close(5, join_grace=0.5)
    assert end.lost == {1} and root.got == {}


def test_documents_travel_as_json_whatever_their_integers():
    """An hparam msgpack can't hold (10**30) must not break a rank's link: documents go as JSON text."""
    from em_dist.ranks.messages import dumps, loads

    frame = loads(dumps({"seq": 1, "msgs": [Hparams({"big": 10 ** 30, "nested": {"a": [1, 2]}})]}))
    assert frame["msgs"] == [Hparams({"big": 10 ** 30, "nested": {"a": [1, 2]}})]


class GatedWire(MemWire):
    """A peer's wire whose rank 0 is not there until the gate opens (a slow or late rank 0)."""

    def __init__(self, hub: Hub, rank: int, gate: threading.Event) -> None:
        super().__init__(hub, rank)
        self.gate = gate

    def connect(self, wait: float) -> bool:
        return self.gate.is_set() and super().connect(wait)


def test_a_peer_waiting_for_rank0_spills_to_its_journal_and_delivers_everything_once(tmp_path):
    """Rank 0 is not reachable while the peer logs 20,000 records with max_pending=1,000: they are
    journaled as they come (the buffer never fills, nothing is dropped), memory holds at most
    max_pending of them, and once rank 0 is there every record arrives once, in order, read back
    from the journal where it was spilled."""
    from em_dist.ranks.messages import Records
    from em_dist.ranks.peer import PeerSink
    from em_dist.ranks.timing import RankTimings
    from em_dist.store import attempts

    hub, gate = Hub(2), threading.Event()
    root = Root(hub)
    place = attempts.new_place("spill", "spill-run", time.time(), 2)
    sink = PeerSink(FramePeer(GatedWire(hub, 1, gate)), 1, timings=RankTimings(send_interval=0.02),
                    max_pending=1000, own_place=place, flush_interval=0.5)
    sink.write_run({"name": "spill", "status": "Running"})
    sink.start()
    for i in range(20_000):
        sink.buffer.append(("train", i, None, float(i), {"loss": float(i)}))
        if i % 500 == 499:  # a loop a bit slower than the peer's thread: no eviction
            wait_for(lambda: len(sink.buffer) < 500, 10, "the peer to journal what was logged")
    wait_for(lambda: sink._journal is not None and sink._journal.last == 20_000, 10, "every record journaled")
    assert sink._unsent_count <= 1000 and sink.drops().records == 0
    gate.set()
    sink.end(30)
    steps = [int(line.split('"step":')[1].split(",")[0]) for m in root.got[1] if isinstance(m, Records) for line in m.lines]
    assert steps == list(range(20_000))
    root.channel.close(5, join_grace=0.5)
