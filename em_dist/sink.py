"""The contract between a :class:`~em_dist.run.Run` and where its records go.

A Run writes through one :class:`Sink`:

- a plain process: the run folder's writer (:class:`em_dist.store.writer.RunWriter`);
- rank 0 of a job: the writer plus what every other rank sends
  (:class:`em_dist.ranks.root.RootSink`);
- any other rank: a forwarder to rank 0 (:class:`em_dist.ranks.peer.PeerSink`).

``Run.log`` touches only the *hot-path face* every sink has: it appends a record tuple
``(type, step, epoch, time, metrics)`` to :attr:`Sink.buffer` (a bounded deque), and
past :attr:`Sink.wake_at` / :attr:`Sink.encode_at` it wakes the background thread or
encodes the line itself with :attr:`Sink.encode`. Everything else (metadata, the end of
the run) goes through the typed methods below; a sink never reaches into the Run.

:class:`QueuedSink` holds that face and the one background thread (a cycle every
``interval`` seconds, or sooner when woken); the writer and the peer forwarder are
its two subclasses.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from ._warn import warn_once
from .observe.steps import marks_step
from .store.lines import OUTPUT_MARK, LineEncoder
from .media.encode import split_media
from .values import materialize

RecordTuple = tuple[str, int, Union[int, float, None], float, dict[str, Any]]
"""What ``log()`` appends: ``(type, step, epoch, time, metrics)``; metric values may still be tensors
(converted in bulk off the training thread, :func:`em_dist.values.materialize`)."""
Record = Union[RecordTuple, str]
"""What a record buffer holds: a record tuple, its encoded line (``log()`` encodes its own while the
writer is behind; a peer sends lines), or a captured-output record (:data:`~em_dist.store.lines.OUTPUT_MARK`)."""

CHUNK = 5_000
"""Records taken off the buffer (and written) per step of a cycle. A record is on disk one chunk
after the cycle takes it, so the chunk bounds how far the disk lags behind a kill -9: 5,000
records are about 25 ms of the writer's work while it shares the GIL with a training loop
(20,000 let the newest durable record fall 0.5-0.9 s behind a fast loop)."""

ENCODE_AT = 10_000
"""Backlog past which ``log()`` encodes its record itself (see :attr:`Sink.encode_at`): a loop
that logs faster than the writer can encode pays for its own lines, which bounds the backlog the
writer must encode to about 50 ms of work (at 50,000 a fast loop kept the writer 0.3-1.2 s behind,
issue 8 item 6)."""

MARK_SCAN = 64
"""Records at the end of a taken batch looked at for the newest step mark (see :attr:`Sink.step_mark`)."""


@dataclass
class Drops:
    """Records a rank accepted and then dropped to bound its memory: never silent, reported at the
    end in ``run.json`` (``dropped``), by ``em run show`` and by one warning."""

    records: int = 0
    """Metric records (``log()``, system metrics)."""
    output_lines: int = 0
    """Captured output lines."""

    def __bool__(self) -> bool:
        return bool(self.records or self.output_lines)

    def __add__(self, other: Drops) -> Drops:
        return Drops(self.records + other.records, self.output_lines + other.output_lines)

    def doc(self) -> dict[str, int]:
        return {"records": self.records, "output_lines": self.output_lines}


@dataclass
class EndReport:
    """What the end of a multi-rank run found out, for the Run to record (rank 0; empty elsewhere)."""

    lost_ranks: list[int] = field(default_factory=list)
    """Ranks that joined but never said goodbye (died, or too slow for the timeout)."""
    late_ranks: list[int] = field(default_factory=list)
    """Ranks still connected but not finished within the timeout (alive and slow)."""
    absent_ranks: list[int] = field(default_factory=list)
    """Ranks that never joined this run (they made no run, or could not reach rank 0)."""
    peer_failures: dict[int, str] = field(default_factory=dict)
    """Rank -> the reason a peer's own run ended as Failed (an exception, a signal)."""
    backend: str | None = None
    """The training job's torch.distributed backend, if one was seen."""
    transport: str | None = None
    """What carried the peers' records (``gloo``, ``mpi``, ``horovod``, ``files``)."""
    hosts: int | None = None
    """How many distinct hosts the ranks reported: the job's node count."""
    relayed_by: dict[int, int] = field(default_factory=dict)
    """Rank -> the node leader that relayed its records to rank 0 (ranks that came directly are not in it)."""
    delivery: dict[int, dict[str, Any]] = field(default_factory=dict)
    """Peer -> ``{records, complete[, journal]}``: how many of its records the run holds, whether
    that is all it journaled, and where the rest is (``host:path`` of its journal)."""
    peer_drops: dict[int, Drops] = field(default_factory=dict)
    """Rank -> what that peer dropped to bound its memory (as it reported at its end)."""
    interrupted: BaseException | None = None
    """``SystemExit``/``KeyboardInterrupt`` a signal handler of the program raised while the end
    waited for the other ranks: the Run records this report, then raises it again."""


