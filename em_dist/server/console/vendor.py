"""Static bytes of the console, served compressed with validators: the charting library from the
installed ``plotly`` Python package (never a CDN) and the app's own files.

The ``plotly`` wheel ships only the full ``package_data/plotly.min.js`` (4.8 MB, 1.4 MB
gzipped); it has no partial bundles (``plotly-basic``/``plotly-cartesian`` are npm
packages, not in the wheel), so we do not build one. Instead it is served under a
content-hashed URL (``/static/vendor/plotly-<hash>.min.js``) with a one-year
``immutable`` cache lifetime: the first visit fetches it once, and no later visit asks
again until the package changes. The app's small files are gzipped too and revalidated
by ETag on each visit (``no-cache``: a 304 costs a round trip, never stale code).
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

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml",
          ".png": "image/png", ".json": "application/json"}
_COMPRESSIBLE = {".js", ".css", ".html", ".svg", ".json"}


@dataclass(frozen=True)
class Asset:
    """One file's bytes, its gzip form (None when not worth it), ETag and media type."""

    raw: bytes
    gz: bytes | None
    etag: str
    media_type: str

    @property
    def digest(self) -> str:
        return self.etag.strip('"')


def make_asset(raw: bytes, suffix: str) -> Asset:
    gz = gzip.compress(raw, compresslevel=9, mtime=0) if suffix in _COMPRESSIBLE and len(raw) > 512 else None
    return Asset(raw, gz, '"' + hashlib.sha256(raw).hexdigest()[:16] + '"', _TYPES.get(suffix, "application/octet-stream"))


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
def plotly_asset() -> Asset | None:
    path = plotly_js_path()
    return make_asset(path.read_bytes(), ".js") if path is not None else None


def plotly_url() -> str:
    """The content-hashed URL of the charting library (the plain name when plotly is missing)."""
    asset = plotly_asset()
    return f"/static/vendor/plotly-{asset.digest}.min.js" if asset else "/static/vendor/plotly.min.js"


@lru_cache(maxsize=256)
def _file_asset(path: Path, mtime_ns: int, size: int) -> Asset:  # keyed by mtime: an edited file is re-read
    return make_asset(path.read_bytes(), path.suffix)


def file_asset(path: Path) -> Asset:
    """A static file's asset, cached per process until the file changes."""
    st = path.stat()
    return _file_asset(path, st.st_mtime_ns, st.st_size)


def asset_response(request: Request, asset: Asset, cache_control: str, headers: dict | None = None) -> Response:
    """``asset`` with an ETag (304 when the browser has it), gzipped when the browser accepts it."""
    out = {"ETag": asset.etag, "Cache-Control": cache_control, "Vary": "Accept-Encoding", **(headers or {})}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=out)
    if asset.gz is not None and "gzip" in request.headers.get("accept-encoding", ""):
        out["Content-Encoding"] = "gzip"
        return Response(asset.gz, media_type=asset.media_type, headers=out)
    return Response(asset.raw, media_type=asset.media_type, headers=out)


def plotly_response(request: Request, digest: str | None = None) -> Response:
    """``plotly.min.js``: immutable under its hashed name, revalidated under the plain one;
    404 naming the missing extra when plotly is not installed, or for a stale hash."""
    asset = plotly_asset()
    if asset is None:
        return JSONResponse(status_code=404, content={
            "detail": "the console's charts need the plotly package: pip install 'em-dist[server]'"})
    if digest is not None and digest != asset.digest:
        return JSONResponse(status_code=404, content={"detail": f"no plotly bundle {digest}; reload the console"})
    return asset_response(request, asset, IMMUTABLE if digest else "public, max-age=86400")
