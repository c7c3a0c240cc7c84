"""Folders: the tree, creation, sharing and unsharing, and the runs and artifacts inside one."""

from __future__ import annotations

import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server import folders as service
from em_dist.server import run_query, search
from em_dist.server.config import ServerConfig
from em_dist.server.deps import Config, CurrentUser, ReadSession, WriteSession
from em_dist.server.liveness import lost_before
from em_dist.server.models import Artifact, FolderShare, User
from em_dist.server.schemas import FolderCreate, ShareCreate
from em_dist.server.search_sql import SqlContext
from em_dist.server.views import artifact_runs, folder_view

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


def _context(session: Session, config: ServerConfig) -> SqlContext:
    return SqlContext(session.get_bind().dialect.name, lost_before(config.lost_after_s))


Archived = Literal["exclude", "include", "only"]
"""What a run listing does with archived runs."""


@router.get("/folders/{folder_id}/runs")
def folder_runs(folder_id: str, user: CurrentUser, session: ReadSession, config: Config,
                archived: Archived = "exclude") -> list[dict]:
    """Every run in a folder, with status, times, world size, lost ranks, labels and latest metric values.

    ``archived``: ``exclude`` (the default: archived runs are hidden), ``include`` or ``only``."""
    folder = service.resolve(session, user, folder_id=folder_id, need="view")
    ctx = _context(session, config)
    page = run_query.list_runs(session, scope={folder.id: folder.path}, node=None, ctx=ctx, limit=1_000_000,
                               archived=archived)
    return page.runs


@router.get("/runs")
def search_runs(
    user: CurrentUser,
    session: ReadSession,
    config: Config,
    folder: str | None = None,
    folder_id: str | None = None,
    filter: str = "",
    recursive: bool = False,
    limit: int = Query(default=100, ge=1, le=run_query.MAX_LIMIT),
    cursor: str | None = None,
    stats: str | None = None,
    archived: Archived = "exclude",
) -> dict:
    """Runs in the folder named by ``folder_id`` or ``folder`` path (default ``default``), oldest first.

    ``filter`` is an expression of the run filter language (see :mod:`em_dist.server.search`,
    e.g. ``hparams.lr < 0.01 and labels contains "baseline"``); a bad one is a 400 whose
    detail names the position. ``recursive=true`` adds the runs of every subfolder.
    ``limit`` runs per page; pass the answer's ``next_cursor`` as ``cursor`` for the next
    page. ``stats=val/loss,train/loss`` adds each run's ``{last, min, max}`` of those metrics.
    ``archived``: ``exclude`` (the default: archived runs are hidden), ``include`` or ``only``.
    Answer: ``{"runs": [...], "next_cursor": str | null, "total": matching runs}``.
    """
    started = time.perf_counter()
    try:
        node = search.parse(filter)
    except search.FilterError as exc:
        raise HTTPException(400, str(exc)) from None
    try:
        found = service.resolve(session, user, path=folder, folder_id=folder_id, need="view")
    except HTTPException as exc:
        if exc.status_code == 404 and not folder_id and (folder or service.DEFAULT_FOLDER) == service.DEFAULT_FOLDER:
            return {"runs": [], "next_cursor": None, "total": 0, "server_ms": 0.0}  # appears with the first upload
        raise
    scope = run_query.folder_scope(session, found, recursive=recursive)
    keys = [k.strip() for k in (stats or "").split(",") if k.strip()]
    try:
        page = run_query.list_runs(session, scope=scope, node=node, ctx=_context(session, config), limit=limit,
                                   cursor=cursor, stats=keys, archived=archived)
    except (search.FilterError, run_query.CursorError) as exc:
        raise HTTPException(400, str(exc)) from None
    return {"runs": page.runs, "next_cursor": page.next_cursor, "total": page.total,
            "server_ms": round((time.perf_counter() - started) * 1000, 3)}


@router.get("/folders/{folder_id}/artifacts")
def folder_artifacts(folder_id: str, user: CurrentUser, session: ReadSession) -> list[dict]:
    """Artifacts in a folder (without their file lists), each with the runs that produced or consumed
    it (``runs``: id, name, local name, role, rank) among those the caller may see."""
    folder = service.resolve(session, user, folder_id=folder_id, need="view")
    rows = list(session.scalars(select(Artifact).where(Artifact.folder_id == folder.id).order_by(Artifact.created)))
    uses = artifact_runs(session, user, [a.id for a in rows])
    return [
        {"id": a.id, "name": a.name, "alternative_name": a.alternative_name, "labels": a.labels,
         "created_timestamp": a.created_timestamp, "runs": uses.get(a.id, [])}
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
