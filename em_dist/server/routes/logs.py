"""Captured output: chunk ingestion by logical offset, and reading (tail, search, follow)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from em_dist.limits import MAX_LOGS_CHUNK_BYTES, MAX_OFFSET, MAX_RANK, log_max_bytes
from em_dist.server import log_store
from em_dist.server.deps import CurrentUser, ReadSession
from em_dist.server.lookup import get_run
from em_dist.server.models import User
from em_dist.server.routes.metrics import check_span, ingest_chunk

router = APIRouter(tags=["logs"])
log = logging.getLogger(__name__)


@router.post("/runs/{run_id}/logs/{rank}")
async def ingest_logs(run_id: str, rank: int, request: Request, user: CurrentUser,
                      offset: int = Query(ge=0, le=MAX_OFFSET)) -> dict:
    """Append complete lines of ``logs/rank-<rank>.log`` starting at logical byte ``offset``.

    Bytes the server holds are acknowledged and skipped; a chunk past the server's offset
    counts the gap as dropped (the client's limit dropped it). Returns the new ``offset``.
    """
    if not 0 <= rank <= MAX_RANK:
        raise HTTPException(400, f"rank must be an integer in 0..{MAX_RANK}")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_LOGS_CHUNK_BYTES:
                raise HTTPException(413, f"log chunk over {MAX_LOGS_CHUNK_BYTES} bytes; send smaller chunks")
            chunks.append(chunk)
    except ClientDisconnect:
        return JSONResponse(status_code=400, content={"detail": "client disconnected"})  # type: ignore[return-value]
    check_span(offset, b"".join(chunks))
    return await run_in_threadpool(_ingest_sync, request, run_id, rank, offset, b"".join(chunks), user)  # type: ignore[arg-type]


def _ingest_sync(request: Request, run_id: str, rank: int, offset: int, data: bytes, user: User) -> dict | JSONResponse:
    return ingest_chunk(request, user, run_id,
                        lambda session: log_store.ingest(session, run_id, rank, offset, data, _limit()),
                        lambda r: {"offset": r.offset, "lines": r.lines})


@router.get("/runs/{run_id}/logs/offsets")
def read_log_offsets(run_id: str, user: CurrentUser, session: ReadSession) -> dict[str, int]:
    """Logical bytes of each rank's captured output the server holds (the upload's resume points)."""
    get_run(session, user, run_id)
    return log_store.offsets(session, run_id)


@router.get("/runs/{run_id}/logs")
def read_logs(
    run_id: str,
    user: CurrentUser,
    session: ReadSession,
    rank: int | None = Query(default=None, ge=0, le=MAX_RANK),
    tail: int | None = Query(default=None, ge=0, le=log_store.MAX_READ_LINES),
    after: int | None = Query(default=None, ge=0, le=MAX_OFFSET),
    q: str | None = Query(default=None, max_length=500),
) -> dict:
    """What the ranks printed: ``lines`` ``{id, rank, time, stream, text}``, ``dropped`` bytes per
    rank, and the ``ranks`` that uploaded output. ``tail``: the last lines; ``after``: lines past that
    id (follow a live run); ``q``: lines containing it (case-insensitive)."""
    get_run(session, user, run_id)
    return log_store.read(session, run_id, rank=rank, tail=tail, after=after, search=q)


def _limit() -> int:
    try:
        return log_max_bytes()
    except ValueError:
        from em_dist.limits import DEFAULT_LOG_MAX_BYTES

        return DEFAULT_LOG_MAX_BYTES
