"""The background writer: the only code that touches a live run folder.

``Run.log()`` appends a record tuple to :attr:`RunWriter.buffer` (a deque) and
returns; a daemon thread wakes every ``flush_interval`` seconds, or early when the
backlog grows, turns the records into JSON lines and appends them to
``metrics/rank-<r>.jsonl``. Metadata documents are replaced atomically. Disk trouble
is warned about once; the unwritten lines are kept (bounded) and retried.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from filelock import FileLock

from .._warn import warn_once
from ..values import materialize
from . import layout
from .lines import LineEncoder
from .files import write_json_atomic

Record = tuple  # (type, step, epoch, time, metrics: dict[str, int | float]), or its encoded line

DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_MAX_PENDING = 1_000_000
CHUNK = 20_000  # records encoded and written per step of a cycle: bounds the writer's own memory


class CycleClock:
    """Counts a background thread's work cycles so ``flush`` can wait for the first one that starts after it.

    Shared by the run writer (rank 0) and the peers' forwarder: a flush must cover
    everything logged before the call, and no more than one extra cycle.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._started = 0
        self._done = 0

    def begin(self) -> None:
        with self._cond:
            self._started += 1

    def end(self) -> None:
        with self._cond:
            self._done += 1
            self._cond.notify_all()

    def wait_next(self, wake: threading.Event, thread: threading.Thread, timeout: float) -> bool:
        """Wake the thread and wait until a cycle that started after this call has ended."""
        with self._cond:
            target = self._started + 1
            wake.set()
            return self._cond.wait_for(lambda: self._done >= target or not thread.is_alive(), timeout)


