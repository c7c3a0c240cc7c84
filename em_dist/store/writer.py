"""The background writer: the only code that touches a live run folder.

``Run.log()`` appends a record tuple to :attr:`RunWriter.buffer` (a deque) and
returns; a daemon thread wakes every ``flush_interval`` seconds, or early when the
backlog grows, turns the records into JSON lines and appends them to
``metrics/rank-<r>.jsonl``. Records that are captured output lines
(:func:`~em_dist.store.lines.is_output_record`, from this process's capture or a peer's)
go to ``logs/rank-<r>.log`` instead (:class:`~em_dist.store.logs.LogFile`, bounded). Metadata documents are replaced atomically. Disk trouble
is warned about once; the unwritten lines are kept (bounded) and retried.

What the disk can do to us, and what the writer does about it:

- **a write cut short** (disk full, quota, I/O error): the metrics file is cut back to
  its last complete line (``ftruncate``) before anything is retried, so a file never
  holds a torn line in its middle nor a line twice;
- **the run folder deleted** under us (a cleanup job, ``rm -rf``): every cycle compares
  the folder's inode and the open files' link counts; a deleted folder is warned about
  once and recreated with every metadata document, and what is still pending is written;
- **a disk that never comes back** (read-only): :meth:`RunWriter.close` says once how
  many records could not be written.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Callable

from filelock import FileLock

from .._warn import warn, warn_once
from ..limits import log_max_bytes
from ..sink import CHUNK, Drops, EndReport, QueuedSink, Record
from . import layout
from .files import write_json_atomic
from .journal import numbered
from .lines import MEDIA_MARK, OUTPUT_MARK
from .logs import LogFile, log_file
from .media import append_lines, media_file, stored_line
from .summary import SUMMARY_FILE, RunSummary

DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_MAX_PENDING = 1_000_000

MAX_UNWRITTEN_MEDIA = 10_000
"""Media records held in memory per rank while the disk refuses them (the oldest go first)."""
MAX_UNWRITTEN_OUTPUT = 100_000
"""Captured lines held in memory per rank while the disk refuses them (the oldest go first)."""

WRITE_BYTES = 1 << 20
"""Bytes per ``write`` call: a full disk then costs at most this much of a retry, and a disk with
some room left still takes what fits."""


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
        buffer: deque[Record] | None = None,
    ) -> None:
        super().__init__(interval=flush_interval, max_pending=max_pending, thread_name="em_dist-writer", buffer=buffer)
        self.run_dir = run_dir
        self._rank = rank
        """Whose records ``log()`` appends here: 0, or a peer writing into rank 0's folder itself."""
        self.on_cycle: Callable[[], None] | None = None
        """Called on the writer thread after each cycle (the rank layer watches for a late engine)."""
        self._handed_over = False
        self._beats = heartbeat
        self.attempt = attempt
        self._attempt_prefix = f'{{"attempt":{attempt},' if attempt else ""
        """A continued run's lines say which attempt wrote them (every rank's: peers' lines too)."""
        self._slow_hint = f"Is the disk at {run_dir} slow or full?"
        self._remote: deque[tuple[int, Sequence[Record], int | None]] = deque()
        self._queued_n: dict[int, int] = {}  # writer thread: a peer's newest record number queued
        self._written_n: dict[int, int] = {}  # ... and on disk (what rank 0 acknowledges)
        self._written = threading.Condition()
        self._summaries_in: deque[tuple[int, int, dict[str, Any]]] = deque()  # peers' own summaries
        # Metadata arrives on any thread, also from a signal's finishing thread while the
        # interrupted thread may be anywhere: a deque append needs no lock (atomic under the
        # GIL), so set_meta can never wait on a lock the interrupted thread holds.
        self._meta_in: deque[tuple[str, Any]] = deque()
        self._meta_pending: dict[str, Any] = {}  # writer thread only
        self._meta_written: dict[str, Any] = {}  # the last version on disk, to recreate a deleted folder
        self._unwritten: dict[int, list[str]] = {}
        self._output: dict[int, list[str]] = {}  # rank -> captured lines not yet in logs/rank-<r>.log
        self._media: dict[int, list[str]] = {}  # rank -> media records (mark taken off) not yet stored
        self._logs: dict[int, LogFile] = {}
        self._log_limit = _log_limit()
        self._dropped_output = 0
        self._unwritten_count = 0
        self._dropped = 0
        self._fds: dict[int, int] = {}
        self._good: dict[int, int] = {}  # rank -> bytes of complete lines in its file
        self._dir_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the run folder we made
        self._last_error: BaseException | None = None
        self._heartbeat = {"pid": os.getpid(), "host": socket.gethostname(), "time": 0.0}
        self.summary = RunSummary()

    # -- called from any thread -------------------------------------------------
    def start(self) -> None:
        """Create the folder and write the metadata set so far now (a run.json exists from the start),
        then the thread takes over."""
        if self._ensure_dir():
            self._write_meta()
        super().start()

    def submit(self, rank: int, records: Sequence[Record], first: int | None = None) -> None:
        """Records of another rank, received by the distributed transport on rank 0; ``first``: the
        number of the first in that rank's journal (its metric lines are written with their numbers)."""
        self._remote.append((rank, records, first))
        if len(self._remote) > 64:
            self._wake_event.set()

    def written(self, rank: int) -> int:
        """The newest number of ``rank``'s records that is on disk (records 1..n are)."""
        return self._written_n.get(rank, 0)

    def wait_written(self, rank: int, n: int, timeout: float) -> int:
        """Wait (at most ``timeout``) until ``rank``'s records up to number ``n`` are on disk; returns the
        newest number on disk. Wakes the writer: a goodbye's answer waits one cycle, not an interval."""
        with self._written:
            if self._written_n.get(rank, 0) < n:
                self._wake_event.set()
                self._written.wait_for(lambda: self._written_n.get(rank, 0) >= n or not self._thread.is_alive(),
                                       timeout)
            return self._written_n.get(rank, 0)

    def submit_summary(self, rank: int, records: int, last: dict[str, Any]) -> None:
        """A peer's summary of its own records (it keeps it; rank 0 never parses a peer's lines)."""
        self._summaries_in.append((rank, records, last))

    def drops(self) -> Drops:
        """The buffer's evictions plus what this writer dropped itself (a disk refusing lines for long)."""
        return super().drops() + Drops(self._dropped, self._dropped_output)

    def set_meta(self, relpath: str, doc: Any) -> None:
        """Replace the metadata file ``relpath`` (relative to the run folder) with ``doc`` at the next flush."""
        self._meta_in.append((relpath, doc))

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
        """Write everything, fsync and stop the thread; False if that took longer than ``timeout``.

        Records that could not be written by then (a read-only or still-full disk) are
        lost: one warning says how many, so the end of such a run is never silent.
        """
        if not self._stop(timeout):
            warn_once("close-timeout", f"em_dist: writing {self.run_dir} took longer than {timeout:.0f}s; giving up waiting")
            return False
        lost = self._unwritten_count + len(self.buffer)
        if lost or self._meta_pending:
            said = [f"{lost} metric records could not be written to {self.run_dir} and are lost"] if lost else []
            if layout.RUN_FILE in self._meta_pending:
                said.append(f"{self.run_dir / layout.RUN_FILE} still says the run is live (it reads back as Failed, crashed)")
            elif self._meta_pending:
                said.append(f"{', '.join(sorted(self._meta_pending))} could not be updated in {self.run_dir}")
            warn(f"em_dist: {'; '.join(said)} ({self._last_error}). Free or remount that disk; "
                 "what is on it stays readable.")
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
        pending = self._unwritten.pop(self._rank, [])
        self._unwritten_count -= len(pending)
        logf = self._logs.pop(self._rank, None)
        if logf is not None:
            logf.close()
        output: list[str] = []
        try:  # captured output moves too, as output records
            with open(log_file(self.run_dir, self._rank), encoding="utf-8", errors="backslashreplace") as f:
                output = [OUTPUT_MARK + line for line in f if line.endswith("\n")]
            os.remove(log_file(self.run_dir, self._rank))
        except OSError:
            pass
        output += [OUTPUT_MARK + line for line in self._output.pop(self._rank, [])]
        # media records not stored yet move too; those stored stay here (docs/known-gaps.md)
        media = [MEDIA_MARK + line for line in self._media.pop(self._rank, [])]
        return lines + pending + output + media  # what is still in ``buffer`` stays there: the next owner of the deque takes it

    def retire(self, timeout: float) -> None:
        """Write nothing more: another process continues this run folder (a forked rank 0,
        :mod:`em_dist.ranks.forked`). Stops the thread; metadata not yet written is dropped."""
        self._handed_over = True
        self._stop(timeout)
        self._meta_in.clear()
        self._meta_pending.clear()

    # -- the writer thread ------------------------------------------------------
    def _cycle(self, final: bool = False) -> None:
        if self._handed_over:
            return
        buf = self.buffer
        ready = self._ensure_dir()  # once per cycle: each syscall may cost a GIL hand-over
        for _ in range(len(buf) // CHUNK + 1):  # bounded: a producer faster than us can't keep us here
            batch = self._take()
            if batch:
                self._queue_lines(self._rank, batch)
            remote = self._remote
            while remote:
                rank, records, first = remote.popleft()
                self._queue_lines(rank, records, first)
            summaries = self._summaries_in
            while summaries:
                self.summary.set_rank(*summaries.popleft())
            if not ready or not self._write_lines(final=False) or not buf:
                break  # written chunk by chunk: a record is durable one chunk after it is taken
        if not ready:
            self._drain_meta()
            return
        self._write_lines(final)
        self._write_meta()
        if self.on_cycle is not None:
            self.on_cycle()
        if not self._beats or self._handed_over:
            return
        self._heartbeat["time"] = time.time()
        try:
            if self.summary.changed:
                write_json_atomic(self.run_dir / SUMMARY_FILE, self.summary.doc(), durable=False)
            write_json_atomic(self.run_dir / layout.HEARTBEAT_FILE, self._heartbeat, durable=False)
        except OSError:
            pass  # the line and metadata writes above already warned about this disk

    def _queue_lines(self, rank: int, records: Sequence[Record], first: int | None = None) -> None:
        if first is not None:  # a peer's numbered lines: each metric (and media) line carries its number
            self._queued_n[rank] = first + len(records) - 1
            attempt = self.attempt
            records = [_numbered(r, first + i, attempt) if isinstance(r, str) and r[:1] != OUTPUT_MARK else r
                       for i, r in enumerate(records)]
        output = [r for r in records if isinstance(r, str) and r[:1] == OUTPUT_MARK]
        if output:  # the one rule (store.lines.is_output_record), inlined: this runs per record
            self._queue_output(rank, output)
            records = [r for r in records if not (isinstance(r, str) and r[:1] == OUTPUT_MARK)]
            if not records:
                return
        media = [r for r in records if isinstance(r, str) and r[:1] == MEDIA_MARK]
        if media:  # store.lines.is_media_record, inlined
            self._queue_media(rank, media, numbered_already=first is not None)
            records = [r for r in records if not (isinstance(r, str) and r[:1] == MEDIA_MARK)]
            if not records:
                return
        if rank == self._rank:  # a peer summarises its own records (submit_summary)
            self.summary.add(rank, records, self.encode.newest)
        encode = self.encode
        lines = self._unwritten.setdefault(rank, [])
        new = [r if isinstance(r, str) else encode(r) for r in records]
        prefix = self._attempt_prefix
        if prefix and first is None:
            new = [prefix + line[1:] for line in new]
        lines.extend(new)
        self._unwritten_count += len(records)
        if self._unwritten_count > self._max_pending:
            self._drop_oldest()

    def _queue_media(self, rank: int, records: list[str], numbered_already: bool) -> None:
        prefix = "" if numbered_already else self._attempt_prefix
        self._dropped += self._hold(self._media.setdefault(rank, []),
                                    (prefix + r[2:] if prefix else r[1:] for r in records), MAX_UNWRITTEN_MEDIA,
                                    "media-full", f"media records of rank {rank}", "")

    def _write_media(self, final: bool) -> bool:
        """Store each rank's media records (images to their files first); False if the disk refused
        some (kept, retried next cycle)."""
        ok = True
        for rank, lines in self._media.items():
            if not lines:
                continue
            try:
                stored = [stored_line(self.run_dir, line) for line in lines]
                append_lines(media_file(self.run_dir, rank), stored, durable=final)
                lines.clear()
            except OSError as exc:
                self._disk_trouble(exc)
                ok = False
            except ValueError as exc:  # not JSON: a record no em_dist made; never retried forever
                warn_once(f"media-bad:{rank}", f"em_dist: rank {rank} sent a media record that is not JSON ({exc}); dropped")
                self._dropped += len(lines)
                lines.clear()
        return ok

    def _queue_output(self, rank: int, records: list[str]) -> None:
        self._dropped_output += self._hold(self._output.setdefault(rank, []), (r[1:] for r in records),
                                           MAX_UNWRITTEN_OUTPUT, "output-full", f"captured lines of rank {rank}",
                                           "; the terminal still showed them")

    def _hold(self, lines: list[str], new: Iterable[str], bound: int, kind: str, what: str, note: str) -> int:
        """Add ``new`` to ``lines`` that the disk has not taken yet, keeping the newest ``bound``; how
        many of the oldest were dropped (warned once per run folder and ``kind``, counted by the caller)."""
        lines.extend(new)
        over = len(lines) - bound
        if over <= 0:
            return 0
        warn_once(f"{kind}:{self.run_dir}", f"em_dist: more than {bound} {what} could "
                  f"not be written to {self.run_dir}; the oldest are dropped (counted in the run's 'dropped'{note}).")
        del lines[:over]
        return over

    def _write_output(self, final: bool) -> bool:
        """Append the captured lines to each rank's log file; False if the disk refused some (kept)."""
        ok = True
        for rank, lines in self._output.items():
            if not lines:
                continue
            logf = self._logs.get(rank)
            if logf is None:
                logf = self._logs[rank] = LogFile(log_file(self.run_dir, rank), self._log_limit)
            n = len(lines)
            try:
                logf.append("".join(lines[:n]).encode("utf-8", "backslashreplace"))
                del lines[:n]
                if final:
                    logf.fsync()
            except OSError as exc:
                self._disk_trouble(exc)
                ok = False
        if final:
            for logf in self._logs.values():
                logf.close()
        return ok

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
            self._dropped += cut
            if excess <= 0:
                break

    def _write_lines(self, final: bool) -> bool:
        """Append every unwritten line; False if the disk refused some (they stay queued)."""
        ok = self._write_output(final)
        ok = self._write_media(final) and ok
        for rank, lines in self._unwritten.items():
            if not lines:
                continue
            try:
                self._append(rank, lines)
                if final:
                    os.fsync(self._fds[rank])
            except OSError as exc:
                self._disk_trouble(exc)
                ok = False
        if final:
            for rank in list(self._fds):
                self._close_file(rank)
        if ok and self._queued_n:  # every queued line is on disk: so are the peers' numbers queued
            with self._written:
                self._written_n.update(self._queued_n)
                self._written.notify_all()
        return ok

    def _append(self, rank: int, lines: list[str]) -> None:
        """Write ``lines`` to the rank's file in pieces of :data:`WRITE_BYTES`, removing each piece once
        it is wholly on disk. A piece cut short is cut off the file again before the error propagates,
        so the file ends with a complete line and nothing is written twice on the retry."""
        fd = self._open(rank)
        while lines:
            n, size = 0, 0
            while n < len(lines) and size < WRITE_BYTES:
                size += len(lines[n])
                n += 1
            data = "".join(lines[:n]).encode("utf-8")
            view, done = memoryview(data), 0
            try:
                while done < len(data):  # a short write (disk just filled) returns less; the next one raises
                    done += os.write(fd, view[done:])
            except OSError:
                self._cut_back(rank)
                raise
            self._good[rank] += len(data)
            del lines[:n]
            self._unwritten_count -= n

    def _open(self, rank: int) -> int:
        fd = self._fds.get(rank)
        if fd is not None:
            return fd
        path = layout.metrics_file(self.run_dir, rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        # read and write: an existing file (a continued run, a reopened one) is read back to its last newline
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            good = self._good.get(rank)
            if good is None or good > size:  # a file we don't know (or one that shrank): trust its complete lines
                good = _complete_size(fd, size)
            if size > good:
                os.ftruncate(fd, good)  # what a cut-short write left behind (the truncate itself may have failed then)
        except OSError:
            os.close(fd)
            raise
        self._fds[rank], self._good[rank] = fd, good
        return fd

    def _cut_back(self, rank: int) -> None:
        """After a failed write: drop the partial tail. If even that fails, close the file; the next
        :meth:`_open` cuts it back to the last size known good."""
        fd = self._fds.get(rank)
        try:
            if fd is not None:
                os.ftruncate(fd, self._good[rank])
                return
        except OSError:
            pass
        self._close_file(rank)

    def _close_file(self, rank: int) -> None:
        fd = self._fds.pop(rank, None)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass  # the unwritten lines are still held; they are rewritten on the next open

    def _drain_meta(self) -> None:
        """Move what :meth:`set_meta` queued into the writer's own pending map (newest wins)."""
        incoming = self._meta_in
        pending = self._meta_pending
        while incoming:
            relpath, doc = incoming.popleft()
            pending[relpath] = doc

    def _write_meta(self) -> None:
        self._drain_meta()
        pending = self._meta_pending
        if not pending:
            return
        try:
            with FileLock(str(self.run_dir / layout.LOCK_FILE), timeout=5):
                for relpath, doc in list(pending.items()):
                    path = self.run_dir / relpath
                    path.parent.mkdir(parents=True, exist_ok=True)
                    write_json_atomic(path, doc)
                    self._meta_written[relpath] = pending.pop(relpath)
        except Exception as exc:  # OSError, filelock.Timeout: what failed stays pending
            self._disk_trouble(exc)

    def _ensure_dir(self) -> bool:
        """The run folder exists and is the one we made; recreate it when it was deleted under us."""
        try:
            st = os.stat(self.run_dir)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            self._disk_trouble(exc)
            return False
        if self._dir_id is not None:
            if st is None or (st.st_dev, st.st_ino) != self._dir_id:
                self._recreate("was deleted")
                st = None
            else:
                for rank, fd in list(self._fds.items()):
                    if os.fstat(fd).st_nlink == 0:  # the file alone was deleted: start it again
                        self._recreate(f"lost its file {layout.metrics_file(self.run_dir, rank).name}")
                        break
                else:
                    return True
        try:
            (self.run_dir / layout.METRICS_DIR).mkdir(parents=True, exist_ok=True)
            st = os.stat(self.run_dir)
        except OSError as exc:
            self._disk_trouble(exc)
            return False
        self._dir_id = (st.st_dev, st.st_ino)
        return True

    def _recreate(self, what: str) -> None:
        """Forget the deleted files and queue every metadata document (and the summary) again."""
        warn_once(
            f"deleted:{self.run_dir}",
            f"em_dist: the run folder {self.run_dir} {what} while the run was live; it is recreated with "
            "its metadata and what was not yet written. Records written before the deletion are gone.",
        )
        for rank in list(self._fds):
            self._close_file(rank)
        for logf in self._logs.values():
            logf.close()
        self._logs.clear()
        self._good.clear()
        self._dir_id = None
        self._drain_meta()
        for relpath, doc in self._meta_written.items():
            self._meta_pending.setdefault(relpath, doc)
        self._meta_written = {}
        self.summary.changed = True

    def _disk_trouble(self, exc: BaseException) -> None:
        self._last_error = exc
        warn_once(
            f"disk:{self.run_dir}",
            f"em_dist: cannot write the run folder {self.run_dir} ({exc}); training goes on, "
            "the data is kept in memory and written when the disk allows.",
        )


def _numbered(record: str, n: int, attempt: int) -> str:
    """A peer's metric line, or media record (its mark kept in front), with its number."""
    if record[:1] == MEDIA_MARK:
        return MEDIA_MARK + numbered(record[1:], n, attempt)
    return numbered(record, n, attempt)


def _complete_size(fd: int, size: int) -> int:
    """Bytes of ``fd`` up to and including its last newline (a crash may have left a torn tail)."""
    pos = size
    while pos > 0:
        start = max(0, pos - 65536)
        block = os.pread(fd, pos - start, start)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def _log_limit() -> int:
    try:
        return log_max_bytes()
    except ValueError as exc:  # checked at create_run; a writer made elsewhere falls back
        warn_once("log-max-bytes", f"em_dist: {exc}; using the default")
        from ..limits import DEFAULT_LOG_MAX_BYTES

        return DEFAULT_LOG_MAX_BYTES
