"""Fetch a run or artifact by id with the caller's permission checked (404, then 403)."""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy.orm import Session

from em_dist.server import folders
from em_dist.server.models import Artifact, Folder, Run, User


def get_run(session: Session, user: User, run_id: str, need: str = "view") -> tuple[Run, Folder]:
    """The run ``run_id`` and its folder, if ``user`` may ``need`` it."""
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(404, f"no run with id {run_id}")
    folder = session.get(Folder, run.folder_id)
    folders.require(session, user, folder, need)
    return run, folder


def get_artifact(session: Session, user: User, artifact_id: str, need: str = "view") -> Artifact:
    """The artifact ``artifact_id``, if ``user`` may ``need`` it."""
    artifact = session.get(Artifact, artifact_id)
    if artifact is None:
        raise HTTPException(404, f"no artifact with id {artifact_id}")
    folders.require(session, user, session.get(Folder, artifact.folder_id), need)
    return artifact