class RunWriter:
    """Owns the files of one run folder and writes them off the training thread."""

    def __init__(
        self,
        run_dir: Path,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self.run_dir = run_dir
        self.buffer: deque[Record] = deque(maxlen=max_pending)
        self.wake_at = min(CHUNK, max(1, max_pending // 2))
        self.encode_at = min(50_000, max(1, max_pending // 2))
        """Past this backlog ``log()`` encodes its record itself, so a writer starved of the GIL by a
        tight logging loop can't let the queue (and memory) grow without bound."""
        self.encode = LineEncoder()
        self._max_pending = max_pending
        self._interval = flush_interval
        self._remote: deque[tuple[int, list[Record]]] = deque()
        self._meta: dict[str, Any] = {}
        self._meta_lock = threading.Lock()
        self._unwritten: dict[int, list[str]] = {}
        self._unwritten_count = 0
        self._files: dict[int, TextIO] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._clock = CycleClock()
        self._dir_ready = False
        self._heartbeat = {"pid": os.getpid(), "host": socket.gethostname(), "time": 0.0}
        self._thread = threading.Thread(target=self._loop, name="em_dist-writer", daemon=True)

    # -- called from any thread -------------------------------------------------
    def start(self) -> None:
        self._ensure_dir()
        self._thread.start()

    def wake(self) -> None:
        """Called by ``log()`` when the backlog passed ``wake_at``: write now rather than at the next tick."""
        if len(self.buffer) >= self._max_pending:
            warn_once(
                "queue-full",
                f"em_dist: {self._max_pending} metric records are waiting for the disk; the oldest are "
                "being dropped to bound memory (newest kept). Is the disk at "
                f"{self.run_dir} slow or full?",
            )
        self._wake.set()

    def submit(self, rank: int, records: list[Record]) -> None:
        """Records of another rank, received by the distributed transport on rank 0."""
        self._remote.append((rank, records))
        if len(self._remote) > 64:
            self._wake.set()

    def set_meta(self, relpath: str, doc: Any) -> None:
        """Replace the metadata file ``relpath`` (relative to the run folder) with ``doc`` at the next flush."""
        with self._meta_lock:
            self._meta[relpath] = doc

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged before this call is written (or ``timeout`` passes)."""
        if not self._thread.is_alive():
            return False
        return self._clock.wait_next(self._wake, self._thread, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Write everything, fsync and stop the thread; False if that took longer than ``timeout``."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        else:  # never started (e.g. create_run failed half-way): write synchronously
            self._cycle(final=True)
        if self._thread.is_alive():
            warn_once("close-timeout", f"em_dist: writing {self.run_dir} took longer than {timeout:.0f}s; giving up waiting")
            return False
        return True

    # -- the writer thread ------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            self._clock.begin()
            try:
                self._cycle(final=stopping)
            except Exception as exc:  # the thread must outlive any surprise
                warn_once("writer-crash", f"em_dist: the run writer hit {exc!r}; it keeps the data and retries")
            self._clock.end()
            if stopping:
                return

    def _cycle(self, final: bool = False) -> None:
        buf = self.buffer
        chunks = len(buf) // CHUNK + 1  # bounded: a producer faster than us can't keep us here
        for _ in range(chunks):
            batch = [buf.popleft() for _ in range(min(CHUNK, len(buf)))]
            if batch:
                materialize(batch)
                self._queue_lines(0, batch)
            remote = self._remote
            while remote:
                rank, records = remote.popleft()
                self._queue_lines(rank, records)
            if not self._ensure_dir():
                return
            if not self._write_lines(final=False) or not buf:
                break
        self._write_lines(final)
        self._write_meta()
        self._heartbeat["time"] = time.time()
        try:
            write_json_atomic(self.run_dir / layout.HEARTBEAT_FILE, self._heartbeat, durable=False)
        except OSError:
            pass  # the line and metadata writes above already warned about this disk

    def _queue_lines(self, rank: int, records: list) -> None:
        encode = self.encode
        lines = self._unwritten.setdefault(rank, [])
        lines.extend([r if r.__class__ is str else encode(r) for r in records])
        self._unwritten_count += len(records)
        if self._unwritten_count > self._max_pending:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        excess = self._unwritten_count - self._max_pending
        warn_once(
            "unwritten-full",
            f"em_dist: more than {self._max_pending} records could not be written to {self.run_dir}; "
            "dropping the oldest to bound memory (newest kept).",
        )
        for lines in self._unwritten.values():
            cut = min(excess, len(lines))
            del lines[:cut]
            excess -= cut
            self._unwritten_count -= cut
            if excess <= 0:
                break

    def _write_lines(self, final: bool) -> bool:
        """Append every unwritten line; False if the disk refused some (they stay queued)."""
        ok = True
        for rank, lines in self._unwritten.items():
            if not lines:
                continue
            try:
                f = self._files.get(rank)
                if f is None:
                    path = layout.metrics_file(self.run_dir, rank)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    f = self._files[rank] = open(path, "a", encoding="utf-8")
                f.write("".join(lines))
                f.flush()
                if final:
                    os.fsync(f.fileno())
            except (OSError, ValueError) as exc:
                self._disk_trouble(exc)
                self._close_file(rank)
                ok = False
                continue
            self._unwritten_count -= len(lines)
            lines.clear()
        if final:
            for rank in list(self._files):
                self._close_file(rank)
        return ok

    def _close_file(self, rank: int) -> None:
        f = self._files.pop(rank, None)
        if f is not None:
            try:
                f.close()
            except OSError:
                pass  # the unwritten lines are still held; they are rewritten on the next open

    def _write_meta(self) -> None:
        with self._meta_lock:
            pending, self._meta = self._meta, {}
        if not pending:
            return
        try:
            with FileLock(str(self.run_dir / layout.LOCK_FILE), timeout=5):
                for relpath, doc in list(pending.items()):
                    path = self.run_dir / relpath
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_json_atomic(path, doc)
                    del pending[relpath]
        except Exception as exc:  # OSError, filelock.Timeout
            self._disk_trouble(exc)
            with self._meta_lock:  # keep what failed unless a newer version arrived meanwhile
                for relpath, doc in pending.items():
                    self._meta.setdefault(relpath, doc)

    def _ensure_dir(self) -> bool:
        if self._dir_ready:
            return True
        try:
            (self.run_dir / layout.METRICS_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._disk_trouble(exc)
            return False
        self._dir_ready = True
        return True

    def _disk_trouble(self, exc: BaseException) -> None:
        warn_once(
            f"disk:{self.run_dir}",
            f"em_dist: cannot write the run folder {self.run_dir} ({exc}); training goes on, "
            "the data is kept in memory and written when the disk allows.",
        )
