"""``logs/rank-<r>.log``: each rank's captured output in the run folder, bounded, with stable offsets.

A log file holds lines of :func:`em_dist.store.lines.output_line`. It is kept under
:func:`em_dist.limits.log_max_bytes`: when an append would pass it, the file is rewritten
(to a temporary file, then renamed over) with the newest half of the limit, cut at a line,
behind one marker line (:func:`~em_dist.store.lines.dropped_marker`) that says how many
bytes of output were dropped before it in all.

Offsets into a rank's output are *logical*: bytes of output lines since the rank's first,
whether still in the file or dropped. The uploader and the server count in them, so an
upload resumes at the same place after the head of the file was dropped:
``logical = dropped + (position_in_file - marker_length)`` (:func:`log_base`).
"""

from __future__ import annotations

import heapq
import os
import time
from pathlib import Path
from typing import Any

from .files import contained
from .lines import dropped_bytes, dropped_marker

LOGS_DIR = "logs"
_COPY = 1 << 20


def log_file(run_dir: Path, rank: int) -> Path:
    return run_dir / LOGS_DIR / f"rank-{rank}.log"


def log_ranks(run_dir: Path) -> list[int]:
    """The ranks that have a log file in ``run_dir``."""
    ranks = []
    for p in (run_dir / LOGS_DIR).glob("rank-*.log"):
        if not contained(run_dir, p):  # a link out of the run folder is never read
            continue
        try:
            ranks.append(int(p.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(ranks)


def log_base(path: Path) -> tuple[int, int]:
    """``(marker_length, dropped)`` of a log file: where its kept output starts in the file, and
    the logical offset of that start. ``(0, 0)`` for a file that dropped nothing (or is missing)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(4096)
    except OSError:
        return 0, 0
    if not first.endswith(b"\n"):
        return 0, 0
    dropped = dropped_bytes(first.decode("utf-8", "replace"))
    return (len(first), dropped) if dropped is not None else (0, 0)


class LogFile:
    """One rank's log file, appended by the writer thread only; :meth:`append` keeps it under ``limit``."""

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self._fd: int | None = None
        self._size = 0
        self._marker = 0
        self._dropped = 0

    def append(self, data: bytes) -> None:
        """Append complete lines; raises OSError (the file then ends at its last complete line)."""
        fd = self._open()
        if self._size + len(data) > self.limit:
            self._drop_oldest(fd, data)
            return
        view, done = memoryview(data), 0
        try:
            while done < len(data):
                done += os.write(fd, view[done:])
        except OSError:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                self.close()
            raise
        self._size += len(data)

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    def fsync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)

    def _open(self) -> int:
        if self._fd is not None:
            return self._fd
        from .writer import _complete_size  # the same torn-tail rule as the metrics files

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            good = _complete_size(fd, size)
            if size > good:
                os.ftruncate(fd, good)
        except OSError:
            os.close(fd)
            raise
        self._fd, self._size = fd, good
        self._marker, self._dropped = log_base(self.path)
        return fd

    def _drop_oldest(self, fd: int, data: bytes) -> None:
        """Rewrite the file as marker + the newest ``limit // 2`` bytes of (its output + ``data``)."""
        keep = self.limit // 2
        body = self._size - self._marker  # output bytes in the file now
        total = body + len(data)
        cut = max(0, total - keep)
        # move the cut to the start of the next line
        if cut < body:
            block = os.pread(fd, min(body - cut, 1 << 17), self._marker + cut)
            nl = block.find(b"\n")
            cut = cut + nl + 1 if nl >= 0 else body
        if cut > body and data[cut - body - 1:cut - body] != b"\n":
            nl = data.find(b"\n", cut - body)
            cut = body + nl + 1 if nl >= 0 else total
        dropped = self._dropped + cut
        marker = dropped_marker(time.time(), dropped, self.limit).encode("utf-8")
        tmp = self.path.with_name(self.path.name + ".tmp")
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(out, marker)
            pos = self._marker + cut
            while pos < self._size:  # the kept part of the file, copied in pieces
                piece = os.pread(fd, min(_COPY, self._size - pos), pos)
                if not piece:
                    break
                _write_all(out, piece)
                pos += len(piece)
            _write_all(out, data[max(0, cut - body):])
            os.fsync(out)
        finally:
            os.close(out)
        os.replace(tmp, self.path)
        self.close()
        self._open()


def _write_all(fd: int, data: bytes) -> None:
    view, done = memoryview(data), 0
    while done < len(data):
        done += os.write(fd, view[done:])


def read_log(run_dir: Path, rank: int | None = None, tail: int | None = None) -> list[dict[str, Any]]:
    """Captured lines ``{rank, time, stream, text}`` of one rank (in the order printed) or of every
    rank (ordered by time); ``tail`` keeps the last ``tail`` lines of each rank. A marker of dropped
    output reads as a line of stream ``em``; a torn last line (a crash mid-write) is skipped."""
    from collections import deque

    from .lines import parse_output_line

    if tail is not None and (isinstance(tail, bool) or not isinstance(tail, int) or tail < 0):
        raise ValueError(f"tail must be a non-negative number of lines, got {tail!r}")
    per_rank: list[list[dict[str, Any]]] = []
    for r in log_ranks(run_dir) if rank is None else [rank]:
        out: list[dict[str, Any]] = []
        per_rank.append(out)
        try:
            with open(log_file(run_dir, r), encoding="utf-8", errors="backslashreplace") as f:
                lines = deque((line for line in f if line.endswith("\n")), maxlen=tail)
        except FileNotFoundError:
            continue
        for line in lines:
            parsed = parse_output_line(line)
            if parsed is not None:
                out.append({"rank": r, **parsed})
    # each rank in its own order (a marker of dropped output first), the ranks merged by time
    return list(heapq.merge(*per_rank, key=lambda line: line["time"]))