class Sink(ABC):
    """Where a Run's records and metadata go. Implemented by the writer, the root sink and the peer sink."""

    buffer: deque[Record]
    """``log()`` appends records here (bounded: the oldest are dropped past ``max_pending``)."""
    wake_at: int
    """Backlog at which ``log()`` calls :meth:`wake` (every 1024 records past it)."""
    encode_at: int
    """Backlog at which ``log()`` encodes records itself, so a writer starved of the GIL can't let memory grow."""
    encode: LineEncoder
    """The line encoder (shared by the training thread and the background thread)."""
    step_mark: tuple[int, float] | None = None
    """``(step, time)`` of the newest step-marking record the background thread took off the
    buffer (:func:`em_dist.observe.steps.marks_step`): the system sampler's ``step_time_s``."""

    @abstractmethod
    def evicting(self) -> None:
        """The buffer is full and a record is about to be appended: drop the oldest record now,
        count it by kind and warn once (the ``deque``'s own ``maxlen`` eviction is the backstop
        of two threads appending at once, and is not counted)."""

    @abstractmethod
    def refusing_output(self, bound: int) -> None:
        """A captured line arrives while ``bound`` records already wait: it is dropped (the terminal
        showed it), counted as an output line and warned about once. Output has its own bound so a
        flood of prints never evicts a metric record."""

    @abstractmethod
    def drops(self) -> Drops:
        """What this rank dropped so far (the buffer's evictions and the writer's own)."""

    @abstractmethod
    def start(self) -> None:
        """Start the background work; returns at once."""

    @abstractmethod
    def wake(self) -> None:
        """Write (or forward) now rather than at the next tick."""

    @abstractmethod
    def flush(self, timeout: float) -> bool:
        """Wait until everything logged before the call is on disk (rank 0) or handed on (peers)."""

    # -- metadata: each call replaces that document (written in the background) -------
    @abstractmethod
    def write_run(self, doc: dict[str, Any]) -> None:
        """The run document (``run.json``): identity, status, times, world."""

    @abstractmethod
    def write_hparams(self, hparams: dict[str, Any]) -> None:
        """This rank's hyperparameters."""

    @abstractmethod
    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None:
        """The job's world and this rank's platform (``platform.json``)."""

    @abstractmethod
    def write_git(self, git: dict[str, Any]) -> None:
        """The repository state the script ran from."""

    @abstractmethod
    def write_artifacts(self, entries: list[dict[str, Any]]) -> None:
        """The artifacts this rank marked as inputs or outputs of the run."""

    def artifact_created(self, path: Path) -> None:
        """An artifact was made in this process while the run is live (peers ship it to rank 0)."""

    def rank0_run(self, wait: float) -> dict[str, Any] | None:
        """Rank 0's run as it announced it (``id``, ``alternative_name``, ``path``), waiting at most
        ``wait`` seconds for it; None on rank 0 itself, or while rank 0 is not reached."""
        return None

    # -- the end ---------------------------------------------------------------------
    @abstractmethod
    def end(self, timeout: float) -> EndReport:
        """Hand on what is left and, on rank 0, wait (bounded) for the other ranks' last records."""

    def hurry(self, by: float) -> None:
        """A signal is ending the process while :meth:`end` may be waiting (on another thread): end that
        wait by ``by`` (``time.monotonic()``) at the latest, reporting what is known then. Safe from any
        thread; never blocks. Only rank 0's sink waits for anything there."""

    @abstractmethod
    def close(self, timeout: float) -> bool:
        """Write everything and stop the background work; False if that took longer than ``timeout``."""


