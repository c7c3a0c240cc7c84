"""Stream a blob as an HTTP download, with single byte ranges (``Range: bytes=a-b``)."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi.responses import Response, StreamingResponse

from em_dist.server.blobs import BlobStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """``(start, end)`` (end exclusive) for one satisfiable range; None to send the whole blob
    (no header, a malformed one or several ranges: RFC 9110 lets a server ignore them);
    ``"unsatisfiable"`` when the range lies past the end."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # the last N bytes
        n = int(last)
        return (max(size - n, 0), size) if n > 0 and size > 0 else "unsatisfiable"
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if start >= size or (last and int(last) < start):
        return "unsatisfiable"
    return start, end


def _disposition(filename: str) -> str:
    quoted = quote(filename)
    return f"attachment; filename*=utf-8''{quoted}" if quoted != filename else f'attachment; filename="{filename}"'


def blob_response(store: BlobStore, sha256: str, size: int, range_header: str | None, filename: str) -> Response:
    """The blob's bytes (200), one range of them (206), or 416 for a range past the end."""
    headers = {"Accept-Ranges": "bytes", "X-Content-SHA256": sha256, "Content-Disposition": _disposition(filename)}
    wanted = parse_range(range_header, size)
    if wanted == "unsatisfiable":
        return Response(status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    start, end = wanted if isinstance(wanted, tuple) else (0, size)
    headers["Content-Length"] = str(end - start)
    status = 200
    if isinstance(wanted, tuple):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    # a sync iterator: Starlette pulls it on a worker thread, so disk or S3 reads never block the loop
    return StreamingResponse(store.read(sha256, start, end), status_code=status, headers=headers,
                             media_type="application/octet-stream")
