"""Artifacts made on a non-zero rank travel to rank 0's run folder as chunked messages.

A peer turns an artifact folder into :class:`~.messages.ArtifactChunk` messages followed by one
:class:`~.messages.ArtifactDone`; rank 0 writes them under
``<run>/files/<alt>/`` in the artifact folder layout (``artifact.json`` +
``files/<path>``), so the shipped copy reads back with ``em_dist.load_artifact``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..store import layout
from ..store.files import write_json_atomic
from .messages import ArtifactChunk, ArtifactDone

CHUNK = 1 << 20


def artifact_messages(artifact_dir: Path, role: str) -> Iterator[ArtifactChunk | ArtifactDone]:
    """The messages that carry one artifact folder (read lazily, one chunk at a time)."""
    doc = json.loads((artifact_dir / layout.ARTIFACT_FILE).read_text(encoding="utf-8"))
    alt = doc.get("alternative_name") or artifact_dir.name
    content = artifact_dir / layout.ARTIFACT_CONTENT_DIR
    for entry in doc.get("files", []):
        rel = layout.check_object_path(entry["path"])
        offset = 0
        with open(content / rel, "rb") as f:
            while True:
                chunk = f.read(CHUNK)
                if not chunk and offset:
                    break
                yield ArtifactChunk(alt, rel, offset, chunk)
                offset += len(chunk)
                if len(chunk) < CHUNK:
                    break
    yield ArtifactDone(alt, doc, role)


class ArtifactReceiver:
    """Rank 0's side: writes shipped chunks into ``<run>/files/<alt>/`` and reports finished artifacts."""

    def __init__(self, run_dir: Path) -> None:
        self.root = run_dir / layout.SHIPPED_FILES_DIR

    def _folder(self, alt: Any) -> Path:
        return self.root / layout.check_object_path(str(alt)).replace("/", "_")

    def chunk(self, alt: str, rel: str, offset: int, data: bytes) -> None:
        path = self._folder(alt) / layout.ARTIFACT_CONTENT_DIR / layout.check_object_path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb" if offset == 0 else "r+b") as f:
            f.seek(offset)
            f.write(data)

    def done(self, rank: int, alt: str, doc: dict[str, Any], role: str) -> dict[str, Any]:
        """Write ``artifact.json``; return the run's ``artifacts.json`` entry for it."""
        folder = self._folder(alt)
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(folder / layout.ARTIFACT_FILE, doc)
        return {"id": doc.get("id"), "name": doc.get("name"), "path": str(folder),
                "role": role if role in ("input", "output") else "output", "rank": rank}
