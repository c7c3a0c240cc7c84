"""Media records in a run folder: ``media/rank-<r>.jsonl`` and the images beside it.

Rank 0's writer (and a journal merge) stores each media record (:data:`~em_dist.store.lines.MEDIA_MARK`,
made by :mod:`em_dist.media.encode`) as one line of the logging rank's ``media/rank-<r>.jsonl``;
a peer's line carries its record number (``{"n":17,...}``) as its metric lines do. An image's PNG
leaves the line for a content-addressed file ``media/<sha256>.png`` (written atomically; the same
image logged twice is stored once) and the line keeps its ``path`` relative to the run folder.

The metrics files are untouched by media: every reader of metric lines, the summary and the
upload see what they saw before.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .files import complete_lines
from .records import MediaEntry

MEDIA_DIR = "media"


def media_file(run_dir: Path, rank: int) -> Path:
    """The media records of ``rank``."""
    return run_dir / MEDIA_DIR / f"rank-{rank}.jsonl"


def stored_line(run_dir: Path, line: str) -> str:
    """The line to append for a media record (its :data:`MEDIA_MARK` taken off already): an image's
    PNG is written to ``media/<sha256>.png`` first and the line names that file instead. Raises
    ``OSError`` when the disk refuses (the caller keeps the record and retries)."""
    if '"png":' not in line:
        return line
    doc = json.loads(line)
    png = base64.b64decode(doc.pop("png"))
    digest = hashlib.sha256(png).hexdigest()
    rel = f"{MEDIA_DIR}/{digest}.png"
    path = run_dir / rel
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(png)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic: a reader sees no file or the whole one
    doc["path"] = rel
    doc["sha256"] = digest
    return json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n"


def append_lines(path: Path, lines: list[str], durable: bool) -> None:
    """Append ``lines`` to ``path`` in one write (media records are few and far between)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        data = "".join(lines).encode("utf-8")
        view, done = memoryview(data), 0
        while done < len(data):
            done += os.write(fd, view[done:])
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def _ranks(run_dir: Path) -> list[int]:
    folder = run_dir / MEDIA_DIR
    out = []
    for p in folder.glob("rank-*.jsonl") if folder.is_dir() else []:
        try:
            out.append(int(p.stem.split("-", 1)[1]))
        except ValueError:
            continue
    return sorted(out)


def _docs(path: Path) -> Iterator[dict[str, Any]]:
    for line in complete_lines(path):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("kind"), str):
            yield doc


def read_media(run_dir: Path, rank: int | None = None) -> list[MediaEntry]:
    """The media records of one rank (or of every rank, rank by rank), in the order logged.

    A peer's record that reached the folder twice (a journal merged after rank 0 had it) is listed
    once, by its (attempt, number)."""
    out: list[MediaEntry] = []
    for r in [rank] if rank is not None else _ranks(run_dir):
        seen: set[tuple[int, int]] = set()
        for doc in _docs(media_file(run_dir, r)):
            if "n" in doc:
                key = (int(doc.get("attempt", 0)), int(doc["n"]))
                if key in seen:
                    continue
                seen.add(key)
            out.append(_entry(run_dir, r, doc))
    return out


def _entry(run_dir: Path, rank: int, doc: dict[str, Any]) -> MediaEntry:
    return MediaEntry(
        kind=doc["kind"], type=str(doc.get("type", "")), name=str(doc.get("name", "")),
        step=int(doc.get("step", 0)), epoch=doc.get("epoch"), rank=rank, time=doc.get("time"),
        path=str(run_dir / doc["path"]) if isinstance(doc.get("path"), str) else None,
        sha256=doc.get("sha256") if doc["kind"] == "image" else None, caption=doc.get("caption"), width=doc.get("width"), height=doc.get("height"),
        bins=doc.get("bins"), counts=doc.get("counts"), nonfinite=doc.get("nonfinite"),
        columns=doc.get("columns"), rows=doc.get("rows"), text=doc.get("text"),
    )
