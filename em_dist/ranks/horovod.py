"""A :class:`Channel` over Horovod's own collectives (``horovod.torch``).

How it works. Every rank's em_dist thread runs the same sequence of *rounds*; a
round is one ``hvd.alltoall`` on a small uint8 CPU tensor named for the channel
(``em_dist.hvd.<nonce>``), so Horovod negotiates it apart from the user's tensors,
whatever order the training thread submits those in. Rounds run one after the other,
so the name is never in flight twice, and reusing it keeps Horovod's response cache
to one entry for em_dist instead of one per round.
In a round a non-zero rank sends its queued messages (pickled) to rank 0 only, and
rank 0 sends one control byte to each peer (``1`` = last round, stop). That is
O(world) bytes per round, not the O(world²) of an allgather. A round runs every
``interval`` seconds (sooner while a backlog or a close is pending).

The training thread never touches a collective: ``post()`` appends to a deque. The
round thread submits with ``alltoall_async`` and *polls* the handle with a short
back-off, because Horovod's ``synchronize()`` spins a core until the op completes.

Closing. A peer's ``close()`` sends what is queued plus a goodbye, then keeps taking
part in rounds until rank 0 says stop, which rank 0 does once every peer said goodbye
(or once its own ``close`` gave up); all ranks thus leave in the same round and no
collective is left half-entered. Every wait is bounded by ``close(timeout)``.

Latency. A round costs a few Horovod cycles; ``HOROVOD_CYCLE_TIME`` (ms, default
about 1-2 ms) sets that. em_dist never changes the user's Horovod settings.

Rank-0-only scripts (``create_run`` on rank 0 alone). Rank 0's first round then never
completes: there is no way to learn that the peers will never come without a
collective. The training is not affected (Horovod negotiates each named tensor on its
own), the run records rank 0 locally, and ``close()`` returns after
``connect_grace`` seconds with no lost ranks (``connected`` stays False). The
pending round stays in Horovod's queue until ``hvd.shutdown()``; Horovod's stall
inspector may log a warning naming an ``em_dist.hvd...`` tensor after
``HOROVOD_STALL_CHECK_TIME_SECONDS`` (60 s). Because a user who set
``HOROVOD_STALL_SHUTDOWN_TIME_SECONDS`` would have Horovod shut the job down over
such a tensor, the channel refuses to start in that case (``DistributedError``) and
the run records locally.

Limits: only ``horovod.torch`` is supported (the TensorFlow/MXNet bindings keep a
separate Horovod state); Horovod elastic resets end the channel (records already
delivered are kept).
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import pickle
import threading
import time
from typing import Any

from ..errors import DistributedError
from .channel import Channel, Deliver

_log = logging.getLogger(__name__)

_channel_ids = itertools.count()
"""Channels are numbered in creation order; every rank creates them in the same order,
so the number names the same channel on every rank."""

_CONTINUE = 0
_STOP = 1


def _stall_shutdown_armed() -> bool:
    """True when Horovod would shut the job down over a tensor some ranks never submit."""
    if os.environ.get("HOROVOD_STALL_CHECK_DISABLE", "").strip() not in ("", "0"):
        return False
    try:
        return float(os.environ.get("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", "0") or 0) > 0
    except ValueError:
        return False


class HorovodChannel(Channel):
    """Carries messages from every rank to rank 0 through Horovod ``alltoall`` rounds.

    Construct it on every rank of a Horovod job, in the same order relative to other
    channels. ``rank``/``world_size`` may be given (from the launcher's environment)
    when Horovod is not initialised yet; the round thread then waits (up to ``timeout``
    s) for ``hvd.init()`` by the user and never initialises Horovod itself. ``nonce``
    names this channel's collectives; every rank must pass the same one (default: a
    per-process creation counter).
    """

    def __init__(
        self,
        rank: int | None = None,
        world_size: int | None = None,
        *,
        nonce: str | None = None,
        timeout: float = 600.0,
        interval: float = 0.1,
        connect_grace: float = 3.0,
        max_batch: int = 8192,
        round_bytes: int = 8 << 20,
    ) -> None:
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
        self._interval = interval
        self._connect_grace = connect_grace
        self._max_batch = max_batch
        self._round_bytes = round_bytes
        self._backlog = False  # peer: the last round could not take the whole queue
        self._prefix = f"em_dist.hvd.{nonce if nonce is not None else next(_channel_ids)}"
        self._init_timeout = timeout
        self._queue: collections.deque[Any] = collections.deque()
        self._wake = threading.Event()
        self._closing = False  # close() was called
        self._gave_up = False  # rank 0: close() returned; tell the peers to stop
        self._connected = threading.Event()
        self._done = threading.Event()  # the round thread left the loop
        self._bye_sent = threading.Event()  # peer: the round carrying our goodbye completed
        self._all_bye = threading.Event()  # rank 0: every peer said goodbye
        self._byes: set[int] = set()
        self._deliver: Deliver | None = None
        self._thread: threading.Thread | None = None
        self._dropped_after_close = 0
        self.absent: set[int] = set()
        """Rank 0: peers that never joined (all of them when no round ever completed)."""
        self.undelivered = 0
        """A peer: messages still queued when ``close`` gave up."""

    # -- Channel API ---------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True once the first round with every peer completed."""
        return self._connected.is_set()

    def start(self, deliver: Deliver | None) -> None:
        """Start the round thread; returns at once."""
        if self._thread is not None:
            return
        self._deliver = deliver
        if self.world_size <= 1:
            self._connected.set()
            self._all_bye.set()
            self._done.set()
            return
        self._thread = threading.Thread(
            target=self._run, name=f"em_dist-horovod-{self._prefix}", daemon=True
        )
        self._thread.start()

    def post(self, message: Any) -> None:
        """Queue a message for rank 0; never blocks (an append to a deque)."""
        if self._closing or self._done.is_set():
            self._dropped_after_close += 1
            if self._dropped_after_close == 1:
                _log.warning("em_dist: message posted after the Horovod channel closed; dropped")
            return
        self._queue.append(message)
        if len(self._queue) >= self._max_batch:
            self._wake.set()

    def close(self, timeout: float) -> set[int]:
        """Flush and stop within ``timeout`` s; on rank 0 return the peers that never said goodbye."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._closing = True
        self._wake.set()
        if self._thread is None:
            return set()
        if self.rank == 0:
            return self._close_root(deadline)
        # A peer waits for rank 0's stop, so that no rank leaves a round the others entered.
        self._done.wait(max(0.0, deadline - time.monotonic()))
        if not self._bye_sent.is_set() and self._queue:
            self.undelivered = len(self._queue)
            _log.warning(
                "em_dist: %d message(s) of rank %d did not reach rank 0 over Horovod before the timeout",
                len(self._queue), self.rank,
            )
        return set()

    # -- rank 0 ----------------------------------------------------------------------

    def _close_root(self, deadline: float) -> set[int]:
        if not self._connected.is_set():
            grace = min(deadline, time.monotonic() + self._connect_grace)
            self._connected.wait(max(0.0, grace - time.monotonic()))
            if not self._connected.is_set():
                # Rank-0-only script, or peers that never created their run.
                self._gave_up = True
                self.absent = set(range(1, self.world_size))
                _log.info("em_dist: no Horovod peer joined this run; it holds rank 0 only")
                return set()
        self._done.wait(max(0.0, deadline - time.monotonic()))
        self._gave_up = True
        self._wake.set()
        return set(range(1, self.world_size)) - self._byes

    def _root_payload(self) -> tuple[bytes, list[int]]:
        stop = self._gave_up or self._all_bye.is_set()
        flag = _STOP if stop else _CONTINUE
        return bytes([flag]) * (self.world_size - 1), [0] + [1] * (self.world_size - 1)

    def _root_receive(self, data: bytes, splits: list[int]) -> None:
        offset = splits[0]
        for src in range(1, self.world_size):
            size = splits[src]
            chunk = data[offset:offset + size]
            offset += size
            if not chunk:
                continue
            try:
                messages, bye = pickle.loads(chunk)
            except Exception:  # cannot happen with our own peers; never stop the others over it
                _log.exception("em_dist: unreadable round payload from rank %d dropped", src)
                continue
            for message in messages:
                self._deliver_one(src, message)
            if bye:
                self._byes.add(src)
        if len(self._byes) == self.world_size - 1:
            self._all_bye.set()

    def _deliver_one(self, src: int, message: Any) -> None:
        if self._gave_up or self._deliver is None:
            return
        try:
            self._deliver(src, message)
        except Exception:  # a bad message must not stop the gather of the others
            _log.exception("em_dist: delivering a message from rank %d failed", src)

    # -- peers -----------------------------------------------------------------------

    def _peer_payload(self) -> tuple[bytes, list[int], bool]:
        batch: list[Any] = []
        size = 0
        while self._queue and len(batch) < self._max_batch and size < self._round_bytes:
            message = self._queue.popleft()
            batch.append(message)
            size += _rough_size(message)
        self._backlog = bool(self._queue)
        bye = self._closing and not self._queue and not self._bye_sent.is_set()
        blob = pickle.dumps((batch, bye), protocol=pickle.HIGHEST_PROTOCOL)
        return blob, [len(blob)] + [0] * (self.world_size - 1), bye

    # -- the round thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._wait_for_init():
                self._rounds()
        except Exception as exc:  # Horovod shut down, a rank died, elastic reset...
            _log.warning("em_dist: Horovod channel stopped: %s: %s", type(exc).__name__, exc)
        finally:
            self._done.set()

    def _wait_for_init(self) -> bool:
        hvd = self._hvd
        deadline = time.monotonic() + self._init_timeout
        while not hvd.is_initialized():
            if self._gave_up or (self._closing and self.rank != 0) or time.monotonic() > deadline:
                return False
            self._wake.wait(0.05)
            self._wake.clear()
        if (hvd.rank(), hvd.size()) != (self.rank, self.world_size):
            _log.warning(
                "em_dist: Horovod says rank %d of %d, the launcher said %d of %d; not gathering",
                hvd.rank(), hvd.size(), self.rank, self.world_size,
            )
            return False
        return True

    def _rounds(self) -> None:
        import torch

        while True:
            if self.rank == 0:
                blob, splits = self._root_payload()
                stopping = blob[0] == _STOP
                sending_bye = False
            else:
                blob, splits, sending_bye = self._peer_payload()
                stopping = False
            tensor = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
            handle = self._hvd.alltoall_async(
                tensor, splits=torch.tensor(splits, dtype=torch.int32), name=self._prefix
            )
            self._await(handle)
            output, received = self._hvd.synchronize(handle)
            self._connected.set()
            received_splits = [int(s) for s in received.tolist()]
            data = output.numpy().tobytes()
            if self.rank == 0:
                self._root_receive(data, received_splits)
                if stopping:
                    return
            else:
                if sending_bye:
                    self._bye_sent.set()
                if data[:1] == bytes([_STOP]):
                    if self._queue and not self._bye_sent.is_set():
                        _log.warning(
                            "em_dist: rank 0 closed the run; %d message(s) of rank %d were not sent",
                            len(self._queue), self.rank,
                        )
                    return
            self._pause()

    def _pause(self) -> None:
        """Wait for the next round: ``interval``, or at once with a backlog or a close pending."""
        if self._closing or self._gave_up or self._backlog:
            return
        if self.rank == 0 and self._all_bye.is_set():
            return
        self._wake.wait(self._interval)
        self._wake.clear()

    def _await(self, handle: int) -> None:
        """Poll a Horovod handle with a back-off (1 ms up to 50 ms); never returns early."""
        delay = 0.001
        while not self._hvd.poll(handle):
            time.sleep(delay)
            delay = min(delay * 2, 0.05)


def _rough_size(message: Any) -> int:
    """A cheap size guess to bound a round's payload: a record is ~100 bytes pickled."""
    body = message[-1] if isinstance(message, tuple) and message else message
    if isinstance(body, (bytes, bytearray)):
        return len(body) + 64
    if isinstance(body, (list, tuple)):
        return 100 * len(body) + 64
    return 256
