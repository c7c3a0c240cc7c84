"""Artifacts: register one whose blobs are uploaded, read it, download its files."""

from __future__ import annotations

import posixpath

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete

from em_dist.platform.redact import redact_record, redact_text
from em_dist.server import blob_access, blob_records, folders
from em_dist.server.blob_download import blob_response
from em_dist.server.deps import Blobs, CurrentUser, ReadSession, WriteSession
from em_dist.server.lookup import folder_of, get_artifact, may_produce
from em_dist.server.models import Artifact, ArtifactFile, Folder
from em_dist.server.schemas import ArtifactUpload
from em_dist.server.views import artifact_runs, artifact_view

router = APIRouter(tags=["artifacts"])


def check_object_path(path: str) -> str:
    """Refuse absolute paths, ``..``, backslashes and empty segments in an artifact object path."""
    if (
        path.startswith("/")
        or "\\" in path
        or "\x00" in path
        or (len(path) > 1 and path[1] == ":")
        or any(part in ("", ".", "..") for part in path.split("/"))
        or posixpath.normpath(path) != path
    ):
        raise HTTPException(400, f"invalid artifact file path {path!r}: must be relative, without '..' or empty parts")
    return path


@router.put("/artifacts/{artifact_id}")
def upsert_artifact(artifact_id: str, body: ArtifactUpload, user: CurrentUser, session: WriteSession, blobs: Blobs):  # type: ignore[no-untyped-def]
    """Create or update an artifact and its file list. Every file's blob must be uploaded first
    (``PUT /blobs/{sha256}``) by the caller or belong to an artifact the caller can see;
    otherwise 409 with ``missing`` and nothing is stored."""
    if not 1 <= len(artifact_id) <= 36:
        raise HTTPException(400, "an artifact id is a UUID")
    paths = [check_object_path(f.path) for f in body.files]
    if len(set(paths)) != len(paths):
        raise HTTPException(400, "an artifact lists the same file path twice")
    existing = session.get(Artifact, artifact_id, with_for_update=True)  # one writer per artifact (PostgreSQL)
    if existing is not None:
        folders.require(session, user, folder_of(session, existing.folder_id), "edit")
    hashes = {f.sha256 for f in body.files}
    blob_records.hold(session, hashes)  # `em server gc` cannot take them between this check and the commit
    held = blob_access.usable(session, user, hashes)  # only blobs the caller uploaded or can see
    missing = sorted(h for h in hashes if h not in held or not blobs.exists(h))
    if missing:
        return JSONResponse(status_code=409, content={"detail": f"{len(missing)} blob(s) not uploaded yet", "missing": missing})
    for f in body.files:
        if held[f.sha256] != f.size:
            raise HTTPException(400, f"file {f.path!r}: size {f.size} but its blob has {held[f.sha256]} bytes")
    artifact = existing
    if artifact is None:
        folder = folders.resolve(session, user, path=body.folder, folder_id=body.folder_id, make=body.make_folder)
        folders.lock(session, folder)  # the same artifact sent twice at once: the second finds the first
        artifact = session.get(Artifact, artifact_id, populate_existing=True, with_for_update=True)
        if artifact is not None:
            folders.require(session, user, folder_of(session, artifact.folder_id), "edit")
    if artifact is None:
        if not may_produce(session, user, artifact_id):
            raise HTTPException(403, f"artifact {artifact_id} is the output of a run you may not edit")
        artifact = Artifact(id=artifact_id, folder_id=folder.id, owner_id=folder.owner_id)
        session.add(artifact)
    meta = body.artifact
    artifact.name, artifact.alternative_name = meta.name, meta.alternative_name
    artifact.labels, artifact.description = redact_record(meta.labels), redact_text(meta.description)
    artifact.created_timestamp, artifact.references = meta.created_timestamp, redact_record(meta.references)
    session.flush()
    session.execute(delete(ArtifactFile).where(ArtifactFile.artifact_id == artifact_id))
    session.add_all(ArtifactFile(artifact_id=artifact_id, path=f.path, size=f.size, sha256=f.sha256) for f in body.files)
    session.commit()
    return artifact_view(session, artifact)


@router.get("/artifacts/{artifact_id}")
def read_artifact(artifact_id: str, user: CurrentUser, session: ReadSession) -> dict:
    """Artifact detail with its files (path, size, sha256) and the runs that produced or consumed it
    among those the caller may see (``runs``: id, names, role, rank)."""
    detail = artifact_view(session, get_artifact(session, user, artifact_id))
    detail["runs"] = artifact_runs(session, user, [artifact_id]).get(artifact_id, [])
    return detail


@router.get("/artifacts/{artifact_id}/files/{path:path}")
def download_file(artifact_id: str, path: str, request: Request, user: CurrentUser, session: ReadSession,
                  blobs: Blobs) -> Response:
    """The bytes of one artifact file (one ``Range: bytes=a-b`` is honoured: 206)."""
    get_artifact(session, user, artifact_id)
    row = session.get(ArtifactFile, (artifact_id, path))
    if row is None:
        raise HTTPException(404, f"artifact {artifact_id} has no file {path!r}")
    return blob_response(blobs, row.sha256, row.size, request.headers.get("range"), posixpath.basename(path))
