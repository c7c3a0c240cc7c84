"""Content-addressed blobs: ask which hashes are missing, then stream those up.

"Missing" is per user (:mod:`em_dist.server.blob_access`): a blob only someone else
holds reads as missing, and uploading the same bytes then records the caller as an
owner after one hash check, without a second copy on disk.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from em_dist.server import blob_access, blob_records
from em_dist.server.blobs import DigestMismatch, is_sha256
from em_dist.server.deps import Blobs, CurrentUser, ReadSession
from em_dist.server.schemas import BlobQuery

router = APIRouter(tags=["blobs"])
log = logging.getLogger(__name__)


@router.post("/blobs/missing")
def missing_blobs(body: BlobQuery, user: CurrentUser, session: ReadSession, blobs: Blobs) -> dict:
    """The subset of ``sha256`` the caller cannot reference yet (send only those)."""
    wanted = list(dict.fromkeys(body.sha256))
    bad = [h for h in wanted if not is_sha256(h)]
    if bad:
        raise HTTPException(400, f"not a lowercase sha256 hex digest: {bad[0]!r}")
    held = blob_access.usable(session, user, wanted)
    return {"missing": [h for h in wanted if h not in held or not blobs.exists(h)]}


@router.put("/blobs/{sha256}", status_code=201)
async def put_blob(sha256: str, request: Request, user: CurrentUser, blobs: Blobs):  # type: ignore[no-untyped-def]
    """Stream one blob (raw body). The server hashes what it receives; a mismatch is a 400 and nothing is kept."""
    if not is_sha256(sha256):
        raise HTTPException(400, f"not a lowercase sha256 hex digest: {sha256!r}")
    db = request.app.state.db
    await run_in_threadpool(blob_records.renew, db, sha256)  # `em server gc` keeps it while it arrives
    try:
        size = await blobs.write_stream(sha256, request.stream())
    except DigestMismatch as exc:
        raise HTTPException(400, f"blob {sha256}: {exc}") from None
    except ClientDisconnect:
        log.warning("blob %s: the client disconnected during the upload; nothing was kept", sha256)
        return Response(status_code=400)
    if not await run_in_threadpool(blob_records.record, db, blobs, user.id, sha256, size):
        raise HTTPException(503, f"blob {sha256} was collected while it was uploaded; send it again")
    return {"sha256": sha256, "size": size}
