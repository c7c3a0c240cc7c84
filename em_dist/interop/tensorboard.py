"""TensorBoard event files in and out, read and written with TensorBoard's own library.

In: every folder under a log directory that holds ``events.out.tfevents.*`` files is one
run (TensorBoard's "run"); a folder named ``rank-<r>`` is rank ``r`` of its parent's run, the
layout a distributed job gets when each rank writes its own ``SummaryWriter``. Scalars come in
with their step and wall time, both the v1 form (``simple_value``, what ``SummaryWriter.add_scalar``
writes) and the v2 form (a scalar tensor of the ``scalars`` plugin). Tags map to (type, name) by
:mod:`em_dist.interop.tags`. Histograms (v1 ``histo`` with its bucket edges and counts, v2 tensors),
images (PNG) and text come in as media of the run (``RunRecord.media()``) at their step and time;
other kinds (audio, PR curves, meshes) are counted and skipped.

Out: one event file per rank (``rank-<r>/`` when the run has several), every metric point a
scalar ``<type>/<name>`` at its step and time (TensorBoard stores scalars as 32-bit floats);
histograms, images and text as TensorBoard's own kinds under the same tags (tables left out).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ..media import Text
from ..media.encode import counts_payload, media_line, png_payload, text_payload
from ..store.records import MediaEntry, RunRecord
from .folder import ImportedRun
from .tags import join_tag, split_tag

RANK_FOLDER = re.compile(r"rank-(\d+)")
"""A folder of one rank's event files: ``rank-<r>``."""
EVENT_GLOB = "events.out.tfevents.*"
_TEXT_SUFFIX = "/text_summary"


def _library(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError("reading and writing TensorBoard files needs tensorboard: pip install "
                          "'em_dist[interop]' (or pip install tensorboard)") from exc


def event_runs(logdir: Path) -> dict[Path, dict[int, list[Path]]]:
    """The TensorBoard runs under ``logdir``: run folder -> rank -> its event files (in name order,
    which is the order TensorBoard writes them)."""
    runs: dict[Path, dict[int, list[Path]]] = {}
    for events in sorted(logdir.rglob(EVENT_GLOB)):
        folder = events.parent
        match = RANK_FOLDER.fullmatch(folder.name)
        run, rank = (folder.parent, int(match[1])) if match and folder != logdir else (folder, 0)
        runs.setdefault(run, {}).setdefault(rank, []).append(events)
    return runs


def _events(files: list[Path], media: list[tuple[int, float, str]], skipped: dict[str, int]) -> Iterator[tuple[str, int, float, float]]:
    """``(tag, step, wall_time, value)`` of every scalar in ``files``; histograms, images and text go
    to ``media`` as ``(step, wall_time, media record)``; other kinds (audio, meshes, PR curves) and
    values that can't be imported are counted in ``skipped``."""
    loader_mod = _library("tensorboard.backend.event_processing.event_file_loader")
    tensor_util = _library("tensorboard.util.tensor_util")
    for events in files:
        for event in loader_mod.EventFileLoader(str(events)).Load():
            if not event.HasField("summary"):
                continue
            step, wall = int(event.step), float(event.wall_time)
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                plugin = value.metadata.plugin_data.plugin_name if kind == "tensor" else kind
                if kind == "simple_value":
                    yield value.tag, step, wall, float(value.simple_value)
                    continue
                if plugin == "scalars":
                    yield value.tag, step, wall, float(tensor_util.make_ndarray(value.tensor).item())
                    continue
                key = {"histo": "histogram", "histograms": "histogram", "image": "image", "images": "image"}.get(plugin or "", plugin or "unknown")
                read = _MEDIA.get(plugin or "")
                try:
                    payload = read(value, tensor_util) if read is not None else None
                except (ValueError, TypeError, IndexError, UnicodeDecodeError):
                    payload = None
                if payload is None:
                    skipped[key] = skipped.get(key, 0) + 1
                    continue
                tag = value.tag
                if plugin == "text" and tag.endswith(_TEXT_SUFFIX):  # torch's add_text("notes") writes notes/text_summary
                    tag = tag[: -len(_TEXT_SUFFIX)]
                type_, name = split_tag(tag)
                media.append((step, wall, media_line(payload[0], type_, step, None, wall, name, payload[1])))


def _histo(value: Any, tensor_util: Any) -> tuple[str, dict[str, Any]]:
    """A v1 histogram (``SummaryWriter.add_histogram``): bucket ``i`` holds the values in
    ``(bucket_limit[i-1], bucket_limit[i]]``; the first bucket's lower edge is the values' min."""
    h = value.histo
    limits, counts = [float(x) for x in h.bucket_limit], [int(round(c)) for c in h.bucket]
    if counts and counts[0] == 0 and len(counts) > 1:  # torch's writer: an empty bucket below the first edge
        edges, counts = limits, counts[1:]
    else:
        edges = [min(float(h.min), limits[0]) if limits else float(h.min)] + limits
    edges = [min(max(e, float(h.min)), float(h.max)) if not math.isfinite(e) or abs(e) > 1e300 else e for e in edges]
    return "histogram", counts_payload(edges, counts)


def _histograms_v2(value: Any, tensor_util: Any) -> tuple[str, dict[str, Any]]:
    """A v2 histogram: a k x 3 tensor of (left edge, right edge, count)."""
    rows = tensor_util.make_ndarray(value.tensor).tolist()
    edges = [float(rows[0][0])] + [float(r[1]) for r in rows]
    return "histogram", counts_payload(edges, [int(round(r[2])) for r in rows])


def _image(value: Any, tensor_util: Any) -> tuple[str, dict[str, Any]]:
    """A v1 image (``SummaryWriter.add_image``): PNG bytes with their size."""
    img = value.image
    if not img.encoded_image_string.startswith(b"\x89PNG"):
        raise ValueError("not a PNG")
    return "image", png_payload(img.encoded_image_string, img.width, img.height)


def _images_v2(value: Any, tensor_util: Any) -> tuple[str, dict[str, Any]]:
    """A v2 image: a string tensor (width, height, PNG...); the first image."""
    items = tensor_util.make_ndarray(value.tensor).reshape(-1).tolist()
    if len(items) < 3 or not items[2].startswith(b"\x89PNG"):
        raise ValueError("not a PNG")
    return "image", png_payload(items[2], int(items[0]), int(items[1]))


def _text(value: Any, tensor_util: Any) -> tuple[str, dict[str, Any]]:
    """Text (``SummaryWriter.add_text``): a string tensor; several strings are joined by lines."""
    items = tensor_util.make_ndarray(value.tensor).reshape(-1).tolist()
    text = "\n".join(x.decode("utf-8") if isinstance(x, bytes) else str(x) for x in items)
    return "text", text_payload(Text(text))


_MEDIA: dict[str, Callable[[Any, Any], tuple[str, dict[str, Any]]]] = {
    "histo": _histo, "histograms": _histograms_v2, "image": _image, "images": _images_v2, "text": _text,
}
"""The plugin (or v1 field) -> its reader into (media kind, payload)."""


def read_logdir(logdir: str | Path, *, name: str | None = None) -> list[ImportedRun]:
    """Every TensorBoard run under ``logdir`` (scalars, histograms, images and text of every rank),
    named ``name`` (default: the log directory's name) plus its folder path under ``logdir``."""
    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"no TensorBoard log directory at {root}")
    out: list[ImportedRun] = []
    for folder, ranks in event_runs(root).items():
        skipped: dict[str, int] = {}
        points: dict[int, list[Any]] = {}
        media: dict[int, list[str]] = {}
        for r, files in sorted(ranks.items()):
            found: list[tuple[int, float, str]] = []
            points[r] = sorted(((*split_tag(tag), step, wall, value) for tag, step, wall, value in _events(files, found, skipped)),
                               key=lambda p: (p[3], p[2]))
            if found:
                media[r] = [line for _, _, line in sorted(found, key=lambda m: (m[1], m[0]))]
        run_name = "_".join([name or root.resolve().name, *folder.relative_to(root).parts])
        out.append(ImportedRun(run_name, f"TensorBoard logs {folder}", "tensorboard", points, skipped=skipped, media=media))
    return out


