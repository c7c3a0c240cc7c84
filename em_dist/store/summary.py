"""``summary.json``: what a listing needs without reading a run's metric files.

The writer keeps, per rank, how many records it wrote and the last record of each
type (its step, epoch, time and values), and rewrites this small document with the
heartbeat. ``em run list`` reads it instead of every metric point (a run of millions of
points lists as fast as an empty one). It is a cache: a run folder without it (older
format, or a crash before the first cycle) is listed from run.json alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any


if TYPE_CHECKING:
    from ..sink import Record, RecordTuple

SUMMARY_FILE = "summary.json"


class RunSummary:
    """Counts and last records per rank, fed by the writer thread only."""

    def __init__(self) -> None:
        self._records: dict[int, int] = {}
        self._last: dict[int, dict[str, Any]] = {}
        self.changed = False

    def add(self, rank: int, records: Sequence[Record], encoded: Mapping[Any, RecordTuple] | None = None) -> None:
        """Note a batch of records (tuples, or lines the training thread encoded already).

        The last value of *every* metric of every type counts (a loop that logs ``loss`` then
        ``lr`` each step keeps both). A line is never parsed (that would cost the writer more
        than writing it, exactly when it is behind): when the batch holds lines, the newest
        record the encoder made of each (type, names), ``encoded``, stands for them (it may be a
        moment newer than the batch: it is what the loop logged last). A peer's lines never come
        here (each peer keeps its own summary and sends it, :meth:`set_rank`)."""
        if not records:
            return
        self._records[rank] = self._records.get(rank, 0) + len(records)
        # Newest first: a record whose metric names the newer ones of its type all had is skipped with
        # one set comparison of dict views (C), so a loop of one shape costs about that per record.
        by_type: dict[str, dict[str, RecordTuple]] = {}
        lines = False
        for rec in reversed(records):
            if isinstance(rec, str):
                lines = True
                continue
            metrics = rec[4]
            seen = by_type.get(rec[0])
            if seen is None:
                by_type[rec[0]] = dict.fromkeys(metrics, rec)
            elif not seen.keys() >= metrics.keys():
                for name in metrics:
                    seen.setdefault(name, rec)
        last = self._last.setdefault(rank, {})
        for t, named in by_type.items():  # in logging order: the batch's newest wins
            entry = last.setdefault(t, {})
            for name, rec in named.items():
                entry[name] = _entry(rec, name)
        if lines and encoded:  # by time: an encoder's record may be older than this batch's tuples
            for rec in list(encoded.values()):
                entry = last.setdefault(rec[0], {})
                for name in rec[4]:
                    old = entry.get(name)
                    if old is None or not isinstance(old.get("time"), float) or old["time"] < rec[3]:
                        entry[name] = _entry(rec, name)
        self.changed = True

    def set_rank(self, rank: int, records: int, last: dict[str, Any]) -> None:
        """A peer's own summary (it keeps it on its side and sends it: rank 0 never parses a peer's lines)."""
        self._records[rank] = records
        self._last[rank] = last
        self.changed = True

    def rank(self, rank: int) -> tuple[int, dict[str, Any]]:
        """``(records, last)`` of one rank, for a peer to send."""
        return self._records.get(rank, 0), self._last.get(rank, {})

    def doc(self) -> dict[str, Any]:
        """The JSON document (non-finite values as the strings NaN / Infinity / -Infinity)."""
        self.changed = False
        return {
            "records": {str(r): n for r, n in sorted(self._records.items())},
            "last": {str(r): v for r, v in sorted(self._last.items())},
        }


def _entry(rec: RecordTuple, name: str) -> dict[str, Any]:
    _, step, epoch, when, metrics = rec
    return {"value": _plain(metrics[name]), "step": step, "epoch": epoch, "time": when}


def _plain(value: Any) -> Any:
    if value.__class__ is float and value - value != 0.0:
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value.__class__ in (int, float, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)
