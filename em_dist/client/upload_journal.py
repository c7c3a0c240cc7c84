"""Upload a rank's journal from its own host: the records rank 0 never had reach the same server run.

A non-zero rank whose link to rank 0 broke for good keeps what rank 0 never acknowledged in its
journal (:mod:`em_dist.store.journal`) on its own host, while rank 0's run folder lives (and is
uploaded) elsewhere. The run id is the same on every rank, so this sends the journal's lines to
``POST /runs/{id}/journal/{rank}``; the server takes each record once by (run, rank, number),
whether the run folder was uploaded before, after, or not yet (then the run is made as a
placeholder that rank 0's upload fills in). Repeating it sends the journal again and adds nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from em_dist.client.http import HttpClient
from em_dist.client.target import UploadTarget
from em_dist.errors import RunFormatError
from em_dist.store import journal as journals

CHUNK_BYTES = 4 * 1024 * 1024


@dataclass
class JournalUploadResult:
    """What one journal upload did."""

    run_id: str
    rank: int
    journal: Path
    added: int = 0
    """Records the server took now (0 when it had them all)."""
    records: int = 0
    """The newest record number of the rank the server holds now."""
    closed: bool = False
    """The journal was closed (the rank logged nothing more): the server knows the rank's whole count."""


def is_journal(path: Path) -> bool:
    """Whether ``path`` is a rank's journal (``rank-<r>.<pid>.journal`` with its description beside it)."""
    return path.suffix == ".journal" and path.name.startswith("rank-") and path.with_suffix(".json").is_file()


def journals_under(folder: Path) -> list[Path]:
    """The journals in ``folder``: a spool of one run, a runs folder's ``.spool`` or a runs folder."""
    found = sorted(p for p in folder.glob("rank-*.journal") if is_journal(p))
    for sub in (folder / journals.SPOOL_DIR, folder):
        if sub.is_dir():
            for run_spool in sorted(p for p in sub.iterdir() if p.is_dir()):
                found += sorted(p for p in run_spool.glob("rank-*.journal") if is_journal(p))
    return list(dict.fromkeys(found))


def upload_journal(
    path: str | os.PathLike[str],
    *,
    folder: str | None = "default",
    folder_id: str | None = None,
    make_folder: bool = False,
    host: str | None = None,
    api_key: str | None = None,
    http: HttpClient | None = None,
) -> JournalUploadResult:
    """Send one journal's records to its run on the server (made as a placeholder if missing)."""
    target = UploadTarget(folder, folder_id, make_folder, host, api_key)
    journal = Path(path)
    meta = journals.read_meta(journal)
    run_id, rank = meta.get("run_id"), meta.get("rank")
    if not is_journal(journal) or not isinstance(run_id, str) or not isinstance(rank, int) or rank < 1:
        raise RunFormatError(f"{journal} is not a rank's journal (rank-<r>.<pid>.journal with its .json)")
    own = http is None
    http = http or target.client()
    try:
        body: dict[str, Any] = {
            **target.folder_spec(),
            "placeholder": True, "ranks": [rank],
            "run": {"name": str(meta.get("name") or "default"), "status": "Running"},
        }
        http.request("PUT", f"/runs/{run_id}", json=body)
        closed = bool(meta.get("closed"))
        result = JournalUploadResult(run_id, rank, journal, closed=closed)
        params: dict[str, Any] = {"attempt": int(meta.get("attempt") or 0),
                                  "where": f"{meta.get('host')}:{journal.resolve()}"[:1024]}
        chunks = list(_chunks(journal)) or [b""]
        for i, chunk in enumerate(chunks):
            if closed and i == len(chunks) - 1:
                params["last"] = int(meta.get("last") or 0)
            answer = http.request("POST", f"/runs/{run_id}/journal/{rank}", params=params, data=chunk,
                                  headers={"Content-Type": "text/plain"}).json()
            result.added += int(answer["added"])
            result.records = int(answer["records"])
        return result
    finally:
        if own:
            http.close()


def _chunks(journal: Path) -> Any:
    """The journal's complete lines in chunks of at most :data:`CHUNK_BYTES` (a torn last line is left out)."""
    out: list[bytes] = []
    size = 0
    with open(journal, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            if out and size + len(line) > CHUNK_BYTES:
                yield b"".join(out)
                out, size = [], 0
            out.append(line)
            size += len(line)
    if out:
        yield b"".join(out)
