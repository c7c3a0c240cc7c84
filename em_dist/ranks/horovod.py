"""A channel over Horovod's own collectives (``horovod.torch``).

How it works. Every rank runs the same sequence of *rounds*; a round is one
``hvd.alltoall`` on a small uint8 CPU tensor named for the channel
(``em_dist.hvd.<nonce>``), so Horovod negotiates it apart from the user's tensors,
whatever order the training thread submits those in. Rounds run one after the other,
so the name is never in flight twice, and reusing it keeps Horovod's response cache
to one entry for em_dist instead of one per round.

In a round a peer sends its messages (a frame of :mod:`.messages`) to rank 0 only, and rank 0 sends one
control byte to each peer (``1`` = stop: every peer said goodbye, or rank 0 gave up).
That is O(world) bytes per round, not the O(world²) of an allgather. Rank 0 runs
rounds on a thread of its own every ``horovod_interval`` seconds; a peer runs them
from its forwarding thread, one per cycle (an empty one when it has nothing to send,
so that rank 0's round completes). The training thread never touches a collective.
A round's handle is *polled* with a short back-off, because Horovod's
``synchronize()`` spins a core until the op completes.

Closing. A peer's goodbye rides in a round; it then keeps taking part in rounds until
rank 0 says stop, which rank 0 does once every peer said goodbye (or once its own
``close`` gave up), so all ranks leave in the same round and no collective is left
half-entered. Every wait at the end is bounded.

Rank-0-only scripts (``create_run`` on rank 0 alone). Rank 0's first round then never
completes: there is no way to learn that the peers will never come without a
collective. Training is not affected (Horovod negotiates each named tensor on its
own), the run records rank 0 locally, and ``close()`` returns after the join grace
with every peer absent. The pending round stays in Horovod's queue until
``hvd.shutdown()``; Horovod's stall inspector may log a warning naming an
``em_dist.hvd...`` tensor after ``HOROVOD_STALL_CHECK_TIME_SECONDS`` (60 s). Because
a user who set ``HOROVOD_STALL_SHUTDOWN_TIME_SECONDS`` would have Horovod shut the job
down over such a tensor, the channel refuses to start in that case
(``DistributedError``) and the run records locally.

Limits: only ``horovod.torch`` is supported (the TensorFlow/MXNet bindings keep a
separate Horovod state); Horovod elastic resets end the channel (records already
delivered are kept).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from typing import Any, Callable

from .._warn import warn_once
from ..errors import DistributedError, WireVersionError
from .channel import Ack, Acknowledge, ChannelEnd, Deliver, LinkClosed, PeerChannel, RootChannel
from .frames import _rough_size
from .messages import dumps, loads
from .timing import RankTimings

_log = logging.getLogger(__name__)

_channel_ids = itertools.count()
"""Channels are numbered in creation order; every rank creates them in the same order,
so the number names the same channel on every rank."""

_CONTINUE = 0
_STOP = 1
MAX_BATCH = 8192
ROUND_BYTES = 8 << 20


def _stall_shutdown_armed() -> bool:
    """True when Horovod would shut the job down over a tensor some ranks never submit."""
    if os.environ.get("HOROVOD_STALL_CHECK_DISABLE", "").strip() not in ("", "0"):
        return False
    try:
        return float(os.environ.get("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", "0") or 0) > 0
    except ValueError:
        return False


class _Rounds:
    """What both ends share: Horovod, the layout, and one alltoall round."""

    transport = "horovod"

    def __init__(self, rank: int | None, world_size: int | None, nonce: str | None,
                 timings: RankTimings, run_doc: dict[str, Any] | None = None) -> None:
        try:
            import horovod.torch as hvd
        except ImportError as exc:
            raise DistributedError(f"horovod.torch is not importable: {exc}") from exc
        if _stall_shutdown_armed():
            raise DistributedError(
                "HOROVOD_STALL_SHUTDOWN_TIME_SECONDS is set: a rank-0-only run would let "
                "Horovod stop the job, so em_dist records this rank locally"
            )
        if hvd.is_initialized():
            rank, world_size = hvd.rank(), hvd.size()
        elif rank is None or world_size is None:
            raise DistributedError("Horovod is not initialised and no rank/world size was given")
        self._hvd = hvd
        self.rank = int(rank)
        self.world_size = int(world_size)
        self._timings = timings
        self._name = f"em_dist.hvd.{nonce if nonce is not None else next(_channel_ids)}"
        self._run_doc = run_doc or {}
        self._created = time.monotonic()

    def _initialised(self) -> bool:
        """True once the script called ``hvd.init()`` with the layout we were told; never calls it."""
        hvd = self._hvd
        if not hvd.is_initialized():
            if time.monotonic() - self._created > self._timings.engine_wait:
                raise DistributedError("the script did not call hvd.init() in time")
            return False
        if (hvd.rank(), hvd.size()) != (self.rank, self.world_size):
            raise DistributedError(f"Horovod says rank {hvd.rank()} of {hvd.size()}, the launcher said "
                                   f"{self.rank} of {self.world_size}; not gathering")
        return True

    def _round(self, blob: bytes, splits: list[int], until: float | None = None) -> tuple[bytes, list[int]] | None:
        """One alltoall; None if ``until`` passed first (the round is then left in Horovod's queue)."""
        import torch

        tensor = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
        handle = self._hvd.alltoall_async(tensor, splits=torch.tensor(splits, dtype=torch.int32), name=self._name)
        delay = 0.001
        while not self._hvd.poll(handle):
            if until is not None and time.monotonic() >= until:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        output, received = self._hvd.synchronize(handle)
        return output.numpy().tobytes(), [int(s) for s in received.tolist()]


class HorovodRoot(_Rounds, RootChannel):
    """Rank 0's end: a thread of rounds, receiving every peer's messages."""

    def __init__(self, rank: int | None = None, world_size: int | None = None, *, nonce: str | None = None,
                 timings: RankTimings = RankTimings(), run_doc: dict[str, Any] | None = None) -> None:
        super().__init__(rank, world_size, nonce, timings, run_doc)
        self._deliver: Deliver | None = None
        self._gave_up = False
        self._failed = False
        self._connected = threading.Event()
        self._all_bye = threading.Event()
        self._done = threading.Event()
        self._byes: set[int] = set()
        self._thread: threading.Thread | None = None

    @property
    def connected(self) -> bool:
        """True once the first round with every peer completed."""
        return self._connected.is_set()

    def start(self, deliver: Deliver, acknowledge: Acknowledge | None = None,
              resume: Callable[[int], int] | None = None) -> None:
        self._deliver = deliver
        if self.world_size <= 1:
            self._connected.set()
            self._done.set()
            return
        self._thread = threading.Thread(target=self._run, name=f"em_dist-horovod-{self._name}", daemon=True)
        self._thread.start()

    def close(self, timeout: float, join_grace: float) -> ChannelEnd:
        deadline = time.monotonic() + max(0.0, timeout)
        peers = set(range(1, self.world_size))
        if self._thread is None:
            return ChannelEnd()
        if not self._connected.wait(max(0.0, min(deadline, time.monotonic() + join_grace) - time.monotonic())):
            self._gave_up = True  # rank-0-only script, or peers that never created their run
            _log.info("em_dist: no Horovod peer joined this run; it holds rank 0 only")
            return ChannelEnd(absent=peers)
        interrupted: BaseException | None = None
        try:
            while not self._done.is_set() and time.monotonic() < self._until(deadline):  # hurry() may cut it short
                self._done.wait(max(0.0, min(self._timings.poll, self._until(deadline) - time.monotonic())))
        except (KeyboardInterrupt, SystemExit) as exc:  # the program's signal handler ended the wait
            interrupted = exc
        self._gave_up = True
        missing = peers - self._byes
        # rounds need every rank: while they ran without error, a missing peer is alive, only late
        if self._failed:
            return ChannelEnd(lost=missing, late=set(), interrupted=interrupted)
        return ChannelEnd(late=missing, interrupted=interrupted)

    def _run(self) -> None:
        try:
            while not self._initialised():
                if self._gave_up:
                    return
                time.sleep(self._timings.poll)
            self.mark_ready()
            self._rounds()
        except Exception as exc:  # noqa: BLE001 - Horovod shut down, a rank died, elastic reset...
            self._failed = True
            if self._gave_up:  # the run is over (rank-0-only: the round left pending ends at hvd.shutdown())
                _log.debug("em_dist: Horovod channel ended at shutdown: %s: %s", type(exc).__name__, exc)
            else:
                _log.warning("em_dist: Horovod channel stopped: %s: %s", type(exc).__name__, exc)
        finally:
            self._done.set()

    def _rounds(self) -> None:
        peers = self.world_size - 1
        announce = json.dumps(self._run_doc).encode()  # the first round tells the peers which run this is
        while True:
            stop = self._gave_up or self._all_bye.is_set()
            control = bytes([_STOP if stop else _CONTINUE]) + announce
            announce = b""
            data, splits = self._round(control * peers, [0] + [len(control)] * peers)  # type: ignore[misc]
            self._connected.set()
            self._receive(data, splits)
            if stop:
                return
            if not self._all_bye.is_set():
                time.sleep(self._timings.horovod_interval)

    def _receive(self, data: bytes, splits: list[int]) -> None:
        offset = splits[0]
        for src in range(1, self.world_size):
            chunk = data[offset:offset + splits[src]]
            offset += splits[src]
            if not chunk:
                continue
            try:
                frame = loads(chunk)
                received, bye = frame["msgs"], bool(frame.get("bye"))
            except WireVersionError as exc:
                warn_once(f"horovod-version-{src}", f"em_dist: rank {src}: {exc}")
                continue
            except (ValueError, KeyError, TypeError):  # cannot happen with our own peers; never stop the others
                _log.exception("em_dist: unreadable round payload from rank %d dropped", src)
                continue
            for message in received:
                if self._gave_up or self._deliver is None:
                    break
                try:
                    self._deliver(src, message)
                except Exception:  # noqa: BLE001 - a bad message must not stop the gather of the others
                    _log.exception("em_dist: delivering a message from rank %d failed", src)
            if bye:
                self._byes.add(src)
        if len(self._byes) == self.world_size - 1:
            self._all_bye.set()


class HorovodPeer(_Rounds, PeerChannel):
    """A non-zero rank's end: rounds run from the peer sink's forwarding thread."""

    def __init__(self, rank: int | None = None, world_size: int | None = None, *, nonce: str | None = None,
                 timings: RankTimings = RankTimings()) -> None:
        super().__init__(rank, world_size, nonce, timings)
        self._rank0_run: dict[str, Any] | None = None
        self._ready = False
        self._stopped = False  # rank 0 said stop
        self._joined = False  # a round completed

    @property
    def connected(self) -> bool:
        return self._joined

    @property
    def rank0_run(self) -> dict[str, Any] | None:
        return self._rank0_run

    def connect(self, wait: float) -> bool:
        deadline = time.monotonic() + wait
        while not self._initialised():
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(self._timings.poll, max(0.0, deadline - time.monotonic())))
        self.mark_ready()
        self._ready = True
        return True

    def send(self, messages: list[Any]) -> None:
        """One round at least (rank 0's round needs every peer's), more while a batch is too big for one."""
        i = 0
        while True:
            batch: list[Any] = []
            size = 0
            while i < len(messages) and len(batch) < MAX_BATCH and size < ROUND_BYTES:
                batch.append(messages[i])
                size += _rough_size(messages[i])
                i += 1
            self._peer_round(batch, bye=False, until=None)
            if i >= len(messages):
                return

    def goodbye(self, timeout: float, records: int = 0) -> Ack | None:
        """An empty :class:`Ack` once rank 0 said stop: these rounds carry no record numbers, so the
        journal stays and is merged at the end (rank 0's, or this rank's own)."""
        until = time.monotonic() + timeout
        if not self._peer_round([], bye=True, until=until):
            return None
        while not self._stopped:  # stay in rounds until rank 0 says stop: nobody leaves one half-entered
            if not self._peer_round([], bye=False, until=until):
                return None
        return Ack()

    def _peer_round(self, batch: list[Any], bye: bool, until: float | None) -> bool:
        if self._stopped:
            raise LinkClosed("rank 0 closed the run")
        blob = dumps({"msgs": batch, "bye": bye})
        got = self._round(blob, [len(blob)] + [0] * (self.world_size - 1), until)
        if got is None:
            return False
        self._joined = True
        if len(got[0]) > 1:
            try:
                self._rank0_run = json.loads(got[0][1:])
            except ValueError:
                pass
        if got[0][:1] == bytes([_STOP]):
            self._stopped = True
            if batch and not bye:
                raise LinkClosed("rank 0 closed the run before this rank's last records arrived")
        return True
