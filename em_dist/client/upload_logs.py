"""Upload a run folder's captured output (``logs/rank-<r>.log``): resumable, by logical offset.

The server says how far it got per rank (``GET /runs/{id}/logs/offsets``); each rank's
file is read from there in chunks of complete lines. A file's head may have been dropped
under the limit since (:mod:`em_dist.store.logs`): offsets are logical, so a resumed
upload lands at the same place, and what the file no longer holds is skipped (the server
counts it as dropped). The file is opened once per rank and read through that one
descriptor: a rewrite of the file meanwhile (rename over it) can't mix two versions.
"""

from __future__ import annotations

import os
from pathlib import Path

from em_dist.client.http import HttpClient
from em_dist.errors import ServerError
from em_dist.limits import MAX_LOGS_CHUNK_BYTES
from em_dist.store.logs import log_file, log_ranks

CHUNK_BYTES = min(1 << 20, MAX_LOGS_CHUNK_BYTES)


def upload_logs(http: HttpClient, run_dir: Path, run_id: str) -> tuple[dict[int, int], int]:
    """Send every rank's output the server lacks; returns (logical offset per rank, bytes sent)."""
    ranks = log_ranks(run_dir)
    if not ranks:
        return {}, 0
    held = {int(k): v for k, v in http.get_json(f"/runs/{run_id}/logs/offsets").items()}
    offsets, sent = {}, 0
    for rank in ranks:
        try:
            offsets[rank], n = _send(http, run_id, rank, log_file(run_dir, rank), held.get(rank, 0))
        except FileNotFoundError:
            continue
        sent += n
    return offsets, sent


def _send(http: HttpClient, run_id: str, rank: int, path: Path, start: int) -> tuple[int, int]:
    from em_dist.store.lines import dropped_bytes

    sent = 0
    with open(path, "rb") as fh:
        first = fh.readline(4096)
        dropped = dropped_bytes(first.decode("utf-8", "replace")) if first.endswith(b"\n") else None
        marker, base = (len(first), dropped) if dropped is not None else (0, 0)
        size = os.fstat(fh.fileno()).st_size
        end = base + size - marker  # logical end of what the file holds
        offset = max(start, base)
        while offset < end:
            fh.seek(marker + offset - base)
            data = fh.read(min(CHUNK_BYTES, end - offset))
            cut = data.rfind(b"\n")
            if cut < 0:
                break  # a partial last line (the writer is mid-append): sent once complete
            data = data[:cut + 1]
            response = http.request("POST", f"/runs/{run_id}/logs/{rank}", params={"offset": offset}, data=data,
                                    headers={"Content-Type": "text/plain; charset=utf-8"}, accept=(409,))
            answer = response.json()
            if response.status_code == 409:
                if "offset" not in answer or answer["offset"] == offset or answer["offset"] > end:
                    raise ServerError(f"rank {rank}: server holds {answer.get('offset')} bytes of output; "
                                      f"local file has {end}", 409)
                offset = answer["offset"]
                continue
            sent += len(data)
            offset = answer["offset"]
    return offset, sent
