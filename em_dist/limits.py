"""The one set of input limits: what ``Run.log`` accepts at the call and what the server stores.

The SDK checks these when a name is first seen or a value is converted, so ``log()``
refuses with a clear ``ValueError`` what the server would refuse; the server checks
every metric line and JSON document against the same rules and answers 400 naming the
line or field. Both databases get the same answer, because nothing reaches them that
either could refuse (PostgreSQL refuses NUL in text, lone surrogates, out-of-range
integers and NaN in JSON; SQLite takes them, and the two must not disagree).

Standard library only: the SDK, the server and the tests import it alike.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

MAX_TYPE_CHARS = 200
"""A metric type (``train``, ``val``, or a custom one) is at most this many characters."""
MAX_NAME_CHARS = 500
"""A metric name is at most this many characters."""
MAX_RANK = 2**31 - 1
"""Ranks are 32-bit signed integers in the database."""
MAX_STEP = 2**63 - 1
"""Steps are 64-bit signed integers in the database."""
MAX_OFFSET = 2**63 - 1
"""Byte offsets and line ids are 64-bit signed integers in the database: an offset plus a chunk stays below."""
MAX_WORLD_SIZE = 2**17
"""The most ranks one run can have (131,072: beyond the largest jobs run today). A run upload
lists at most this many ranks, and the server's work on them is linear."""
MAX_OBJECT_NAME_CHARS = 500
"""A run or artifact name (also the name a run gives a linked artifact) is at most this many characters."""
MAX_TIMESTAMP_CHARS = 64
"""A run's start or end time (ISO 8601 text) is at most this many characters."""
MAX_FOLDER_PATH_CHARS = 1000
"""A folder path (``a/b/c``) is at most this many characters; one of its names at most
:data:`MAX_FOLDER_NAME_CHARS`."""
MAX_FOLDER_NAME_CHARS = 200
"""One name in a folder path is at most this many characters."""
MAX_FLOAT = sys.float_info.max
"""Metric values, epochs and times are stored as float64; an integer beyond this has no float."""
MAX_REQUEST_HEAD_BYTES = 2 * 1024 * 1024
"""The largest request line and headers the server reads: a filter too long for the API is still
answered (400, with a position) instead of the connection being dropped mid-request."""
MAX_JSON_BYTES = 8 * 1024 * 1024
"""The largest JSON request body the server takes (run metadata, artifact file lists)."""
MAX_METRICS_CHUNK_BYTES = 32 * 1024 * 1024
"""The largest metrics chunk (raw JSON lines) the server takes in one request."""

MAX_HISTOGRAM_BINS = 1024
"""An ``em.Histogram`` has 1..this many bins."""
MAX_HISTOGRAM_VALUES = 100_000_000
"""The most values one ``em.Histogram`` takes (binned on the writer thread, off the training loop)."""
MAX_TABLE_COLUMNS = 200
"""An ``em.Table`` has 1..this many columns."""
MAX_TABLE_CELLS = 100_000
"""An ``em.Table`` holds at most this many cells (rows x columns)."""
MAX_TEXT_CHARS = 1_000_000
"""An ``em.Text`` (and a table cell or image caption) is at most this many characters."""
MAX_IMAGE_PIXELS = 2048 * 2048
"""An ``em.Image`` has at most this many pixels (width x height): its PNG travels from a rank to
rank 0 as one record."""
MAX_IMAGE_FILE_BYTES = 32 * 1024 * 1024
"""An image file given by path (``em.Image("plot.png")``) is at most this many bytes."""
MAX_HOOK_HISTOGRAMS = 256
"""The framework hooks' weight and gradient histograms (``histograms_every_n_*``) cover at most
this many parameter tensors per call: the first ones in the model's own order; the rest are
skipped, with one warning naming how many and the first skipped."""


def text_problem(text: str, *, max_chars: int | None = None) -> str | None:
    """What is wrong with ``text`` as a stored string (None when it is fine).

    Refused: NUL characters, lone surrogates (not UTF-8) and more than ``max_chars``.
    """
    if max_chars is not None and len(text) > max_chars:
        return f"is {len(text)} characters long; the limit is {max_chars}"
    if "\x00" in text:
        return "contains a NUL character"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone surrogate (not valid UTF-8)"
    return None


def number_problem(value: int | float) -> str | None:
    """What is wrong with ``value`` as a float64 metric value (None when it fits).

    NaN and infinities are fine (the line codec keeps them); an integer too large for a
    float is not.
    """
    if value.__class__ is int and not -MAX_FLOAT <= value <= MAX_FLOAT:
        return f"is an integer too large to store as a float64 (limit ±{MAX_FLOAT:.4g})"
    return None


def json_problem(value: Any, where: str = "", depth: int = 0) -> str | None:
    """What is wrong with ``value`` as a stored JSON document, naming the path to it.

    Refused: NaN and infinities (not JSON), integers no float64 holds (PostgreSQL stores
    ``10**400`` but then fails every numeric comparison with it) and strings (keys included)
    that :func:`text_problem` refuses. None when the document is fine.
    """
    if depth > 64:
        return f"{where or 'the document'} is nested more than 64 levels deep"
    cls = value.__class__
    if cls is str:
        problem = text_problem(value)
        return f"{where or 'a string'} {problem}" if problem else None
    if cls is float:
        return None if math.isfinite(value) else f"{where or 'a number'} is {value!r}, which JSON cannot hold"
    if cls is int:
        problem = number_problem(value)
        return f"{where or 'a number'} {problem}" if problem else None
    if cls is dict:
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if key.__class__ is str:
                problem = text_problem(key)
                if problem:
                    return f"a key of {where or 'the document'} {problem}"
            problem = json_problem(item, here, depth + 1)
            if problem:
                return problem
        return None
    if cls is list:
        for index, item in enumerate(value):
            problem = json_problem(item, f"{where}[{index}]", depth + 1)
            if problem:
                return problem
    return None


DEFAULT_LOG_MAX_BYTES = 100 * 1024 * 1024
"""Captured output kept per rank (``logs/rank-<r>.log``, and on the server) unless ``EM_LOG_MAX_BYTES`` says otherwise."""
MAX_OUTPUT_LINE_CHARS = 16 * 1024
"""A captured line longer than this is recorded as several lines (a progress bar that never ends its line)."""
MAX_LOGS_CHUNK_BYTES = 8 * 1024 * 1024
"""The largest chunk of captured output (raw log lines) the server takes in one request."""


def log_max_bytes() -> int:
    """Bytes of captured output kept per rank: ``$EM_LOG_MAX_BYTES`` or :data:`DEFAULT_LOG_MAX_BYTES`.

    Past it the oldest half is dropped and one marker line says how much (the newest is kept).
    A value that is not a positive integer is refused with ``ValueError`` naming the variable.
    """
    raw = os.environ.get("EM_LOG_MAX_BYTES")
    if not raw:
        return DEFAULT_LOG_MAX_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1024:
        raise ValueError(f"EM_LOG_MAX_BYTES={raw!r}: it must be a whole number of bytes, at least 1024")
    return value

MAX_MEDIA_RECORD_BYTES = 16 * 1024 * 1024
"""The largest media record (one JSON line of ``media/rank-<r>.jsonl``, an image's PNG not counted)
the server stores."""
