"""Media values into media records: the expensive half of :mod:`em_dist.media.values`, off the training thread.

Called by :meth:`em_dist.sink.QueuedSink._take` on the writer thread (rank 0, a plain process) or
the sending thread (other ranks): a record ``(type, step, epoch, time, metrics)`` whose metrics
hold media values is split into the record of its numbers (if any) and one media record per
value. A media record is a line of its own kind (:data:`~em_dist.store.lines.MEDIA_MARK`, then one
JSON object) and travels, is journaled and numbered exactly like a metric line; rank 0's writer
stores it (:mod:`em_dist.store.media`). An image's PNG rides in the line as base64 until then.

A value that cannot be encoded (Pillow missing, a file that is no image) is warned about once
and left out: the writer thread never fails for it.
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Callable
from typing import Any

from .._warn import warn_once
from ..limits import MAX_HISTOGRAM_BINS
from ..store.lines import MEDIA_MARK
from .values import Histogram, Image, Media, Table, Text


def _numpy() -> Any:
    try:
        import numpy
    except ImportError as exc:
        raise ImportError("em.Histogram and em.Image need NumPy: pip install 'em_dist[media]'") from exc
    return numpy


def _pil() -> Any:
    try:
        from PIL import Image as PILImage
    except ImportError as exc:
        raise ImportError("em.Image needs Pillow: pip install 'em_dist[media]'") from exc
    return PILImage


def histogram_payload(h: Histogram) -> dict[str, Any]:
    """``{bins: edges (len n+1), counts (len n), nonfinite}`` of a histogram's values."""
    values = h.values
    if callable(getattr(values, "numel", None)):  # a torch tensor: binned where it lives (GPU too)
        import torch

        flat = values.reshape(-1)
        if flat.dtype not in (torch.float32, torch.float64):  # histc takes these two on every device
            flat = flat.to(torch.float64)
        finite = flat[torch.isfinite(flat)]
        nonfinite = int(flat.numel() - finite.numel())
        if h.range is not None:
            lo, hi = h.range
        elif finite.numel():
            lo_t, hi_t = torch.aminmax(finite)
            lo, hi = float(lo_t), float(hi_t)  # the sync: on this thread, never the training one
        else:
            lo, hi = 0.0, 1.0
        lo, hi = _widen(lo, hi)
        counts = torch.histc(finite, bins=h.bins, min=lo, max=hi)
        return _hist_doc(lo, hi, h.bins, [int(c) for c in counts.cpu().tolist()], nonfinite)
    np = _numpy()
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    mask = np.isfinite(arr)
    finite = arr if mask.all() else arr[mask]
    nonfinite = int(arr.size - finite.size)
    if h.range is not None:
        lo, hi = h.range
    elif finite.size:
        lo, hi = float(finite.min()), float(finite.max())
    else:
        lo, hi = 0.0, 1.0
    lo, hi = _widen(lo, hi)
    counts, _ = np.histogram(finite, bins=h.bins, range=(lo, hi))
    return _hist_doc(lo, hi, h.bins, counts.tolist(), nonfinite)


def _widen(lo: float, hi: float) -> tuple[float, float]:
    """One value (or all values equal) gets a bin of width 1 around it, as NumPy does."""
    return (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)


def _hist_doc(lo: float, hi: float, bins: int, counts: list[int], nonfinite: int) -> dict[str, Any]:
    width = (hi - lo) / bins
    edges = [lo + i * width for i in range(bins)] + [hi]
    return {"bins": edges, "counts": counts, "nonfinite": nonfinite}


def image_payload(img: Image) -> dict[str, Any]:
    """``{png: base64, width, height, caption?}``."""
    pil = _pil()
    data = img.data
    if isinstance(data, bytes):  # a file's bytes: PNG kept as it is, any other format converted
        try:
            opened = pil.open(io.BytesIO(data))
            opened.load()
        except Exception as exc:  # Pillow raises several kinds for a file that is not an image
            raise ValueError(f"the file is not an image Pillow can read ({exc})") from exc
        png = data if opened.format == "PNG" else _png(opened)
        width, height = opened.size
    elif hasattr(data, "getpixel"):
        png, (width, height) = _png(data), data.size
    else:
        arr = _to_hwc_uint8(data)
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        png = _png(pil.fromarray(arr))
        height, width = int(arr.shape[0]), int(arr.shape[1])
    return png_payload(png, int(width), int(height), img.caption)


