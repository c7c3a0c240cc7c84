"""The charting library, served from the installed ``plotly`` Python package (never a CDN).

The ``plotly`` wheel ships ``package_data/plotly.min.js``; we find it without importing
plotly, gzip it once per process and serve it with a long cache lifetime.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fastapi import Request, Response
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class _Asset:
    raw: bytes
    gz: bytes
    etag: str


def plotly_js_path() -> Path | None:
    """Where the installed plotly package keeps ``plotly.min.js``; None when plotly is not installed."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "package_data" / "plotly.min.js"
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=1)
def _asset() -> _Asset | None:
    path = plotly_js_path()
    if path is None:
        return None
    raw = path.read_bytes()
    return _Asset(raw, gzip.compress(raw, compresslevel=6), '"' + hashlib.sha256(raw).hexdigest()[:16] + '"')


def plotly_response(request: Request) -> Response:
    """``plotly.min.js`` (gzipped when the browser accepts it), or 404 naming the missing extra."""
    asset = _asset()
    if asset is None:
        return JSONResponse(status_code=404, content={
            "detail": "the console's charts need the plotly package: pip install 'em-dist[server]'"})
    headers = {"ETag": asset.etag, "Cache-Control": "public, max-age=86400", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gz, media_type="text/javascript", headers=headers)
    return Response(asset.raw, media_type="text/javascript", headers=headers)
