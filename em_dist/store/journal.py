"""A rank's journal: every record it accepted, numbered, on its own disk until rank 0 acknowledged it.

A non-zero rank's records are durable on the rank that logged them before they leave it:
its sending thread appends each batch to ``<runs folder>/.spool/<run id>/rank-<r>.<pid>.journal``
(numbered 1, 2, ... per rank and attempt), then sends it. Rank 0 writes a peer's metric lines
with their number (``{"n":17,...}``) and, at the peer's goodbye, acknowledges the highest
number it has on disk. A fully acknowledged journal is deleted; anything else stays and is
merged into the same run later, exactly once by (rank, number):

- by rank 0 at its end, for journals it can read (the same host, or a shared filesystem);
- by the rank itself at its end, once rank 0's run is finished and its folder is visible;
- by ``em run merge RUN_FOLDER [--spool DIR]`` wherever the journal and the run meet.

The format: a journal line is ``<n>\\t<record>``, where the record is a metric line of
``metrics/rank-<r>.jsonl``, a captured-output record (:data:`~em_dist.store.lines.OUTPUT_MARK`
and its log line) or a media record (:data:`~em_dist.store.lines.MEDIA_MARK`, merged into
``media/rank-<r>.jsonl`` with its number); a torn last line (a crash mid-write) is ignored. Beside it,
``rank-<r>.<pid>.json`` says whose it is (run id, name, rank, attempt, host, pid) and whether the
rank closed it (``closed``: nothing more will be added).
"""

from __future__ import annotations

import bisect
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import layout
from .files import complete_lines, read_json, write_json_atomic
from .lines import MEDIA_MARK, OUTPUT_MARK
from .media import media_file, stored_line

SPOOL_DIR = ".spool"
"""The journals' folder under a runs folder (``em run list`` reads no folder without a run.json)."""

_NUMBERED = re.compile(rb'^\{(?:"attempt":(\d+),)?"n":(\d+),')


def spool_dir(runs_parent: Path, run_id: str) -> Path:
    """Where the journals of the run ``run_id`` are kept under a runs folder."""
    return runs_parent / SPOOL_DIR / layout.check_name(run_id, "run id")


def numbered(line: str, n: int, attempt: int) -> str:
    """A peer's metric line as rank 0 writes it: with its number (and its attempt, past the first)."""
    head = f'{{"attempt":{attempt},"n":{n},' if attempt else f'{{"n":{n},'
    return head + line[1:]


