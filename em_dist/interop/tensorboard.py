"""TensorBoard event files in and out, read and written with TensorBoard's own library.

In: every folder under a log directory that holds ``events.out.tfevents.*`` files is one
run (TensorBoard's "run"); a folder named ``rank-<r>`` is rank ``r`` of its parent's run, the
layout a distributed job gets when each rank writes its own ``SummaryWriter``. Scalars come in
with their step and wall time, both the v1 form (``simple_value``, what ``SummaryWriter.add_scalar``
writes) and the v2 form (a scalar tensor of the ``scalars`` plugin). Tags map to (type, name) by
:mod:`em_dist.interop.tags`. Histograms, images and text are not imported yet (their kinds do not
exist in a run folder yet); how many values each run skipped is returned.

Out: one event file per rank (``rank-<r>/`` when the run has several), every metric point a
scalar ``<type>/<name>`` at its step and time. TensorBoard stores scalars as 32-bit floats.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store.records import RunRecord
from .folder import ImportedRun
from .tags import join_tag, split_tag

RANK_FOLDER = re.compile(r"rank-(\d+)")
"""A folder of one rank's event files: ``rank-<r>``."""
EVENT_GLOB = "events.out.tfevents.*"


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


def _scalars(files: list[Path], skipped: dict[str, int]) -> Iterator[tuple[str, int, float, float]]:
    """``(tag, step, wall_time, value)`` of every scalar in ``files``; other kinds are counted in ``skipped``."""
    loader_mod = _library("tensorboard.backend.event_processing.event_file_loader")
    tensor_util = _library("tensorboard.util.tensor_util")
    for events in files:
        for event in loader_mod.EventFileLoader(str(events)).Load():
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    yield value.tag, int(event.step), float(event.wall_time), float(value.simple_value)
                elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
                    yield value.tag, int(event.step), float(event.wall_time), float(tensor_util.make_ndarray(value.tensor).item())
                else:
                    plugin = value.metadata.plugin_data.plugin_name if kind == "tensor" else kind
                    key = {"histo": "histogram", "images": "image"}.get(plugin or "", plugin or "unknown")
                    skipped[key] = skipped.get(key, 0) + 1


def read_logdir(logdir: str | Path, *, name: str | None = None) -> list[ImportedRun]:
    """Every TensorBoard run under ``logdir`` (scalars of every rank), named ``name`` (default: the
    log directory's name) plus its folder path under ``logdir``."""
    root = Path(logdir)
    if not root.is_dir():
        raise FileNotFoundError(f"no TensorBoard log directory at {root}")
    out: list[ImportedRun] = []
    for folder, ranks in event_runs(root).items():
        skipped: dict[str, int] = {}
        points = {r: sorted(((*split_tag(tag), step, wall, value) for tag, step, wall, value in _scalars(files, skipped)),
                            key=lambda p: (p[3], p[2]))
                  for r, files in sorted(ranks.items())}
        run_name = "_".join([name or root.resolve().name, *folder.relative_to(root).parts])
        out.append(ImportedRun(run_name, f"TensorBoard logs {folder}", "tensorboard", points, skipped=skipped))
    return out


def export_run(run: RunRecord, out: str | Path) -> list[Path]:
    """Write ``run``'s metric points as TensorBoard scalars under ``out`` (``out/rank-<r>/`` per rank
    when the run has several); returns the folders written."""
    writer_mod = _library("tensorboard.summary.writer.event_file_writer")
    event_pb2 = _library("tensorboard.compat.proto.event_pb2")
    summary_pb2 = _library("tensorboard.compat.proto.summary_pb2")
    root = Path(out)
    ranks = run.ranks()
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
        finally:
            writer.close()
        folders.append(folder)
    return folders
