"""Content-addressed blobs: ask which hashes are missing, then stream those up."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from em_dist.server.blobs import DigestMismatch, is_sha256
from em_dist.server.deps import Blobs, CurrentUser, ReadSession
from em_dist.server.models import Blob
from em_dist.server.schemas import BlobQuery

router = APIRouter(tags=["blobs"])


@router.post("/blobs/missing")
def missing_blobs(body: BlobQuery, user: CurrentUser, session: ReadSession, blobs: Blobs) -> dict:
    """The subset of ``sha256`` the server does not hold (send only those)."""
    wanted = list(dict.fromkeys(body.sha256))
    bad = [h for h in wanted if not is_sha256(h)]
    if bad:
        raise HTTPException(400, f"not a lowercase sha256 hex digest: {bad[0]!r}")
    held: set[str] = set()
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        held.update(session.scalars(select(Blob.sha256).where(Blob.sha256.in_(part))))
    return {"missing": [h for h in wanted if h not in held or not blobs.exists(h)]}


@router.put("/blobs/{sha256}", status_code=201)
async def put_blob(sha256: str, request: Request, user: CurrentUser, blobs: Blobs) -> dict:
    """Stream one blob (raw body). The server hashes what it receives; a mismatch is a 400 and nothing is kept."""
    if not is_sha256(sha256):
        raise HTTPException(400, f"not a lowercase sha256 hex digest: {sha256!r}")
    try:
        size = await blobs.write_stream(sha256, request.stream())
    except DigestMismatch as exc:
        raise HTTPException(400, f"blob {sha256}: {exc}") from None
    await run_in_threadpool(_record, request, sha256, size)
    return {"sha256": sha256, "size": size}


def _record(request: Request, sha256: str, size: int) -> None:
    with request.app.state.db.write_session() as session:
        if session.get(Blob, sha256) is None:
            try:
                session.add(Blob(sha256=sha256, size=size))
                session.commit()
            except IntegrityError:  # the same content arrived concurrently
                session.rollback()
