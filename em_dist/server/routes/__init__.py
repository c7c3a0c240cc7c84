"""One router per resource, all mounted under ``/api/v1``."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from em_dist.server.routes import artifacts, blobs, folders, journals, lineage, logs, me, media, metrics, ranks, runs
from em_dist.server.storable import check_request_text

api_router = APIRouter(dependencies=[Depends(check_request_text)])
for _module in (me, folders, runs, ranks, metrics, journals, logs, media, blobs, artifacts, lineage):
    api_router.include_router(_module.router)

__all__ = ["api_router"]
