"""Artifacts: files a run consumed or produced, copied into their own folder with a sha256 per file."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock

from . import lifecycle
from ._warn import warn_once
from .store import layout
from .store.files import write_json_atomic

_CHUNK = 1 << 20


class Artifact:
    """A named set of files (and references to outside URIs) saved under ``$EM_ARTIFACT_PARENT_DIR``."""

    def __init__(self, name: str, labels: list[str] | None = None, description: str = "") -> None:
        self.name = layout.check_name(name, "artifact name")
        self.labels = layout.check_labels(labels)
        if not isinstance(description, str):
            raise TypeError("description must be a string")
        self.description = description
        self.id = str(uuid.uuid4())
        self.alternative_name = layout.alternative_name(self.name)
        self.created_timestamp = datetime.now(timezone.utc).isoformat()
        self.path = (layout.artifact_parent_dir() / self.alternative_name).resolve()
        self.files: list[dict[str, Any]] = []
        self.references: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._save()
        run = lifecycle.current()
        if run is not None:  # on a non-zero rank the live run ships it to rank 0
            run._artifact_created(self)

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r}, files={len(self.files)}, path={str(self.path)!r})"

    def add_file(self, file_path: str | os.PathLike[str], obj_path: str | None = None) -> None:
        """Copy one file into the artifact, as ``obj_path`` (default: its base name)."""
        src = Path(file_path)
        if not src.is_file():
            raise FileNotFoundError(f"add_file: no such file: {src}")
        target = layout.check_object_path(obj_path if obj_path is not None else src.name)
        try:
            entry = self._copy(src, target)
        except OSError as exc:
            _disk_trouble(self.path, exc)
            return
        with self._lock:
            self.files = [f for f in self.files if f["path"] != target] + [entry]
            self._save()

    def add_dir(self, dir_path: str | os.PathLike[str], obj_path: str | None = None) -> None:
        """Copy a directory tree into the artifact under ``obj_path`` (default: the directory's name)."""
        src = Path(dir_path)
        if not src.is_dir():
            raise FileNotFoundError(f"add_dir: no such directory: {src}")
        prefix = layout.check_object_path(obj_path if obj_path is not None else src.resolve().name)
        entries = []
        for root, dirs, names in os.walk(src):
            dirs.sort()
            for fname in sorted(names):
                path = Path(root) / fname
                if path.is_file():
                    rel = path.relative_to(src).as_posix()
                    try:
                        entries.append(self._copy(path, f"{prefix}/{rel}"))
                    except OSError as exc:
                        _disk_trouble(self.path, exc)
        with self._lock:
            added = {e["path"] for e in entries}
            self.files = [f for f in self.files if f["path"] not in added] + entries
            self._save()

    def add_reference(self, uri: str, obj_path: str | None = None) -> None:
        """Record an outside URI (a dataset bucket, a model hub entry) without copying it."""
        if not isinstance(uri, str) or not uri:
            raise ValueError("add_reference: uri must be a non-empty string")
        target = layout.check_object_path(obj_path) if obj_path is not None else uri.rstrip("/").rsplit("/", 1)[-1] or uri
        with self._lock:
            self.references.append({"uri": uri, "path": target})
            self._save()

    def upload(
        self,
        folder: str = "default",
        make_folder: bool = False,
        *,
        folder_id: str | None = None,
        host: str | None = None,
        api_key: str | None = None,
    ) -> Any:
        """Send the artifact to the server (``em.login`` first); files the server already has are not sent again."""
        from .client.upload import upload_artifact

        return upload_artifact(self.path, folder=folder, folder_id=folder_id, make_folder=make_folder, host=host, api_key=api_key)

    def _copy(self, src: Path, obj_path: str) -> dict[str, Any]:
        dst = self.path / layout.ARTIFACT_CONTENT_DIR / obj_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
                size += len(chunk)
        shutil.copystat(src, dst, follow_symlinks=True)
        return {"path": obj_path, "size": size, "sha256": digest.hexdigest()}

    def _save(self) -> None:
        doc = {
            "format_version": layout.FORMAT_VERSION,
            "id": self.id,
            "name": self.name,
            "alternative_name": self.alternative_name,
            "labels": self.labels,
            "description": self.description,
            "created_timestamp": self.created_timestamp,
            "files": self.files,
            "references": self.references,
        }
        try:
            (self.path / layout.ARTIFACT_CONTENT_DIR).mkdir(parents=True, exist_ok=True)
            with FileLock(str(self.path / layout.LOCK_FILE)):
                write_json_atomic(self.path / layout.ARTIFACT_FILE, doc)
        except OSError as exc:
            _disk_trouble(self.path, exc)


def create_artifact(name: str, labels: list[str] | None = None, description: str = "") -> Artifact:
    """Start a new artifact; add content with ``add_file``/``add_dir``, then ``run.mark_output(artifact)``."""
    return Artifact(name, labels=labels, description=description)


def _disk_trouble(path: Path, exc: OSError) -> None:
    warn_once(f"artifact-disk:{path}", f"em_dist: cannot write the artifact folder {path} ({exc}); training goes on without it")
