"""A rank's journal uploaded from its own host: merged into the same run, exactly once by number."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from em_dist.limits import MAX_RANK
from em_dist.server import metric_store, numbered_records
from em_dist.server.deps import Config, CurrentUser, ReadSession
from em_dist.server.lookup import get_run
from em_dist.server.models import User
from em_dist.server.routes.metrics import _read_limited

router = APIRouter(tags=["metrics"])

MAX_COUNT = 2**62


@router.post("/runs/{run_id}/journal/{rank}")
async def upload_journal(
    run_id: str, rank: int, request: Request, user: CurrentUser, config: Config,
    attempt: int = Query(default=0, ge=0, le=1_000_000),
    last: int | None = Query(default=None, ge=0, le=MAX_COUNT),
    where: str | None = Query(default=None, max_length=1024),
) -> dict:
    """Merge lines of a rank's journal (``<n>\\t<record>``, complete lines) into the run: records the
    server holds already (from the run folder or an earlier journal upload) are skipped, so this is
    safe to repeat and to send before or after the run folder's own upload. ``last``: the journal
    is closed and ends at that number. Needs edit rights on the run."""
    if not 0 < rank <= MAX_RANK:
        raise HTTPException(400, f"a journal's rank is an integer in 1..{MAX_RANK}")
    try:
        data = await _read_limited(request, config.max_metrics_chunk_bytes)
    except ClientDisconnect:
        return JSONResponse(status_code=400, content={"detail": "client disconnected"})  # type: ignore[return-value]
    if data and not data.endswith(b"\n"):
        raise HTTPException(400, "a journal chunk must end with a newline (complete lines only)")
    return await run_in_threadpool(_merge, request, user, run_id, rank, attempt, data, last, where)


def _merge(request: Request, user: User, run_id: str, rank: int, attempt: int, data: bytes,
           last: int | None, where: str | None) -> dict:
    with request.app.state.db.write_session() as session:
        get_run(session, user, run_id, need="edit")
        try:
            done = numbered_records.merge_journal(session, run_id, rank, attempt, data, last=last, where=where,
                                                  blobs=request.app.state.blobs, user_id=user.id)
        except metric_store.IngestError as exc:
            session.rollback()
            raise HTTPException(400, str(exc)) from None
        session.commit()
    return {"added": done.added, "records": done.merged}


@router.get("/runs/{run_id}/delivery")
def read_delivery(run_id: str, user: CurrentUser, session: ReadSession) -> dict:
    """Per rank: the numbered records the server holds, whether that is all, and where the rest is."""
    get_run(session, user, run_id)
    return numbered_records.completeness(session, run_id)
