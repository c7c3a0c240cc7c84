"""``summary.json``: what a listing needs without reading a run's metric files.

The writer keeps, per rank, how many records it wrote and the last record of each
type (its step, epoch, time and values), and rewrites this small document with the
heartbeat. ``em run list`` reads it instead of every metric point (a run of millions of
points lists as fast as an empty one). It is a cache: a run folder without it (older
format, or a crash before the first cycle) is listed from run.json alone.
"""

from __future__ import annotations

import json
from typing import Any

from .lines import decode_number

SUMMARY_FILE = "summary.json"


class RunSummary:
    """Counts and last records per rank, fed by the writer thread only."""

    def __init__(self) -> None:
        self._records: dict[int, int] = {}
        self._last: dict[int, dict[str, Any]] = {}
        self.changed = False

    def add(self, rank: int, records: list) -> None:
        """Note a batch of records (tuples, or lines the training thread encoded already)."""
        if not records:
            return
        self._records[rank] = self._records.get(rank, 0) + len(records)
        last = self._last.setdefault(rank, {})
        by_type: dict[str, Any] = {}
        for rec in records:  # one dict store per record: the cost of keeping the summary
            if rec.__class__ is str:
                by_type["\0line"] = rec
            else:
                by_type[rec[0]] = rec
        line = by_type.pop("\0line", None)
        if line is not None:
            try:
                doc = json.loads(line)
                by_type.setdefault(doc["type"], (doc["type"], doc["step"], doc["epoch"], doc["time"],
                                                 {k: decode_number(v) for k, v in doc["metrics"].items()}))
            except (ValueError, KeyError):
                pass
        for type_, (_, step, epoch, t, metrics) in by_type.items():
            entry = last.setdefault(type_, {})
            for name, value in metrics.items():
                entry[name] = {"value": _plain(value), "step": step, "epoch": epoch, "time": t}
        self.changed = True

    def doc(self) -> dict[str, Any]:
        """The JSON document (non-finite values as the strings NaN / Infinity / -Infinity)."""
        self.changed = False
        return {
            "records": {str(r): n for r, n in sorted(self._records.items())},
            "last": {str(r): v for r, v in sorted(self._last.items())},
        }


def _plain(value: Any) -> Any:
    if value.__class__ is float and value - value != 0.0:
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    if value.__class__ in (int, float, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)
