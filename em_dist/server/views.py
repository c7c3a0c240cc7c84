"""JSON shapes of stored objects, shared by the routes."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server import folders
from em_dist.server.liveness import honest_status, utc
from em_dist.store.lines import json_number
from em_dist.server.models import Artifact, ArtifactFile, Folder, LineageEdge, MetricSeries, Run, User


def json_floats(values: np.ndarray) -> list:
    """A float array as a JSON-safe list (see :func:`json_number`)."""
    if np.isfinite(values).all():
        return values.tolist()
    return [json_number(v) for v in values.tolist()]


def json_epochs(epochs: np.ndarray) -> list:
    """Epochs as JSON: NaN (none given) becomes null, whole numbers become ints."""
    out: list = []
    for e in epochs.tolist():
        if math.isnan(e):
            out.append(None)
        elif e.is_integer():
            out.append(int(e))
        else:
            out.append(e)
    return out


def folder_view(folder: Folder, owner: User | None, permission: str) -> dict[str, Any]:
    return {
        "id": folder.id,
        "name": folder.name,
        "path": folder.path,
        "parent_id": folder.parent_id,
        "owner": owner.name if owner else None,
        "permission": permission,
    }


def latest_metrics(session: Session, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per run, ``{"type/name": last value}`` of the lowest rank that logged each series."""
    out: dict[str, dict[str, Any]] = {rid: {} for rid in run_ids}
    if not run_ids:
        return out
    rows = session.scalars(
        select(MetricSeries).where(MetricSeries.run_id.in_(run_ids)).order_by(MetricSeries.rank.desc())
    )
    for s in rows:
        out[s.run_id][f"{s.type}/{s.name}"] = s.last_value
    return out


def _duration_s(start: str | None, end: str | None) -> float | None:
    """Seconds from ``start`` to ``end`` (ISO-8601), None when either is missing or unreadable."""
    if not start or not end:
        return None
    try:
        t0, t1 = utc(dt.datetime.fromisoformat(start)), utc(dt.datetime.fromisoformat(end))  # naive means UTC
    except ValueError:
        return None
    return max(0.0, (t1 - t0).total_seconds())


def run_summary(run: Run, latest: dict[str, Any], *, cutoff: dt.datetime, folder: str | None = None) -> dict[str, Any]:
    """A run's row in a listing. ``status`` is the honest one (:mod:`liveness`); ``duration_s`` runs
    to the end time, or for a run without one to its last sign of life."""
    status = honest_status(run, cutoff)
    return {
        "id": run.id,
        "name": run.name,
        "local_name": run.local_name,
        "alternative_name": run.alternative_name,
        "folder_id": run.folder_id,
        "folder": folder,
        **status,
        "labels": run.labels,
        "archived": bool(run.archived),
        "start_timestamp": run.start_timestamp,
        "duration_s": _duration_s(run.start_timestamp, status["end_timestamp"] or status["last_seen"]),
        "world_size": (run.world or {}).get("size", 1),
        "lost_ranks": run.lost_ranks,
        "hparams": run.hparams,
        "latest": latest,
    }


def artifact_view(session: Session, artifact: Artifact) -> dict[str, Any]:
    files = session.scalars(
        select(ArtifactFile).where(ArtifactFile.artifact_id == artifact.id).order_by(ArtifactFile.path)
    )
    return {
        "id": artifact.id,
        "name": artifact.name,
        "alternative_name": artifact.alternative_name,
        "folder_id": artifact.folder_id,
        "labels": artifact.labels,
        "description": artifact.description,
        "created_timestamp": artifact.created_timestamp,
        "references": artifact.references,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
    }


def artifact_runs(session: Session, user: User, artifact_ids: list[str]) -> dict[str, list[dict]]:
    """Per artifact id, the runs that name it (outputs first), leaving out every run whose folder
    ``user`` may not see: a listing reveals no run the caller could not open."""
    out: dict[str, list[dict]] = {}
    if not artifact_ids:
        return out
    visible: dict[str, bool] = {}
    rows = session.execute(
        select(LineageEdge, Run).join(Run, Run.id == LineageEdge.run_id)
        .where(LineageEdge.artifact_id.in_(artifact_ids))
        .order_by(LineageEdge.role.desc(), Run.start_timestamp, Run.name)
    ).all()
    for edge, run in rows:
        if run.folder_id not in visible:
            visible[run.folder_id] = folders.can_see(session, user, run.folder_id)
        if not visible[run.folder_id]:
            continue
        out.setdefault(edge.artifact_id, []).append(
            {"id": run.id, "name": run.name, "local_name": run.local_name, "alternative_name": run.alternative_name,
             "role": edge.role, "rank": edge.rank})
    return out



def run_artifacts(session: Session, user: User, run_id: str) -> list[dict[str, Any]]:
    """The run's lineage edges with each artifact's files when the server holds it and ``user`` may see it.

    An artifact the viewer may not see reads like one the server does not hold: its id and
    the name the run gave it, no files.
    """
    out = []
    for edge in session.scalars(select(LineageEdge).where(LineageEdge.run_id == run_id).order_by(LineageEdge.role)):
        artifact = session.get(Artifact, edge.artifact_id)
        if artifact is not None and not folders.can_see(session, user, artifact.folder_id):
            artifact = None
        view: dict[str, Any] = (artifact_view(session, artifact) if artifact
                                else {"id": edge.artifact_id, "name": edge.artifact_name, "files": []})
        view["role"] = edge.role
        view["rank"] = edge.rank
        view["run_id"] = run_id
        view["stored"] = artifact is not None
        out.append(view)
    return out


def run_detail(session: Session, user: User, run: Run, folder: Folder, *, cutoff: dt.datetime) -> dict[str, Any]:
    return {
        **run_summary(run, {}, cutoff=cutoff, folder=folder.path),
        "local_name": run.local_name,
        "folder": folder.path,
        "description": run.description,
        "hparams": run.hparams,
        "hparams_ranks": run.hparams_ranks,
        "platform": run.platform,
        "git": run.git,
        "world": run.world,
        "extra": run.extra,
        "artifacts": run_artifacts(session, user, run.id),
    }