def export_run(run: RunRecord, out: str | Path) -> list[Path]:
    """Write ``run``'s metric points as TensorBoard scalars and its histograms, images and text as
    TensorBoard's histograms, images and text under ``out`` (``out/rank-<r>/`` per rank when the
    run has several); returns the folders written. Tables are left out."""
    writer_mod = _library("tensorboard.summary.writer.event_file_writer")
    event_pb2 = _library("tensorboard.compat.proto.event_pb2")
    summary_pb2 = _library("tensorboard.compat.proto.summary_pb2")
    root = Path(out)
    media = run.media()
    ranks = sorted(set(run.ranks()) | {m.rank for m in media})
    folders: list[Path] = []
    for rank in ranks:
        folder = root / f"rank-{rank}" if len(ranks) > 1 else root
        folder.mkdir(parents=True, exist_ok=True)
        writer = writer_mod.EventFileWriter(str(folder))
        try:
            for p in run.metrics(rank=rank):
                value = summary_pb2.Summary.Value(tag=join_tag(p["type"], p["name"]), simple_value=float(p["value"]))
                writer.add_event(event_pb2.Event(wall_time=p["time"] or 0.0, step=p["step"],
                                                 summary=summary_pb2.Summary(value=[value])))
            for m in media:
                if m.rank != rank:
                    continue
                value = _media_value(m, summary_pb2)
                if value is not None:
                    writer.add_event(event_pb2.Event(wall_time=m.time or 0.0, step=m.step, summary=summary_pb2.Summary(value=[value])))
        finally:
            writer.close()
        folders.append(folder)
    return folders


def _media_value(m: MediaEntry, summary_pb2: Any) -> Any:
    """A media entry as a TensorBoard summary value (None for a table, which TensorBoard has no kind for)."""
    tag = join_tag(m.type, m.name)
    if m.kind == "histogram" and m.bins and m.counts is not None:
        # torch's layout: an empty bucket up to the first edge, then bucket i up to edge i + 1
        histo = summary_pb2.HistogramProto(min=m.bins[0], max=m.bins[-1], num=sum(m.counts),
                                           bucket_limit=list(m.bins), bucket=[0, *m.counts])
        return summary_pb2.Summary.Value(tag=tag, histo=histo)
    if m.kind == "image" and m.path:
        image = summary_pb2.Summary.Image(height=m.height or 0, width=m.width or 0, colorspace=4,
                                          encoded_image_string=Path(m.path).read_bytes())
        return summary_pb2.Summary.Value(tag=tag, image=image)
    if m.kind == "text" and m.text is not None:
        tensor_pb2 = _library("tensorboard.compat.proto.tensor_pb2")
        shape_pb2 = _library("tensorboard.compat.proto.tensor_shape_pb2")
        types_pb2 = _library("tensorboard.compat.proto.types_pb2")
        metadata = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[m.text.encode("utf-8")],
                                        tensor_shape=shape_pb2.TensorShapeProto(dim=[shape_pb2.TensorShapeProto.Dim(size=1)]))
        return summary_pb2.Summary.Value(tag=tag + _TEXT_SUFFIX, metadata=metadata, tensor=tensor)
    return None
