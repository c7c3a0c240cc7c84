"""Issue 21 item 4 on the gloo engine itself: no peer holds up another.

Real gloo pairs over a TCPStore on localhost, in one process (rank 0 serving, the peers as
``GlooWire`` objects of their own): a hello number taken and never written, or a goodbye whose
answer is never read, must not delay the other peers beyond a small bound.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import timedelta

import pytest

pytest.importorskip("torch.distributed")

from em_dist.ranks.gloo import GlooWire, _Hellos  # noqa: E402
from em_dist.ranks.timing import RankTimings  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def _store():
    from torch.distributed import TCPStore  # type: ignore[attr-defined]

    return TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30), wait_for_workers=False)


def _client(port: int):
    from torch.distributed import TCPStore  # type: ignore[attr-defined]

    return TCPStore("127.0.0.1", port, is_master=False, timeout=timedelta(seconds=30), wait_for_workers=False)


def test_a_hello_number_taken_and_never_written_does_not_hold_up_the_next_hello():
    store = _store()
    timings = replace(RankTimings(), accept_wait=10.0)
    hellos = _Hellos(store, "em_dist/x", timings)
    assert hellos.new() == []
    store.add("em_dist/x/hellos", 1)  # number 1: taken by a rank cut off before it wrote its hello
    number = store.add("em_dist/x/hellos", 1)
    store.set(f"em_dist/x/hello#{number}", '{"rank": 2}')
    started = time.monotonic()
    docs = []
    while not docs and time.monotonic() - started < 5:
        docs = hellos.new()
        time.sleep(0.05)
    assert docs == [{"rank": 2}] and time.monotonic() - started < 1.0
    # the missing hello still counts when it shows up within accept_wait, once
    store.set("em_dist/x/hello#1", '{"rank": 1}')
    assert hellos.new() == [{"rank": 1}]
    assert hellos.new() == []
    number = store.add("em_dist/x/hellos", 1)
    store.set(f"em_dist/x/hello#{number}", '{"rank": 3}')
    assert hellos.new() == [{"rank": 3}]


def test_a_hole_never_filled_is_given_up_after_accept_wait():
    store = _store()
    timings = replace(RankTimings(), accept_wait=0.3)
    hellos = _Hellos(store, "em_dist/y", timings)
    store.add("em_dist/y/hellos", 1)
    assert hellos.new() == []
    time.sleep(0.4)
    assert hellos.new() == []
    store.set("em_dist/y/hello#1", '{"rank": 1}')  # too late: the peer gave up waiting already
    assert hellos.new() == []


def test_a_goodbye_whose_answer_is_never_read_does_not_stall_the_other_peers():
    store = _store()
    timings = replace(RankTimings(), silence=10.0, poll=0.02)
    nonce = f"waits{time.monotonic_ns()}"
    server = GlooWire(0, 3, nonce, lambda: store, timings)
    bye_seen = threading.Event()
    frames: dict[int, list[tuple[float, bytes]]] = {1: [], 2: []}

    def on_frame(peer: int, data: bytes) -> bytes | None:
        frames[peer].append((time.monotonic(), data))
        if data == b"bye":
            bye_seen.set()
            return b"ack" * 1000  # an answer peer 1 never reads
        return None

    stop = threading.Event()
    serving = threading.Thread(target=server.serve, args=(lambda peer: None, on_frame, lambda peer: None, stop),
                               daemon=True)
    serving.start()
    # each rank its own store client, as in a job (one client's blocking gets would serialise them)
    clients = {r: _client(store.port) for r in (1, 2)}
    peers = {r: GlooWire(r, 3, nonce, (lambda c=clients[r]: c), timings) for r in (1, 2)}
    connecting = [threading.Thread(target=p.connect, args=(20.0,)) for p in peers.values()]
    for t in connecting:
        t.start()
    for t in connecting:
        t.join(30)
    try:
        peers[2].send(b"hello")
        peers[1].send(b"bye")  # peer 1 never reads the answer: its host "dropped" during its goodbye
        assert bye_seen.wait(10)
        sent = time.monotonic()
        peers[2].send(b"after")
        deadline = time.monotonic() + 10
        while not any(d == b"after" for _, d in frames[2]) and time.monotonic() < deadline:
            time.sleep(0.005)
        arrived = next(t for t, d in frames[2] if d == b"after")
        assert arrived - sent < 0.5, f"peer 2's frame waited {arrived - sent:.2f} s behind peer 1's goodbye"
    finally:
        stop.set()
        server.shutdown(frozenset())
        serving.join(5)
        for p in peers.values():
            p.release()
