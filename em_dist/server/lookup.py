"""Fetch a run or artifact by id with the caller's permission checked: 404 when it is missing or
the caller cannot see it (one answer for both), 403 when the caller may see but not edit it."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server import folders
from em_dist.server.models import Artifact, Folder, LineageEdge, Run, User


def folder_of(session: Session, folder_id: str) -> Folder:
    """The folder a stored run or artifact is in (a foreign key: it exists)."""
    folder = session.get(Folder, folder_id)
    if folder is None:
        raise LookupError(f"folder {folder_id} is referenced but missing")
    return folder


def get_run(session: Session, user: User, run_id: str, need: str = "view") -> tuple[Run, Folder]:
    """The run ``run_id`` and its folder, if ``user`` may ``need`` it."""
    run = session.get(Run, run_id)
    folder = folder_of(session, run.folder_id) if run is not None else None
    if run is None or folder is None or folders.permission(session, user, folder) is None:
        raise HTTPException(404, f"no run with id {run_id}")  # a stranger never learns it exists
    folders.require(session, user, folder, need)  # a viewer asking to edit: 403
    return run, folder


def get_artifact(session: Session, user: User, artifact_id: str, need: str = "view") -> Artifact:
    """The artifact ``artifact_id``, if ``user`` may ``need`` it."""
    artifact = session.get(Artifact, artifact_id)
    folder = folder_of(session, artifact.folder_id) if artifact is not None else None
    if artifact is None or folder is None or folders.permission(session, user, folder) is None:
        raise HTTPException(404, f"no artifact with id {artifact_id}")  # a stranger never learns it exists
    folders.require(session, user, folder, need)
    return artifact


def may_produce(session: Session, user: User, artifact_id: str, *, besides: str | None = None) -> bool:
    """True when ``user`` may be the producer of the artifact ``artifact_id``: no run (other than
    ``besides``) names it as its output yet, or ``user`` may edit one of those that do.

    An output id a run lists before its artifact is stored is readable by everyone the run is
    shared with; without this rule any of them could store their own bytes under that id first,
    and the run would show them as its output (issue 23, item 2).
    """
    producers = session.scalars(
        select(LineageEdge.run_id).where(LineageEdge.artifact_id == artifact_id, LineageEdge.role == "output")
    ).all()
    found = False
    for run_id in producers:
        if run_id == besides:
            continue
        run = session.get(Run, run_id)
        if run is None:
            continue
        found = True
        folder = session.get(Folder, run.folder_id)
        if folder is not None and folders.permission(session, user, folder) in ("edit", "owner"):
            return True
    return not found