class Journal:
    """This rank's journal (its sending thread only). The file is made at the first append."""

    def __init__(self, folder: Path, rank: int, meta: dict[str, Any]) -> None:
        self.folder = folder
        self.rank = rank
        # one file per process: a restarted job's rank numbers its records afresh, and its journal
        # must not run into the one its previous attempt left behind
        self.path = folder / f"rank-{rank}.{os.getpid()}.journal"
        self.meta_path = self.path.with_suffix(".json")
        self._meta = {**meta, "rank": rank, "host": socket.gethostname(), "pid": os.getpid(), "closed": False}
        self._fd: int | None = None
        self._size = 0
        self._index: list[tuple[int, int]] = []  # (first number of a batch, its byte offset): re-reads seek
        self.last = 0
        """The number of the newest record journaled (records are 1..last)."""
        self.failed: OSError | None = None

    def append(self, records: list[str]) -> int:
        """Journal ``records`` (encoded lines); returns the number of the first. A disk that refuses is
        noted in :attr:`failed` (the records still travel; only their safety net is missing)."""
        first = self.last + 1
        self.last += len(records)
        if not records:
            return first
        data = "".join(f"{first + i}\t{r}" for i, r in enumerate(records)).encode("utf-8", "backslashreplace")
        try:
            if self._fd is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                write_json_atomic(self.meta_path, self._meta, durable=False)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            view, done = memoryview(data), 0
            while done < len(data):
                done += os.write(self._fd, view[done:])
            self._index.append((first, self._size))
            self._size += len(data)
        except OSError as exc:
            self.failed = exc
        return first

    def read(self, first: int, count: int) -> list[str]:
        """Records ``first``.. (at most ``count``) as journaled: what a rebuilt link re-sends, or a
        spilled batch. Seeks to the batch holding ``first`` (no re-read of the whole journal)."""
        at = bisect.bisect_right(self._index, (first, 1 << 62)) - 1
        offset = self._index[at][1] if at >= 0 else 0
        out: list[str] = []
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                for raw in f:
                    if not raw.endswith(b"\n"):
                        break
                    number, sep, record = raw.partition(b"\t")
                    if not sep or int(number) < first:
                        continue
                    out.append(record.decode("utf-8", "backslashreplace"))
                    if len(out) >= count:
                        break
        except (OSError, ValueError):
            pass
        return out

    def describe(self, **meta: Any) -> None:
        """Add to the journal's description (rank 0's run id and path once known)."""
        self._meta.update(meta)
        if self._fd is not None:
            try:
                write_json_atomic(self.meta_path, self._meta, durable=False)
            except OSError as exc:
                self.failed = exc

    def close(self) -> None:
        """Nothing more will be added: fsync, and say so in the description (a merge may then delete it)."""
        if self._fd is None:
            return
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._meta.update(closed=True, last=self.last)
            write_json_atomic(self.meta_path, self._meta)
        except OSError as exc:
            self.failed = exc
        self._fd = None

    def remove(self) -> None:
        """Rank 0 has everything: the journal goes (and its folders, once empty)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        remove_journal(self.path)


def remove_journal(path: Path) -> None:
    for p in (path, path.with_suffix(".json")):
        try:
            p.unlink()
        except FileNotFoundError:
            pass
    for folder in (path.parent, path.parent.parent):  # <run id>/ and .spool/ when empty
        try:
            folder.rmdir()
        except OSError:
            break


def remove_if_covered(folder: Path, rank: int, on_disk: int) -> bool:
    """Delete ``rank``'s journal in ``folder`` if it is closed and rank 0 confirmed all of it (a node
    leader does this for its members once rank 0 answered the leader's goodbye)."""
    removed = False
    for path in folder.glob(f"rank-{rank}.*.journal"):
        meta = read_meta(path)
        if meta.get("closed") and int(meta.get("last", on_disk + 1)) <= on_disk:
            remove_journal(path)
            removed = True
    return removed


def finished(run_dir: Path) -> bool:
    """Whether the run at ``run_dir`` has ended (its run.json has an end time): only then may a rank
    merge its journal there itself; while it is live, rank 0's writer owns its files."""
    try:
        doc = read_json(run_dir / layout.RUN_FILE, {})
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and bool(doc.get("end_timestamp"))


def read_meta(path: Path) -> dict[str, Any]:
    """A journal's description (``rank-<r>.<pid>.json`` beside it); empty when unreadable."""
    try:
        doc = read_json(path.with_suffix(".json"), {})
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read_records(path: Path, after: int = 0) -> Iterator[tuple[int, str]]:
    """``(n, record)`` of a journal, from number ``after + 1`` on; a torn last line is left out."""
    for line in complete_lines(path, errors="backslashreplace"):
        number, sep, record = line.partition("\t")
        if not sep or not number.isdigit():
            continue
        n = int(number)
        if n > after:
            yield n, record


def journals_of(run_id: str, runs_parent: Path, extra: list[Path] | None = None) -> list[Path]:
    """The journals of run ``run_id`` under ``runs_parent``'s spool, and any in the folders ``extra``."""
    found: list[Path] = []
    for folder in [spool_dir(runs_parent, run_id), *(extra or [])]:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("rank-*.journal")):
            if read_meta(path).get("run_id", run_id) == run_id and path not in found:
                found.append(path)
    return found


