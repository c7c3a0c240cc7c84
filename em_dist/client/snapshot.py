"""A consistent view of a run folder to upload, and the folder's ``uploads.json``.

The run folder's ``.lock`` is held only while metadata is read and metric file sizes
are noted; metric bytes are read afterwards (the files are append-only, and only the
complete lines below the noted size are sent).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from em_dist.errors import EMWarning
from em_dist.store import layout
from em_dist.store.files import contained, read_json, read_json_in, write_json_atomic
from em_dist.store.reader import load_run_and_doc
from em_dist.store.records import RunRecord

LOCK_TIMEOUT_S = 10.0


@dataclass
class RunSnapshot:
    """What one upload sends: the run's metadata and how many bytes of each rank's metrics."""

    path: Path
    record: RunRecord
    raw: dict[str, Any]
    metric_sizes: dict[int, int] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)


def _lock(run_dir: Path) -> FileLock:
    return FileLock(str(run_dir / layout.LOCK_FILE), timeout=LOCK_TIMEOUT_S)


def take(run_dir: Path) -> RunSnapshot:
    """Snapshot ``run_dir`` under its lock (or without it, with a warning, if it stays busy)."""
    lock = _lock(run_dir)
    held = True
    try:
        lock.acquire()
    except Timeout:
        warnings.warn(f"em_dist: {run_dir / layout.LOCK_FILE} stayed busy; uploading without it", EMWarning, stacklevel=3)
        held = False
    try:
        record, raw = load_run_and_doc(run_dir)
        sizes = {}
        metrics_dir = run_dir / layout.METRICS_DIR
        if metrics_dir.is_dir():
            for p in metrics_dir.glob("rank-*.jsonl"):
                if not contained(run_dir, p):  # a link out of the run folder is never read
                    continue
                try:
                    sizes[int(p.stem.split("-", 1)[1])] = p.stat().st_size
                except (ValueError, OSError):
                    continue
        artifacts = read_json_in(run_dir, layout.ARTIFACTS_FILE, []) or []
    finally:
        if held:
            lock.release()
    return RunSnapshot(run_dir, record, raw, dict(sorted(sizes.items())), list(artifacts))


def resolve_artifact_path(run_dir: Path, path: str | None) -> Path | None:
    """Where an artifact listed in ``artifacts.json`` lives locally, or None when it is not there."""
    if not path:
        return None
    p = Path(path)
    candidates = [p] if p.is_absolute() else [run_dir / p, Path.cwd() / p, layout.artifact_parent_dir() / p]
    for c in candidates:
        if (c / layout.ARTIFACT_FILE).is_file():
            return c
    return None


def record_upload(run_dir: Path, entry: dict[str, Any]) -> None:
    """Add or update this server's entry in ``uploads.json`` (under the run's lock)."""
    path = run_dir / layout.UPLOADS_FILE
    try:
        with _lock(run_dir):
            doc = read_json(path, None) or {}
            uploads = [u for u in doc.get("uploads", []) if not (u.get("host") == entry["host"] and u.get("server_run_id") == entry["server_run_id"])]
            uploads.append({**entry, "time": time.time()})
            write_json_atomic(path, {"uploads": uploads}, durable=False)
    except (Timeout, OSError, json.JSONDecodeError) as exc:
        warnings.warn(f"em_dist: could not record the upload in {path}: {exc}", EMWarning, stacklevel=3)


def read_uploads(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The upload history of a run folder (newest last)."""
    return list((read_json(Path(run_dir) / layout.UPLOADS_FILE, None) or {}).get("uploads", []))
