"""Upload a run folder's media records (``media/rank-<r>.jsonl``) and their images: resumable, by offset.

The server says how far it got per rank (``GET /runs/{id}/media/offsets``); each rank's file is
read from there in chunks of complete lines. Before a chunk goes, the PNGs its images name
(``media/<sha256>.png``) that the server lacks go as blobs (``POST /blobs/missing``, then
``PUT /blobs/{sha256}``, as an artifact's files do): an image the server holds is not sent again.
"""

from __future__ import annotations

import json
from pathlib import Path

from em_dist._warn import warn_once
from em_dist.client.http import HttpClient
from em_dist.errors import ServerError
from em_dist.store.media import MEDIA_DIR, media_file

CHUNK_BYTES = 4 * 1024 * 1024


def media_ranks(run_dir: Path) -> list[int]:
    """Ranks with a media file in the run folder."""
    folder = run_dir / MEDIA_DIR
    out = []
    for p in folder.glob("rank-*.jsonl") if folder.is_dir() else []:
        suffix = p.stem.split("-", 1)[1]
        if suffix.isdigit():
            out.append(int(suffix))
    return sorted(out)


def upload_media(http: HttpClient, run_dir: Path, run_id: str) -> tuple[dict[int, int], int, int]:
    """Send every rank's media records the server lacks, images first; returns (offset per rank,
    record bytes sent, image bytes sent)."""
    ranks = media_ranks(run_dir)
    if not ranks:
        return {}, 0, 0
    response = http.request("GET", f"/runs/{run_id}/media/offsets", accept=(404,))
    if response.status_code == 404:  # the run was just stored: a server older than media (no such route)
        warn_once(f"media-old-server:{http.host}", f"em_dist: the server at {http.host} stores no media "
                  "(older than em_dist's media support); the run's media were not uploaded", 4)
        return {}, 0, 0
    held = {int(k): v for k, v in response.json().items()}
    offsets: dict[int, int] = {}
    sent = images = 0
    for rank in ranks:
        offsets[rank], n, m = _send(http, run_dir, run_id, rank, held.get(rank, 0))
        sent += n
        images += m
    return offsets, sent, images


def _chunk(path: Path, offset: int) -> bytes:
    """Complete lines from ``offset``: about :data:`CHUNK_BYTES`, at least one line (empty: none complete)."""
    out: list[bytes] = []
    size = 0
    with open(path, "rb") as fh:
        fh.seek(offset)
        while size < CHUNK_BYTES:
            line = fh.readline()
            if not line.endswith(b"\n"):
                break  # a partial last line (the writer is mid-append): sent once complete
            out.append(line)
            size += len(line)
    return b"".join(out)


def _images(data: bytes) -> list[str]:
    hashes = []
    for raw in data.split(b"\n"):
        if b'"image"' not in raw:
            continue
        try:
            doc = json.loads(raw)
        except ValueError:
            continue  # the server names what is wrong with it
        if isinstance(doc, dict) and doc.get("kind") == "image" and isinstance(doc.get("sha256"), str):
            hashes.append(doc["sha256"])
    return list(dict.fromkeys(hashes))


def _send_images(http: HttpClient, run_dir: Path, hashes: list[str]) -> int:
    if not hashes:
        return 0
    missing = http.request("POST", "/blobs/missing", json={"sha256": hashes}).json()["missing"]
    sent = 0
    for sha in missing:
        png = (run_dir / MEDIA_DIR / f"{sha}.png").read_bytes()
        http.request("PUT", f"/blobs/{sha}", data=png, headers={"Content-Type": "application/octet-stream"})
        sent += len(png)
    return sent


def _send(http: HttpClient, run_dir: Path, run_id: str, rank: int, start: int) -> tuple[int, int, int]:
    path = media_file(run_dir, rank)
    offset, sent, images = start, 0, 0
    retried = False
    while True:
        data = _chunk(path, offset)
        if not data:
            return offset, sent, images
        images += _send_images(http, run_dir, _images(data))
        response = http.request("POST", f"/runs/{run_id}/media/{rank}", params={"offset": offset}, data=data,
                                headers={"Content-Type": "application/x-ndjson"}, accept=(409,))
        answer = response.json()
        if response.status_code == 409:
            if "missing" in answer and not retried:  # collected between the check and the chunk: once more
                retried = True
                continue
            if "offset" not in answer or answer["offset"] == offset:
                raise ServerError(f"rank {rank}: media upload refused: {answer.get('detail')}", 409)
            offset = answer["offset"]
            continue
        retried = False
        sent += len(data)
        offset = answer["offset"]