@dataclass
class Merged:
    """What one journal's merge did."""

    rank: int
    added: int
    """Records appended to the run (0 when it had them all)."""
    last: int
    """The journal's newest number: the run now holds the rank's records 1..last of that attempt."""
    removed: bool
    """The journal was closed and is gone now."""


def watermark(run_dir: Path, rank: int, attempt: int) -> int:
    """The highest record number of ``rank`` and ``attempt`` in the run's metrics and media files (0: none)."""
    high = 0
    for path in (layout.metrics_file(run_dir, rank), media_file(run_dir, rank)):  # media records are numbered too
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            continue
        with f:
            for line in f:
                m = _NUMBERED.match(line)
                if m is not None and int(m.group(1) or 0) == attempt:
                    high = max(high, int(m.group(2)))
    return high


MERGE_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError)
"""What :func:`merge` raises when it can't merge (a disk error, the run's lock held past its wait,
an unreadable run.json or journal description): the journal is then left as it was."""


def merge(run_dir: Path, journal: Path) -> Merged:
    """Append to the finished run at ``run_dir`` the records of ``journal`` it lacks, exactly once by
    (rank, number), and record the rank's delivery in run.json; a closed journal is then deleted.

    Holds the run folder's lock throughout, so two merges (or a merge and an upload's read of
    run.json) never interleave. Output records go to ``logs/rank-<r>.log``: they are numbered in
    the journal like metrics, and those past the metric watermark are appended.
    """
    meta = read_meta(journal)
    rank = int(meta.get("rank", _rank_of(journal)))
    with FileLock(str(run_dir / layout.LOCK_FILE), timeout=30):
        doc = read_json(run_dir / layout.RUN_FILE, {}) or {}
        attempt = int(meta.get("attempt", doc.get("restarts", 0)) or 0)
        # What the run holds: its numbered metric lines, and what its delivery record says (output
        # lines carry no number in the log file; rank 0 and each merge record the newest number)
        known = (doc.get("delivery") or {}).get(str(rank)) or {}
        recorded = int(known.get("records", 0)) if int(known.get("attempt", 0)) == attempt else 0
        after = max(watermark(run_dir, rank, attempt), recorded)
        metrics: list[str] = []
        output: list[str] = []
        media: list[str] = []
        last = after
        for n, record in read_records(journal, after):
            last = n
            if record[:1] == OUTPUT_MARK:
                output.append(record[1:])
            elif record[:1] == MEDIA_MARK:
                try:
                    media.append(stored_line(run_dir, numbered(record[1:], n, attempt)))
                except ValueError:
                    continue  # not JSON: no em_dist made it
            else:
                metrics.append(numbered(record, n, attempt))
        if metrics:
            _append(layout.metrics_file(run_dir, rank), metrics)
        if media:
            _append(media_file(run_dir, rank), media)
        if output:
            from .logs import log_file

            _append(log_file(run_dir, rank), output)
        closed = bool(meta.get("closed"))
        delivery = dict(doc.get("delivery") or {})
        if not known or int(known.get("attempt", 0)) <= attempt:  # a rank's delivery is its newest attempt's
            delivery[str(rank)] = {"records": last, "complete": closed, **({"attempt": attempt} if attempt else {})}
        doc["delivery"] = delivery
        world = doc.get("world") or {}
        if rank in (world.get("absent_ranks") or []):  # it came after rank 0 ended: late, not absent
            absent = [r for r in world["absent_ranks"] if r != rank]
            doc["world"] = {k: v for k, v in world.items() if k != "absent_ranks"} | ({"absent_ranks": absent} if absent else {})
            doc["late_ranks"] = sorted({*(doc.get("late_ranks") or []), rank})
        write_json_atomic(run_dir / layout.RUN_FILE, doc)
    if closed:
        remove_journal(journal)
    return Merged(rank, len(metrics) + len(output) + len(media), last, closed)


def _append(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, "".join(lines).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _rank_of(journal: Path) -> int:
    return int(journal.name.split(".", 1)[0].split("-", 1)[1])
