"""Media records (``em.Histogram``, ``em.Image``, ``em.Table``, ``em.Text``): a run folder's
``media/rank-<r>.jsonl`` by byte offset, read back, and the PNG of a run's image."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from em_dist.limits import MAX_NAME_CHARS, MAX_OFFSET, MAX_RANK, MAX_TYPE_CHARS
from em_dist.server import blob_access, media_store
from em_dist.server.blob_download import blob_response
from em_dist.server.blobs import is_sha256
from em_dist.server.deps import Blobs, Config, CurrentUser, ReadSession
from em_dist.server.lookup import get_run
from em_dist.server.models import Blob, User
from em_dist.server.routes.metrics import _read_limited, check_span, ingest_chunk

router = APIRouter(tags=["media"])


@router.post("/runs/{run_id}/media/{rank}")
async def ingest_media(run_id: str, rank: int, request: Request, user: CurrentUser, config: Config,
                       offset: int = Query(ge=0, le=MAX_OFFSET)) -> dict:
    """Append complete lines of ``media/rank-<rank>.jsonl`` starting at byte ``offset``. An image's
    PNG (``sha256``) must be uploaded first (``PUT /blobs/{sha256}``): otherwise 409 with ``missing``
    and nothing is stored. Bytes the server holds are skipped; a gap is a 409 with the server's
    ``offset``. Returns the new ``offset`` and the ``records`` added. Needs edit rights on the run."""
    if not 0 <= rank <= MAX_RANK:
        raise HTTPException(400, f"rank must be an integer in 0..{MAX_RANK}")
    try:
        data = await _read_limited(request, config.max_metrics_chunk_bytes)
    except ClientDisconnect:
        return JSONResponse(status_code=400, content={"detail": "client disconnected"})  # type: ignore[return-value]
    check_span(offset, data)
    return await run_in_threadpool(_ingest, request, user, run_id, rank, offset, data)  # type: ignore[arg-type]


def _ingest(request: Request, user: User, run_id: str, rank: int, offset: int, data: bytes) -> dict | JSONResponse:
    blobs = request.app.state.blobs
    hashes = media_store.image_hashes(data)
    return ingest_chunk(request, user, run_id,
                        lambda session: media_store.ingest(session, run_id, rank, offset, data,
                                                           usable=blob_access.usable(session, user, hashes), blobs=blobs),
                        lambda r: {"offset": r.offset, "records": r.records})


@router.get("/runs/{run_id}/media/offsets")
def read_media_offsets(run_id: str, user: CurrentUser, session: ReadSession) -> dict[str, int]:
    """Bytes of each rank's ``media/rank-<r>.jsonl`` the server holds (the upload's resume points)."""
    get_run(session, user, run_id)
    return media_store.offsets(session, run_id)


@router.get("/runs/{run_id}/media")
def read_media(
    run_id: str, user: CurrentUser, session: ReadSession,
    type: str | None = Query(default=None, max_length=MAX_TYPE_CHARS),
    name: str | None = Query(default=None, max_length=MAX_NAME_CHARS),
    rank: int | None = Query(default=None, ge=0, le=MAX_RANK),
    kind: str | None = Query(default=None, max_length=16),
    after: int | None = Query(default=None, ge=0, le=MAX_OFFSET),
) -> dict:
    """The run's media records in the order stored: ``records`` (each its document:
    ``kind, type, name, step, epoch, time, rank, id`` and the kind's fields; an image's PNG by
    ``sha256``, fetched from ``/runs/{id}/media/images/{sha256}``), at most 10,000 or about 32 MiB,
    and ``next_after`` when more remain (pass it as ``after``)."""
    get_run(session, user, run_id)
    records, more = media_store.read(session, run_id, type=type, name=name, rank=rank, kind=kind, after=after)
    return {"records": records, "next_after": records[-1]["id"] if more else None}


@router.get("/runs/{run_id}/media/images/{sha256}")
def read_image(run_id: str, sha256: str, request: Request, user: CurrentUser, session: ReadSession,
               blobs: Blobs) -> Response:
    """The PNG of an image the run logged (404 for a hash the run did not log)."""
    get_run(session, user, run_id)
    blob = session.get(Blob, sha256) if is_sha256(sha256) else None
    if blob is None or not media_store.has_image(session, run_id, sha256) or not blobs.exists(sha256):
        raise HTTPException(404, f"run {run_id} has no image {sha256[:64]!r}")
    response = blob_response(blobs, sha256, blob.size, request.headers.get("range"), f"{sha256}.png")
    response.media_type = "image/png"
    response.headers["Content-Type"] = "image/png"
    response.headers["Content-Disposition"] = f'inline; filename="{sha256}.png"'
    return response
