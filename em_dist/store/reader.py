"""Read a run or artifact folder back (docs/format.md): the API of tests, the CLI, the uploader and the console."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._warn import warn_once
from ..platform.host import process_running
from ..errors import RunFormatError
from .lines import decode_number
from . import layout
from .files import read_json, read_json_in
from .logs import read_log
from .media import read_media
from .records import ArtifactRecord, ArtifactRef, MetricPoint, RunRecord
from .summary import SUMMARY_FILE

STALE_HEARTBEAT_S = 60.0
LIVE_STATUSES = ("Initializing", "Running")


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """Open a saved run folder (a path, or an alternative name under ``$EM_RUN_PARENT_DIR``)."""
    return load_run_and_doc(path)[0]


def load_run_and_doc(path: str | os.PathLike[str]) -> tuple[RunRecord, dict[str, Any]]:
    """:func:`load_run`, and the ``run.json`` document it read (one read: an uploader's snapshot needs both)."""
    run_dir = _resolve(Path(path), layout.run_parent_dir(), layout.RUN_FILE)
    meta = _read_versioned(run_dir, layout.RUN_FILE)
    status, reason = effective_status(run_dir, meta)
    rank_hparams = {}
    for p in run_dir.glob("hparams-rank-*.json"):
        try:
            rank_hparams[int(p.stem.rsplit("-", 1)[1])] = read_json_in(run_dir, p.name, {})
        except (ValueError, json.JSONDecodeError):
            continue
    return RunRecord(
        id=meta["id"],
        name=meta["name"],
        alternative_name=meta.get("alternative_name", run_dir.name),
        path=str(run_dir.resolve()),
        status=status,
        status_reason=reason,
        labels=list(meta.get("labels") or []),
        description=meta.get("description") or "",
        start_timestamp=meta.get("start_timestamp"),
        end_timestamp=meta.get("end_timestamp"),
        hparams=read_json_in(run_dir, layout.HPARAMS_FILE, {}),
        rank_hparams=rank_hparams,
        platform=read_json_in(run_dir, layout.PLATFORM_FILE, {}),
        git=read_json_in(run_dir, layout.GIT_FILE, None),
        world=meta.get("world") or {},
        lost_ranks=list(meta.get("lost_ranks") or []),
        late_ranks=list(meta.get("late_ranks") or []),
        signals=list(meta.get("signals") or []),
        dropped=dict(meta.get("dropped") or {}),
        delivery=dict(meta.get("delivery") or {}),
        restarts=int(meta.get("restarts") or 0),
        attempts=list(meta.get("attempts") or []),
        artifacts=_artifact_refs(run_dir),
        points=lambda: read_points(run_dir),
        output=lambda rank, tail: read_log(run_dir, rank, tail),
        media_reader=lambda rank: read_media(run_dir, rank),
    ), meta


def list_runs(parent_dir: str | os.PathLike[str] | None = None) -> list[RunRecord]:
    """Every readable run under ``parent_dir`` (default ``$EM_RUN_PARENT_DIR`` or ``.em/runs``), oldest first."""
    parent = Path(parent_dir) if parent_dir is not None else layout.run_parent_dir()
    runs = []
    if parent.is_dir():
        for child in parent.iterdir():
            if (child / layout.RUN_FILE).is_file():
                try:
                    runs.append(load_run(child))
                except (RunFormatError, OSError, ValueError, KeyError):
                    continue  # a folder being created or damaged is not the caller's problem here
    runs.sort(key=lambda r: r.start_timestamp or "")
    return runs


def read_summary(run_dir: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The writer's ``summary.json`` (records and last values per rank and type), or None when the
    folder has none (a run older than it, or one that crashed before its first write)."""
    if run_dir is None:
        return None
    try:
        doc = read_json(Path(run_dir) / SUMMARY_FILE, None)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("records"), dict) else None


def load_artifact(path: str | os.PathLike[str]) -> ArtifactRecord:
    """Open a saved artifact folder (a path, or an alternative name under ``$EM_ARTIFACT_PARENT_DIR``)."""
    art_dir = _resolve(Path(path), layout.artifact_parent_dir(), layout.ARTIFACT_FILE)
    meta = _read_versioned(art_dir, layout.ARTIFACT_FILE)
    return ArtifactRecord(
        id=meta["id"],
        name=meta["name"],
        alternative_name=meta.get("alternative_name", art_dir.name),
        path=str(art_dir.resolve()),
        labels=list(meta.get("labels") or []),
        description=meta.get("description") or "",
        created_timestamp=meta.get("created_timestamp"),
        files=list(meta.get("files") or []),
        references=list(meta.get("references") or []),
        failed=list(meta.get("failed") or []),
    )


def read_points(run_dir: Path) -> list[MetricPoint]:
    """Every metric point of every rank, flattened to one dict per (record, metric name)."""
    points: list[MetricPoint] = []
    metrics_dir = run_dir / layout.METRICS_DIR
    files = sorted(metrics_dir.glob("rank-*.jsonl"), key=lambda p: int(p.stem.split("-", 1)[1])) if metrics_dir.is_dir() else []
    for path in files:
        rank = int(path.stem.split("-", 1)[1])
        for rec in iter_records(path):
            for name, value in rec["metrics"].items():
                points.append(
                    {
                        "type": rec["type"],
                        "name": name,
                        "value": decode_number(value),
                        "step": rec["step"],
                        "epoch": rec.get("epoch"),
                        "rank": rank,
                        "time": rec.get("time"),
                        "attempt": rec.get("attempt", 0),
                    }
                )
    return points


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one metrics file.

    A torn last line (a crash mid-write) is skipped. A torn line *inside* the file (left by
    an older writer after a full disk) is skipped too, with one warning per file; a record
    glued to the torn fragment on the same line is kept (see :func:`repair_line`).
    """
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                yield json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                fixed = repair_line(line)
                warn_once(f"torn:{path}", f"em_dist: {path} holds a damaged line (a write cut short by a full "
                          "disk or a crash); it is skipped", 4)
                if fixed.strip():
                    yield json.loads(fixed)


_RECORD_START = b'{"type":'


def repair_line(line: bytes) -> bytes:
    """A damaged metrics line made readable without changing its length.

    A write cut short leaves the start of a record with no newline, and the next write
    glues a whole record to it: ``{"type":"train","st{"type":"train","step":7,...}``. The
    fragment before the last record start becomes spaces (JSON ignores them); a line with
    no whole record becomes all spaces. Same length, so byte offsets (the uploader's
    resume points) stay valid.
    """
    body = line.rstrip(b"\n")
    start = body.rfind(_RECORD_START)
    while start > 0:
        try:
            json.loads(body[start:])
            return b" " * start + line[start:]
        except (ValueError, UnicodeDecodeError):
            start = body.rfind(_RECORD_START, 0, start)
    return b" " * len(body) + line[len(body):]


def repair_chunk(data: bytes) -> bytes:
    """:func:`repair_line` applied to every line of ``data`` that is not JSON (same length)."""
    out = []
    for line in data.splitlines(keepends=True):
        try:
            json.loads(line)
            out.append(line)
        except (ValueError, UnicodeDecodeError):
            out.append(repair_line(line))
    return b"".join(out)


def effective_status(run_dir: Path, meta: dict[str, Any]) -> tuple[str, str | None]:
    """The status a reader should believe: a live status of a dead writer reads as Failed (crashed)."""
    status = meta.get("status", "Initializing")
    reason = meta.get("status_reason")
    if status not in LIVE_STATUSES:
        return status, reason
    beat = read_json(run_dir / layout.HEARTBEAT_FILE, None) if (run_dir / layout.HEARTBEAT_FILE).exists() else None
    pid = (beat or meta).get("pid")
    host = (beat or meta).get("host")
    last = (beat or {}).get("time") or _mtime(run_dir / layout.RUN_FILE)
    # A writer that noted a signal and then died (the scheduler's SIGKILL after the grace period,
    # or the program's own re-raise of the default action) was ended by that signal.
    signals = meta.get("signals") or []
    dead = ("Failed", f"signal: {signals[-1]}") if signals else ("Failed", "crashed")
    if host == socket.gethostname() and isinstance(pid, int) and not process_running(pid):
        return dead
    if time.time() - last > STALE_HEARTBEAT_S:
        return dead
    return status, reason


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _artifact_refs(run_dir: Path) -> list[ArtifactRef]:
    refs = []
    for item in read_json_in(run_dir, layout.ARTIFACTS_FILE, []) or []:
        files: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        path = item.get("path")
        if path:
            art_path = Path(path) if Path(path).is_absolute() else run_dir / path
            meta = read_json(art_path / layout.ARTIFACT_FILE, None) if art_path.is_dir() else None
            if meta:
                files = list(meta.get("files") or [])
                failed = list(meta.get("failed") or [])
        refs.append(ArtifactRef(id=item["id"], name=item["name"], path=path, role=item["role"], files=files,
                                failed=failed))
    return refs


def _resolve(path: Path, parent: Path, marker: str) -> Path:
    if (path / marker).is_file():
        return path
    if not path.is_absolute() and (parent / path / marker).is_file():
        return parent / path
    raise RunFormatError(f"{path} is not a run or artifact folder: no {marker} found there (or under {parent})")


def _read_versioned(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        meta = read_json_in(folder, name)
    except (OSError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"cannot read {path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise RunFormatError(f"{path} does not hold a JSON object")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > layout.FORMAT_VERSION:
        raise RunFormatError(
            f"{path} has format_version {version!r}; this em_dist reads version {layout.FORMAT_VERSION}. Upgrade em_dist."
        )
    return meta