class QueuedSink(Sink):
    """The hot-path face plus one daemon thread that runs :meth:`_cycle` every ``interval`` seconds.

    The shape of tensorboardX's event writer: the training thread only appends to a
    deque; the thread takes what is there in bounded chunks. ``flush`` waits for the
    first cycle that *starts* after the call (so it covers everything logged before it,
    and no more than one extra cycle); ``_stop`` runs a last cycle with ``final=True``.
    """

    def __init__(self, *, interval: float, max_pending: int, thread_name: str, buffer: deque[Record] | None = None,
                 encode_at: int = ENCODE_AT) -> None:
        self.buffer: deque[Record] = deque(maxlen=max_pending) if buffer is None else buffer
        self.wake_at = min(CHUNK, max(1, max_pending // 2))
        self.encode_at = min(encode_at, max(1, max_pending // 2))
        self.encode = LineEncoder()
        self._max_pending = max_pending
        self._interval = interval
        self._wake_event = threading.Event()
        self._stopping = False
        self._cycles = threading.Condition()
        self._started_cycles = 0
        self._done_cycles = 0
        self._thread = threading.Thread(target=self._loop, name=thread_name, daemon=True)
        self._evicted = Drops()

    @property
    def interval(self) -> float:
        """Seconds between cycles."""
        return self._interval

    @property
    def max_pending(self) -> int:
        """The buffer's bound."""
        return self._max_pending

    # -- called from any thread ---------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake_event.set()

    def evicting(self) -> None:
        # Any appending thread (the training loop, the capture, the sampler) may call this. The
        # oldest record is popped here and counted, rather than left to the deque's maxlen: a
        # popleft is atomic, so a record the background thread took meanwhile is never counted.
        try:
            oldest = self.buffer.popleft()
        except IndexError:
            return
        if oldest.__class__ is str and oldest[:1] == OUTPUT_MARK:
            self._evicted.output_lines += 1
        else:
            self._evicted.records += 1
        warn_once(
            f"queue-full:{id(self)}",
            f"em_dist: {self._max_pending} records are waiting to be {self._drain_verb}; the oldest "
            f"are being dropped to bound memory (newest kept; counted in the run's 'dropped'). {self._slow_hint}",
        )
        self._wake_event.set()

    def refusing_output(self, bound: int) -> None:
        self._evicted.output_lines += 1  # the capture's thread only: no other writer of this count
        warn_once(
            f"output-full:{id(self)}",
            f"em_dist: {bound} records are waiting to be {self._drain_verb}; further captured output lines "
            "are dropped until they are (the terminal still shows them; counted in the run's 'dropped'). "
            f"{self._slow_hint}",
        )
        self._wake_event.set()

    def drops(self) -> Drops:
        return Drops(self._evicted.records, self._evicted.output_lines)

    def flush(self, timeout: float = 10.0) -> bool:
        if not self._thread.is_alive():
            return False
        with self._cycles:
            target = self._started_cycles + 1
            self._wake_event.set()
            return self._cycles.wait_for(lambda: self._done_cycles >= target or not self._thread.is_alive(), timeout)

    # -- for subclasses -----------------------------------------------------------------
    _drain_verb = "written"
    _slow_hint = "Is the disk slow or full?"

    @abstractmethod
    def _cycle(self, final: bool) -> None:
        """One round of background work; ``final`` on the last one (at close)."""

    def _take(self) -> list[Record]:
        """Up to :data:`CHUNK` records off the buffer, device tensors converted (one sync per batch) and
        media values made media records (:mod:`em_dist.media.encode`)."""
        buf = self.buffer
        batch = [buf.popleft() for _ in range(min(CHUNK, len(buf)))]
        if batch:
            media_at = materialize(batch)
            if media_at:  # histograms binned, images encoded: here, never on the training thread
                batch = split_media(batch, media_at)
            self._note_step(batch)
        return batch

    def _note_step(self, batch: list[Record]) -> None:
        # The newest step mark, from the end of the batch: at most MARK_SCAN records looked at
        # (usually one), so the writer pays O(1) per batch; a batch whose tail marks no step
        # (all encoded lines, or a long run of other types) leaves the previous mark.
        for rec in batch[-1:-MARK_SCAN - 1:-1]:
            if rec.__class__ is tuple and marks_step(rec[0], rec[4]):
                self.step_mark = (rec[1], rec[3])
                return

    def _stop(self, timeout: float) -> bool:
        """Run the final cycle and stop the thread; False if it did not end within ``timeout``."""
        self._stopping = True
        self._wake_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
            return not self._thread.is_alive()
        if self._thread.ident is None:  # never started (create_run failed half-way): finish here
            self._cycle(final=True)
        return True

    def _loop(self) -> None:
        # Cycles start every `interval` seconds *from the start of the last one*, not from its
        # end: a cycle that took 0.3 s (a big backlog, a GIL-hungry training loop) must not push
        # the next write to 0.8 s, or a kill -9 loses more than `interval` of records.
        next_start = time.monotonic() + self._interval
        while True:
            self._wake_event.wait(max(0.0, next_start - time.monotonic()))
            self._wake_event.clear()
            next_start = time.monotonic() + self._interval
            stopping = self._stopping
            with self._cycles:
                self._started_cycles += 1
            try:
                self._cycle(final=stopping)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any surprise
                warn_once(f"cycle:{self._thread.name}", f"em_dist: {self._thread.name} hit {exc!r}; "
                          "it keeps the data and retries")
            with self._cycles:
                self._done_cycles += 1
                self._cycles.notify_all()
            if stopping:
                return
