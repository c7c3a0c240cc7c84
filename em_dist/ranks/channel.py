"""The contract between the sinks and a distributed engine: a channel from every rank to rank 0.

A message is a small picklable Python object (a batch of encoded metric lines, a
platform entry, hparams, an artifact chunk, a failure reason). A channel has two ends:

- :class:`PeerChannel`, on every non-zero rank, driven by that rank's one forwarding
  thread (the peer sink's). ``send`` blocks until the engine took the messages, so
  back-pressure is built in: while rank 0 is slow, the records wait in the sink's
  bounded buffer and nowhere else.
- :class:`RootChannel`, on rank 0: receives on its own thread(s) and hands each
  message to ``deliver`` exactly once, in each peer's order.

Neither end ever issues a collective on the user's process groups, and every wait is
bounded by the timeouts given.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import LinkClosed as LinkClosed  # re-exported: every engine raises it

Deliver = Callable[[int, Any], None]
"""Called on rank 0, from the channel's receiving thread, once per message: (source rank, message)."""

Acknowledge = Callable[[int, int, dict[int, int | None]], dict[int, int]]
"""Called on rank 0 at a peer's goodbye: (peer, its newest record number, the members it relayed ->
the newest record number each member's relayed goodbye said, None before its goodbye) -> the newest
record number rank 0 has *on disk* for the peer and each member (it may wait, bounded)."""


@dataclass(frozen=True)
class Ack:
    """Rank 0's answer to a goodbye: rank -> the newest of its record numbers on rank 0's disk (empty when
    the answer came from a node leader or an engine that does not count: then nothing is confirmed)."""

    on_disk: dict[int, int] = field(default_factory=dict)


@dataclass
class ChannelEnd:
    """What rank 0's channel saw by the end of the run."""

    lost: set[int] = field(default_factory=set)
    """Peers that joined and whose link broke before their goodbye (the process died)."""
    late: set[int] = field(default_factory=set)
    """Peers that joined, are still connected, but did not say goodbye within the timeout."""
    absent: set[int] = field(default_factory=set)
    """Peers that never joined."""
    relayed_by: dict[int, int] = field(default_factory=dict)
    """Peer -> the node leader that relayed it (see :mod:`.relay`)."""
    interrupted: BaseException | None = None
    """``SystemExit``/``KeyboardInterrupt`` that a signal handler of the program raised on the waiting
    thread: the wait ended there and this end is what was known then; the caller records it, then
    raises it again."""


class _Readiness:
    """When this end could first see the other side (for the join graces)."""

    _ready_since: float | None = None

    @property
    def ready_since(self) -> float | None:
        """``time.monotonic()`` when this end could first look for the other side; None while still
        setting up (reaching the store, waiting for the script to start an engine)."""
        return self._ready_since

    def mark_ready(self) -> None:
        if self._ready_since is None:
            self._ready_since = time.monotonic()


class PeerChannel(_Readiness, ABC):
    """A non-zero rank's end. Used from one thread only (the peer sink's)."""

    rank: int
    world_size: int

    @property
    @abstractmethod
    def transport(self) -> str:
        """What carries the bytes (``gloo``, ``mpi``, ``horovod``), for the run's world record."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True once rank 0 accepted this rank."""

    @property
    def rank0_run(self) -> dict[str, Any] | None:
        """Rank 0's run (``id``, ``alternative_name``, ``path``) as it announced it, once connected."""
        return None

    @property
    def engine_started(self) -> bool:
        """False while the job's engine does not exist (the script started none yet): then no rank
        can have joined, and there is nothing to wait for at the end."""
        return True

    @property
    def link(self) -> dict[str, Any] | None:
        """Where this rank's links listen (see :attr:`.frames.Wire.link`); None when unknown."""
        return None

    @abstractmethod
    def connect(self, wait: float) -> bool:
        """Try, for at most ``wait`` seconds, to join rank 0; True once joined.

        False means "not yet" (rank 0 or the engine is not there yet): call again later.
        Raises when joining is impossible.
        """

    @abstractmethod
    def send(self, messages: list[Any]) -> None:
        """Hand ``messages`` to rank 0 (blocking until the engine took them; may be empty).

        Raises :class:`LinkClosed` when the link is gone.
        """

    @abstractmethod
    def goodbye(self, timeout: float, records: int = 0) -> Ack | None:
        """Tell rank 0 this rank is done (``records``: the newest number it journaled) and wait (at most
        ``timeout``) for its answer; None when none came."""

    def send_until(self, deadline: float) -> None:
        """From now on no send or wait of this end outlives ``deadline`` (``time.monotonic()``): the
        last pass before the process ends (what does not go stays in the rank's journal)."""

    def on_backlog(self, wake: Callable[[], None]) -> None:
        """``wake`` starts the sending thread's next cycle at once; a channel that gathers messages of
        its own (a node leader's relay) calls it, from any thread, when it holds enough to send."""

    def shutdown(self) -> None:
        """Release what the link holds; never blocks long."""

    @property
    def reconnects(self) -> bool:
        """Whether a broken link can be rebuilt (:meth:`reset`, then :meth:`connect` again)."""
        return False

    def reset(self) -> None:
        """Drop a broken link so that :meth:`connect` builds a new one (only where :attr:`reconnects`)."""

    @property
    def resume_after(self) -> int | None:
        """After a rebuilt link's :meth:`connect`: the newest of this rank's record numbers rank 0 had."""
        return None


class RootChannel(_Readiness, ABC):
    """Rank 0's end: receives on background thread(s) of its own."""

    world_size: int

    @property
    @abstractmethod
    def transport(self) -> str:
        """What carries the bytes (``gloo``, ``mpi``, ``horovod``)."""

    @abstractmethod
    def start(self, deliver: Deliver, acknowledge: Acknowledge | None = None,
              resume: Callable[[int], int] | None = None) -> None:
        """Begin accepting peers and receiving; returns at once. ``acknowledge`` answers goodbyes with
        what is on rank 0's disk, ``resume`` tells a peer whose link was rebuilt the newest of its
        record numbers rank 0 has (a channel that can't carry numbers ignores both)."""

    @property
    def engine_started(self) -> bool:
        """False while the job's engine does not exist (see :attr:`PeerChannel.engine_started`)."""
        return True

    @property
    def link(self) -> dict[str, Any] | None:
        """Where rank 0's links listen (see :attr:`.frames.Wire.link`); None when unknown."""
        return None

    _end_by: float | None = None

    @abstractmethod
    def close(self, timeout: float, join_grace: float) -> ChannelEnd:
        """Wait (at most ``timeout``) for every joined peer's goodbye, and for peers that have not
        joined yet at most ``join_grace`` from when rank 0 could first see them; then stop.

        A :meth:`hurry` (from another thread, while this waits) ends the wait by its deadline; the
        end is then reported as it stands: peers still waited for are late, not lost."""

    def hurry(self, by: float) -> None:
        """End a :meth:`close` that is waiting (or one to come) by ``by`` (``time.monotonic()``) at the
        latest: a signal is ending the process. Safe from any thread; never blocks."""
        self._end_by = by if self._end_by is None else min(self._end_by, by)

    def _until(self, deadline: float) -> float:
        """``deadline``, or sooner where :meth:`hurry` asked for it."""
        return deadline if self._end_by is None else min(deadline, self._end_by)
