"""The metric-line format: one definition, used by the writer, the reader, the uploader and the server.

A metric record is ``(type, step, epoch, time, metrics)``; on disk and on the wire it is
one JSON line of ``metrics/rank-<r>.jsonl`` (docs/format.md)::

    {"type":"train","step":10,"epoch":1,"time":1732900000.1,"metrics":{"loss":0.25}}

JSON has no NaN or infinities, so non-finite metric values are written as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (:func:`encode_number`,
:func:`decode_number`, :func:`json_number`).

The cross-rank view of a metric follows one rule (:func:`aggregate_across_ranks`): per
rank, the *last* value it logged for a step counts (a rank that logs a step twice
corrected itself, and counting both would weigh that rank double); across ranks, the
mean, min and max of those values per step, with the number of ranks and which.

Captured output (what a rank wrote to stdout and stderr) is one line of ``logs/rank-<r>.log``
per line printed (:func:`output_line`, :func:`parse_output_line`)::

    2026-12-01T00:20:01.123456Z out epoch 3: loss 0.25

the time it was read (UTC), the stream (``out``, ``err``, or ``em`` for em_dist's own marker
lines) and the text. The same line travels in the record channel (a rank's buffer, the
peers' ``rec`` messages) with :data:`OUTPUT_MARK` in front: the one rule that tells a
captured line from a metric line (:func:`is_output_record`).

Standard library only: the server, the SDK and the tests import it alike.
"""

from __future__ import annotations

import calendar
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

MetricRecord = tuple[str, int, int | float | None, float, dict[str, Any]]
"""A metric record as the training side holds it: ``(type, step, epoch, time, metrics)``; a metric
value is a number, or a device tensor until the writer materializes it (:mod:`em_dist.values`)."""

NONFINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
"""The strings that stand for non-finite metric values, and what they mean."""


def encode_number(value: int | float) -> str:
    """JSON text of a metric value; non-finite floats become the strings NaN / Infinity / -Infinity."""
    if value.__class__ is float:
        if value - value == 0.0:  # finite
            return repr(value)
        if value != value:
            return '"NaN"'
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return str(value)


def decode_number(value: int | float | str) -> int | float:
    """A metric value as read from JSON: the non-finite strings become floats, numbers stay."""
    if isinstance(value, str):
        try:
            return NONFINITE[value]
        except KeyError:
            raise ValueError(f"{value!r} is not a metric value (numbers, 'NaN', 'Infinity', '-Infinity')") from None
    return value


