"""Folders: the tree, creation, sharing and unsharing, and the runs and artifacts inside one."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server import folders as service
from em_dist.server.deps import CurrentUser, ReadSession, WriteSession
from em_dist.server.models import Artifact, FolderShare, Run, User
from em_dist.server.schemas import FolderCreate, ShareCreate
from em_dist.server.views import folder_view, latest_metrics, run_summary

router = APIRouter(tags=["folders"])


@router.get("/folders")
def list_folders(user: CurrentUser, session: ReadSession) -> list[dict]:
    """Every folder the caller owns or that is shared with them (a flat tree: see ``parent_id``)."""
    owners = {u.id: u for u in session.scalars(select(User))}
    return [folder_view(f, owners.get(f.owner_id), p) for f, p in service.visible_folders(session, user)]


@router.post("/folders", status_code=201)
def create_folder(body: FolderCreate, user: CurrentUser, session: WriteSession) -> dict:
    """Create a folder path under the caller's root (existing levels are kept)."""
    folder = service.resolve(session, user, path=body.path, make=True, need="edit")
    session.commit()
    return folder_view(folder, user, service.permission(session, user, folder) or "owner")


@router.get("/folders/{folder_id}")
def get_folder(folder_id: str, user: CurrentUser, session: ReadSession) -> dict:
    """One folder."""
    folder = service.resolve(session, user, folder_id=folder_id, need="view")
    return folder_view(folder, session.get(User, folder.owner_id), service.permission(session, user, folder) or "view")


def _runs_in(session: Session, folder_id: str) -> list[dict]:
    runs = list(session.scalars(select(Run).where(Run.folder_id == folder_id).order_by(Run.created)))
    latest = latest_metrics(session, [r.id for r in runs])
    return [run_summary(r, latest[r.id]) for r in runs]


@router.get("/folders/{folder_id}/runs")
def folder_runs(folder_id: str, user: CurrentUser, session: ReadSession) -> list[dict]:
    """Runs in a folder, with status, times, world size, lost ranks, labels and latest metric values."""
    folder = service.resolve(session, user, folder_id=folder_id, need="view")
    return _runs_in(session, folder.id)


@router.get("/runs")
def runs_by_path(user: CurrentUser, session: ReadSession, folder: str | None = None, folder_id: str | None = None) -> list[dict]:
    """Runs in the folder named by ``folder_id`` or ``folder`` path (default ``default``)."""
    try:
        found = service.resolve(session, user, path=folder, folder_id=folder_id, need="view")
    except HTTPException as exc:
        if exc.status_code == 404 and not folder_id and (folder or service.DEFAULT_FOLDER) == service.DEFAULT_FOLDER:
            return []  # the default folder appears with the first upload
        raise
    return _runs_in(session, found.id)


@router.get("/folders/{folder_id}/artifacts")
def folder_artifacts(folder_id: str, user: CurrentUser, session: ReadSession) -> list[dict]:
    """Artifacts in a folder (without their file lists)."""
    folder = service.resolve(session, user, folder_id=folder_id, need="view")
    rows = session.scalars(select(Artifact).where(Artifact.folder_id == folder.id).order_by(Artifact.created))
    return [
        {"id": a.id, "name": a.name, "alternative_name": a.alternative_name, "labels": a.labels,
         "created_timestamp": a.created_timestamp}
        for a in rows
    ]


@router.post("/folders/{folder_id}/shares", status_code=201)
def share_folder(folder_id: str, body: ShareCreate, user: CurrentUser, session: WriteSession) -> dict:
    """Share a folder you own (and everything below it) with another user."""
    folder = service.resolve(session, user, folder_id=folder_id, need="owner")
    other = session.scalars(select(User).where(User.name == body.user)).first()
    if other is None:
        raise HTTPException(404, f"no user {body.user!r}")
    share = session.get(FolderShare, (folder.id, other.id))
    if share is None:
        session.add(FolderShare(folder_id=folder.id, user_id=other.id, permission=body.permission))
    else:
        share.permission = body.permission
    session.commit()
    return {"folder_id": folder.id, "user": other.name, "permission": body.permission}


@router.get("/folders/{folder_id}/shares")
def list_shares(folder_id: str, user: CurrentUser, session: ReadSession) -> list[dict]:
    """Who a folder you own is shared with, and how (owner only)."""
    folder = service.resolve(session, user, folder_id=folder_id, need="owner")
    rows = session.execute(
        select(User.name, FolderShare.permission).join(User, User.id == FolderShare.user_id)
        .where(FolderShare.folder_id == folder.id).order_by(User.name)
    ).all()
    return [{"user": name, "permission": permission} for name, permission in rows]


@router.delete("/folders/{folder_id}/shares/{user_name}", status_code=204)
def unshare_folder(folder_id: str, user_name: str, user: CurrentUser, session: WriteSession) -> Response:
    """Revoke a share of a folder you own: that user loses access to it (and below) at once."""
    folder = service.resolve(session, user, folder_id=folder_id, need="owner")
    other = session.scalars(select(User).where(User.name == user_name)).first()
    share = session.get(FolderShare, (folder.id, other.id)) if other is not None else None
    if share is None:
        raise HTTPException(404, f"folder {folder.path!r} is not shared with {user_name!r}")
    session.delete(share)
    session.commit()
    return Response(status_code=204)
