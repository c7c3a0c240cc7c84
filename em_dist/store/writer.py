"""The background writer: the only code that touches a live run folder.

``Run.log()`` appends a record tuple to :attr:`RunWriter.buffer` (a deque) and
returns; a daemon thread wakes every ``flush_interval`` seconds, or early when the
backlog grows, turns the records into JSON lines and appends them to
``metrics/rank-<r>.jsonl``. Metadata documents are replaced atomically. Disk trouble
is warned about once; the unwritten lines are kept (bounded) and retried.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, TextIO

from filelock import FileLock

from .._warn import warn_once
from ..sink import CHUNK, EndReport, QueuedSink, Record
from . import layout
from .files import write_json_atomic

DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_MAX_PENDING = 1_000_000


class RunWriter(QueuedSink):
    """Owns the files of one run folder and writes them off the training thread.

    It is the whole sink of a plain process; on rank 0 of a job the root sink feeds it
    the other ranks' lines through :meth:`submit`.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_pending: int = DEFAULT_MAX_PENDING,
        attempt: int = 0,
        rank: int = 0,
        heartbeat: bool = True,
    ) -> None:
        super().__init__(interval=flush_interval, max_pending=max_pending, thread_name="em_dist-writer")
        self.run_dir = run_dir
        self._rank = rank
        self.on_cycle: Callable[[], None] | None = None
        """Called on the writer thread after each cycle (the rank layer watches for a late engine)."""
        self._handed_over = False
        """Whose records ``log()`` appends here: 0, or a peer writing into rank 0's folder itself."""
        self._beats = heartbeat
        self._attempt_prefix = f'{{"attempt":{attempt},' if attempt else ""
        """A continued run's lines say which attempt wrote them (every rank's: peers' lines too)."""
        self._slow_hint = f"Is the disk at {run_dir} slow or full?"
        self._remote: deque[tuple[int, list[Record]]] = deque()
        self._meta: dict[str, Any] = {}
        self._meta_lock = threading.Lock()
        self._unwritten: dict[int, list[str]] = {}
        self._unwritten_count = 0
        self._files: dict[int, TextIO] = {}
        self._dir_ready = False
        self._heartbeat = {"pid": os.getpid(), "host": socket.gethostname(), "time": 0.0}

    # -- called from any thread -------------------------------------------------
    def start(self) -> None:
        """Create the folder and write the metadata set so far now (a run.json exists from the start),
        then the thread takes over."""
        if self._ensure_dir():
            self._write_meta()
        super().start()

    def submit(self, rank: int, records: list[Record]) -> None:
        """Records of another rank, received by the distributed transport on rank 0."""
        self._remote.append((rank, records))
        if len(self._remote) > 64:
            self._wake_event.set()

    def set_meta(self, relpath: str, doc: Any) -> None:
        """Replace the metadata file ``relpath`` (relative to the run folder) with ``doc`` at the next flush."""
        with self._meta_lock:
            self._meta[relpath] = doc

    def write_run(self, doc: dict[str, Any]) -> None:
        self.set_meta(layout.RUN_FILE, doc)

    def write_hparams(self, hparams: dict[str, Any]) -> None:
        self.set_meta(layout.HPARAMS_FILE, hparams)

    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None:
        self.set_meta(layout.PLATFORM_FILE, {"world": world, "ranks": {str(world.get("rank", 0)): platform}})

    def write_git(self, git: dict[str, Any]) -> None:
        self.set_meta(layout.GIT_FILE, git)

    def write_artifacts(self, entries: list[dict[str, Any]]) -> None:
        self.set_meta(layout.ARTIFACTS_FILE, entries)

    def end(self, timeout: float) -> EndReport:
        return EndReport()

    def close(self, timeout: float = 30.0) -> bool:
        """Write everything, fsync and stop the thread; False if that took longer than ``timeout``."""
        if not self._stop(timeout):
            warn_once("close-timeout", f"em_dist: writing {self.run_dir} took longer than {timeout:.0f}s; giving up waiting")
            return False
        return True

    def handover(self) -> list[str]:
        """Stop writing lines and return every line of this writer's rank written or encoded so far,
        for a process that turns out to be a peer of a job that started late
        (:mod:`em_dist.ranks.late`). Call on the writer thread (from ``on_cycle``)."""
        self._handed_over = True
        lines: list[str] = []
        path = layout.metrics_file(self.run_dir, self._rank)
        self._close_file(self._rank)
        try:
            with open(path, encoding="utf-8") as f:
                lines = [line for line in f if line.endswith("\n")]
            os.remove(path)  # the lines move: whoever takes them writes them once, somewhere
        except OSError:
            pass
        lines += self._unwritten.pop(self._rank, [])
        return lines  # what is still in ``buffer`` stays there: the next owner of the deque takes it

    # -- the writer thread ------------------------------------------------------
    def _cycle(self, final: bool = False) -> None:
        if self._handed_over:
            return
        buf = self.buffer
        for _ in range(len(buf) // CHUNK + 1):  # bounded: a producer faster than us can't keep us here
            batch = self._take()
            if batch:
                self._queue_lines(self._rank, batch)
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
        if self.on_cycle is not None:
            self.on_cycle()
        if not self._beats or self._handed_over:
            return
        self._heartbeat["time"] = time.time()
        try:
            write_json_atomic(self.run_dir / layout.HEARTBEAT_FILE, self._heartbeat, durable=False)
        except OSError:
            pass  # the line and metadata writes above already warned about this disk

    def _queue_lines(self, rank: int, records: list) -> None:
        encode = self.encode
        lines = self._unwritten.setdefault(rank, [])
        new = [r if r.__class__ is str else encode(r) for r in records]
        prefix = self._attempt_prefix
        if prefix:
            new = [prefix + line[1:] for line in new]
        lines.extend(new)
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