def json_number(value: float) -> float | str:
    """A float for a JSON answer: finite values as they are, the others as their strings."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class LineEncoder:
    """Encodes records into lines, fast: a line template is cached per (type, metric names).

    Encoding then costs little more than the numbers' reprs. The cache is shared by the
    training thread (when the writer is behind) and the writer thread; dict reads and
    writes of whole entries are atomic under the GIL, so no lock is needed.
    """

    def __init__(self) -> None:
        self._templates: dict[tuple[str, tuple[str, ...]], str] = {}
        self.newest: dict[tuple[str, tuple[str, ...]], MetricRecord] = {}
        """The newest record encoded per (type, metric names): what a summary takes for the lines it
        does not parse (one dict store per encode; the key is the template's)."""

    def __call__(self, rec: MetricRecord) -> str:
        type_, step, epoch, t, metrics = rec
        keys = tuple(metrics)
        key = (type_, keys)
        tpl = self._templates.get(key)
        if tpl is None:
            tpl = self._templates[key] = _template(type_, keys)
        self.newest[key] = rec
        enc = encode_number
        return tpl % (
            step,
            "null" if epoch is None else enc(epoch),
            repr(t),
            *[enc(v) for v in metrics.values()],
        )


def _template(type_: str, keys: tuple[str, ...]) -> str:
    def q(s: str) -> str:  # a JSON string, with '%' doubled for the %-format that fills the numbers
        return json.dumps(s).replace("%", "%%")

    body = ",".join(f"{q(k)}:%s" for k in keys)
    return f'{{"type":{q(type_)},"step":%d,"epoch":%s,"time":%s,"metrics":{{{body}}}}}\n'


def aggregate_across_ranks(points: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The cross-rank view of metric points ``{type, name, step, rank, value}``, by the rule above.

    Returns one dict per (type, name, step), sorted: ``{type, name, step, mean, min, max,
    count, ranks}``. ``points`` must be in logging order per rank (the files' order).
    """
    groups: dict[tuple[str, str, int], dict[int, Any]] = {}
    for p in points:
        groups.setdefault((p["type"], p["name"], p["step"]), {})[p["rank"]] = p["value"]  # later wins
    out = []
    for (type_, name, step), by_rank in sorted(groups.items(), key=lambda kv: kv[0]):
        values = list(by_rank.values())
        out.append({
            "type": type_, "name": name, "step": step,
            "mean": math.fsum(values) / len(values), "min": min(values), "max": max(values),
            "count": len(values), "ranks": sorted(by_rank),
        })
    return out


OUTPUT_MARK = "\x1e"
"""The first character of a record that is a captured output line (a metric line starts with ``{``)."""
OUTPUT_STREAMS = ("out", "err", "em")
"""stdout, stderr, and em_dist's own marker lines (output dropped past the limit)."""
_DROPPED = re.compile(r"dropped (\d+) bytes")


_second: tuple[int, str] = (-1, "")  # the last second formatted (replaced whole: safe from any thread)


def output_line(t: float, stream: str, text: str) -> str:
    """One line of a rank's log file: ``<UTC time> <stream> <text>\\n`` (``text`` holds no newline)."""
    global _second
    whole = int(t)
    second, stamp = _second
    if second != whole:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, stamp)
    return f"{stamp}.{int((t - whole) * 1e6):06d}Z {stream} {text}\n"


def output_record(t: float, stream: str, text: str) -> str:
    """A captured line as a record of the channel: :data:`OUTPUT_MARK`, then its log-file line."""
    return OUTPUT_MARK + output_line(t, stream, text)


MEDIA_MARK = "\x1d"
"""The first character of a record that is a media record (``em.Histogram``, ``em.Image``, ...): one
JSON object of its own kind (:mod:`em_dist.media.encode`), numbered and journaled like a metric
line, and stored by rank 0 in ``media/rank-<r>.jsonl`` (:mod:`em_dist.store.media`)."""


SIDE_MARKS = (OUTPUT_MARK, MEDIA_MARK)
"""The marks of records that are not metric lines (``rec[:1] in SIDE_MARKS``): no summary counts them."""


def is_media_record(rec: object) -> bool:
    """Whether a record (tuple or line) is a media record rather than a metric or output line."""
    return isinstance(rec, str) and rec[:1] == MEDIA_MARK


def is_output_record(rec: object) -> bool:
    """Whether a record (tuple or line) is a captured output line rather than a metric."""
    return rec.__class__ is str and rec[:1] == OUTPUT_MARK


def parse_output_line(line: str) -> dict[str, Any] | None:
    """``{time, stream, text}`` of a log-file line (None when it is not one)."""
    if len(line) < 32 or line[27] != " " or line[26] != "Z":
        return None
    stream, _, text = line[28:].partition(" ")
    if stream not in OUTPUT_STREAMS:
        return None
    try:
        t = calendar.timegm(time.strptime(line[:19], "%Y-%m-%dT%H:%M:%S")) + int(line[20:26]) / 1e6
    except ValueError:
        return None
    return {"time": t, "stream": stream, "text": text[:-1] if text.endswith("\n") else text}


def dropped_marker(t: float, dropped: int, limit: int) -> str:
    """The first line of a log file whose oldest output was dropped: ``dropped`` bytes so far in all."""
    return output_line(t, "em", f"[em_dist] dropped {dropped} bytes of earlier output (EM_LOG_MAX_BYTES={limit})")


def dropped_bytes(line: str) -> int | None:
    """The count a :func:`dropped_marker` line holds (None for any other line)."""
    parsed = parse_output_line(line)
    if parsed is None or parsed["stream"] != "em":
        return None
    m = _DROPPED.search(parsed["text"])
    return int(m.group(1)) if m else None
