"""An imported run as a finished em_dist run folder: the one place importers write runs.

An importer (TensorBoard, MLflow) reads the other tool's data into an :class:`ImportedRun`;
:func:`write_run` makes the folder with the same writer a live run uses, so the run lists,
shows, exports and uploads as any other.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sink import RecordTuple
from ..store import layout
from ..store.writer import RunWriter

Point = tuple[str, str, int, float, float]
"""``(type, name, step, wall_time, value)`` of one imported metric point."""


@dataclass
class ImportedRun:
    """What an importer read of one run of another tool."""

    name: str
    source: str
    """Where it came from, for the run's description (``TensorBoard logs runs/exp1``)."""
    imported_from: str
    """The tool: ``tensorboard``, ``mlflow`` (``world.imported_from``)."""
    points: dict[int, list[Point]]
    """Rank -> its points."""
    hparams: dict[str, Any] = field(default_factory=dict)
    labels: list[str] = field(default_factory=list)
    status: str = "Succeeded"
    status_reason: str | None = None
    start: float | None = None
    end: float | None = None
    files: Path | None = None
    """A folder of the run's files, kept as its output artifact ``<name>-files``."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Values of kinds not imported (``audio``, ...): how many of each."""
    media: dict[int, list[str]] = field(default_factory=dict)
    """Rank -> its media records (:func:`em_dist.media.encode.media_line`), in order."""


def write_run(run: ImportedRun, parent: Path) -> Path:
    """A finished run folder under ``parent`` holding ``run``; its path."""
    from ..artifact import create_artifact

    times = [p[3] for points in run.points.values() for p in points]
    started = run.start if run.start is not None else min(times, default=time.time())
    ended = run.end if run.end is not None else max(times, default=started)
    alt = layout.alternative_name(layout.check_name(run.name), started)
    path = (parent / alt).resolve()
    size = max([*run.points, *run.media], default=0) + 1
    doc: dict[str, Any] = {
        "format_version": layout.FORMAT_VERSION, "id": str(uuid.uuid4()), "name": run.name, "alternative_name": alt,
        "labels": ["imported", *run.labels], "description": f"imported from {run.source}", "status": run.status,
        "status_reason": run.status_reason, "start_timestamp": layout.iso_time(started), "end_timestamp": layout.iso_time(ended),
        "world": {"size": size, "rank": 0, "launcher": "none", "backend": None, "imported_from": run.imported_from},
        "lost_ranks": [], "late_ranks": [], "signals": [], "dropped": {}, "delivery": {}, "restarts": 0,
        "attempts": [{"start": layout.iso_time(started), "end": layout.iso_time(ended), "world_size": size,
                      "status": run.status, "reason": run.status_reason}],
    }
    others: list[tuple[int, int, dict[str, Any]]] = []  # the other ranks' summaries, for rank 0's summary.json
    for rank in sorted((set(run.points) | set(run.media)) - {0}):
        writer = _writer(path, rank, run.points.get(rank, []), run.media.get(rank, []))
        writer.close()  # never started: its one cycle runs here
        others.append((rank, *writer.summary.rank(rank)))
    writer = _writer(path, 0, run.points.get(0, []), run.media.get(0, []))  # rank 0's last: it writes the metadata and summary.json
    for summary in others:
        writer.submit_summary(*summary)
    writer.write_run(doc)
    if run.hparams:
        writer.write_hparams(run.hparams)
    if run.files is not None and any(run.files.iterdir()):
        artifact = create_artifact(name=f"{run.name}-files", description=f"files of {run.source}")
        for child in sorted(run.files.iterdir()):  # the files at the artifact's top, as the tool had them
            (artifact.add_dir if child.is_dir() else artifact.add_file)(str(child))
        writer.write_artifacts([{"id": artifact.id, "name": artifact.name, "path": str(artifact.path), "role": "output"}])
    writer.close()
    return path


def _writer(path: Path, rank: int, points: list[Point], media: list[str]) -> RunWriter:
    """A writer of ``rank``'s lines in the run folder at ``path``, holding ``points`` as records and
    ``media`` (media records) after them."""
    writer = RunWriter(path, rank=rank, heartbeat=rank == 0)
    records: list[RecordTuple] = [(t, step, None, wall, {name: value}) for t, name, step, wall, value in points]
    writer.buffer.extend(records)
    writer.buffer.extend(media)
    return writer