def png_payload(png: bytes, width: int, height: int, caption: str | None = None) -> dict[str, Any]:
    """The payload of an image already encoded as PNG (an importer's): ``{png: base64, width, height, caption?}``."""
    doc: dict[str, Any] = {"png": base64.b64encode(png).decode("ascii"), "width": int(width), "height": int(height)}
    if caption is not None:
        doc["caption"] = caption
    return doc


def counts_payload(edges: list[float], counts: list[int], nonfinite: int = 0) -> dict[str, Any]:
    """The payload of a histogram binned elsewhere (an importer's): ``edges`` (n + 1, finite, not
    decreasing) and ``counts`` (n, 1 <= n <= MAX_HISTOGRAM_BINS). Raises ``ValueError`` otherwise."""
    edges = [float(e) for e in edges]
    counts = [int(c) for c in counts]
    if not 1 <= len(counts) <= MAX_HISTOGRAM_BINS:
        raise ValueError(f"a histogram has 1..{MAX_HISTOGRAM_BINS} bins, got {len(counts)}")
    if len(edges) != len(counts) + 1:
        raise ValueError(f"a histogram of {len(counts)} bins needs {len(counts) + 1} edges, got {len(edges)}")
    if not all(math.isfinite(e) for e in edges) or any(b < a for a, b in zip(edges, edges[1:])):
        raise ValueError("a histogram's edges must be finite and not decreasing")
    if any(c < 0 for c in counts) or nonfinite < 0:
        raise ValueError("a histogram's counts must not be negative")
    return {"bins": edges, "counts": counts, "nonfinite": int(nonfinite)}


def _to_hwc_uint8(data: Any) -> Any:
    np = _numpy()
    if callable(getattr(data, "numel", None)):  # torch: CHW (or HW) to HWC on its device, then to the host
        t = data
        if t.dim() == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        arr = t.cpu().numpy()
    else:
        arr = data
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr, nan=0.0)
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _png(image: Any) -> bytes:
    if image.mode not in ("1", "L", "LA", "RGB", "RGBA", "I;16"):
        image = image.convert("RGBA" if "A" in image.mode else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def table_payload(t: Table) -> dict[str, Any]:
    """``{columns, rows}``; non-finite floats become the strings NaN / Infinity / -Infinity."""
    rows = [[_json_cell(c) for c in row] for row in t.rows]
    return {"columns": list(t.columns), "rows": rows}


def _json_cell(c: Any) -> Any:
    if c.__class__ is float and not math.isfinite(c):
        return "NaN" if c != c else ("Infinity" if c > 0 else "-Infinity")
    return c


def text_payload(t: Text) -> dict[str, Any]:
    return {"text": t.text}


PAYLOADS: dict[type[Media], Callable[[Any], dict[str, Any]]] = {
    Histogram: histogram_payload,
    Image: image_payload,
    Table: table_payload,
    Text: text_payload,
}
"""Media class -> its payload encoder (a registry: a new kind adds one entry)."""


def media_record(type_: str, step: int, epoch: int | float | None, t: float, name: str, value: Media) -> str:
    """The media record of ``value``: :data:`MEDIA_MARK` and one JSON line (no NaN: strict JSON)."""
    return media_line(value.kind, type_, step, epoch, t, name, PAYLOADS[value.__class__](value))


def media_line(kind: str, type_: str, step: int, epoch: int | float | None, t: float, name: str, payload: dict[str, Any]) -> str:
    """The one definition of a media record: :data:`MEDIA_MARK` and one JSON line (no NaN: strict JSON),
    the head (kind, type, step, epoch, time, name) then the kind's payload."""
    head = {"kind": kind, "type": type_, "step": step, "epoch": epoch, "time": t, "name": name}
    return MEDIA_MARK + json.dumps(head | payload, separators=(",", ":"), allow_nan=False) + "\n"


def split_media(batch: list[Any], at: list[int]) -> list[Any]:
    """``batch`` with each record at the indexes ``at`` replaced by the record of its numbers (when it
    has any) and one media record per media value, in the order logged."""
    out: list[Any] = []
    start = 0
    for i in at:
        out.extend(batch[start:i])
        start = i + 1
        type_, step, epoch, t, metrics = batch[i]
        numbers = {k: v for k, v in metrics.items() if not isinstance(v, Media)}
        if numbers:
            out.append((type_, step, epoch, t, numbers))
        for name, value in metrics.items():
            if isinstance(value, Media):
                try:
                    out.append(media_record(type_, step, epoch, t, name, value))
                except Exception as exc:  # noqa: BLE001 - a bad value must not stop the writer
                    warn_once(f"media:{value.kind}:{type(exc).__name__}",
                              f"em_dist: {value.kind} {name!r} at step {step} is left out: {exc}")
    out.extend(batch[start:])
    return out
