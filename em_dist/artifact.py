"""Artifacts: files a run consumed or produced, copied into their own folder with a sha256 per file.

A copy never leaves part of a file behind: it is written under a temporary name beside its
place and renamed there when complete; a copy that fails (a full disk, an exception such as
a program's SIGTERM handler raises) is removed at once, and one in flight when the process
dies of a signal is removed by em_dist's signal handling (:func:`discard_partial`). Metric
records come first: a file is not copied when that would leave its disk with less than
:data:`HEADROOM` free, and a copy stops when the room drops below that meanwhile. A file
that was not copied is listed in the artifact's ``failed`` (with why), and marking the
artifact as a run's input or output says it is incomplete.
"""

from __future__ import annotations

import errno
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

HEADROOM = 64 << 20
"""Bytes an artifact copy leaves free on its disk for the run's records (at most 1/8 of a small disk)."""

_ROOM_EVERY = 64
"""A copy looks at its disk's free room again every this many chunks (64 MB)."""

_PART = ".em-part-"
"""Marks a copy in progress: ``.<name>.em-part-<random>`` beside the file's place."""

_partial: set[Path] = set()
"""Copies in progress in this process (their temporary names)."""


def discard_partial() -> None:
    """Remove every copy still in progress (the process is about to die of a signal)."""
    for tmp in list(_partial):
        _remove(tmp)


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
        self.failed: list[dict[str, str]] = []
        """Files that were not copied: ``{"path": obj_path, "source": ..., "reason": ...}``."""
        self._lock = threading.Lock()
        self._save()
        run = lifecycle.current()
        if run is not None:  # on a non-zero rank the live run ships it to rank 0
            run._artifact_created(self)

    def __repr__(self) -> str:
        return f"Artifact(name={self.name!r}, files={len(self.files)}, path={str(self.path)!r})"

    def add_file(self, file_path: str | os.PathLike[str], obj_path: str | None = None) -> None:
        """Copy one file into the artifact, as ``obj_path`` (default: its base name).

        A copy that fails is removed at once and listed in :attr:`failed` (one warning); an
        exception that interrupts it (a program's signal handler) propagates after that.
        """
        src = Path(file_path)
        if not src.is_file():
            raise FileNotFoundError(f"add_file: no such file: {src}")
        target = layout.check_object_path(obj_path if obj_path is not None else src.name)
        entry = None
        try:
            entry = self._copy_or_note(src, target)
        finally:  # also when interrupted: the failure is saved
            with self._lock:
                if entry is not None:
                    self.files = [f for f in self.files if f["path"] != target] + [entry]
                self._save()

    def add_dir(self, dir_path: str | os.PathLike[str], obj_path: str | None = None) -> None:
        """Copy a directory tree into the artifact under ``obj_path`` (default: the directory's name).

        Each file is copied as by :meth:`add_file`: one that fails is listed in :attr:`failed`
        and the others are still copied; an exception that interrupts a copy propagates once
        what was copied so far is saved.
        """
        src = Path(dir_path)
        if not src.is_dir():
            raise FileNotFoundError(f"add_dir: no such directory: {src}")
        prefix = layout.check_object_path(obj_path if obj_path is not None else src.resolve().name)
        entries = []
        try:
            for root, dirs, names in os.walk(src):
                dirs.sort()
                for fname in sorted(names):
                    path = Path(root) / fname
                    if path.is_file():
                        rel = path.relative_to(src).as_posix()
                        entry = self._copy_or_note(path, f"{prefix}/{rel}")
                        if entry is not None:
                            entries.append(entry)
        finally:
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

    def _copy_or_note(self, src: Path, obj_path: str) -> dict[str, Any] | None:
        """The file's entry once copied; None (and the file in :attr:`failed`, warned once) when not."""
        try:
            entry = self._copy(src, obj_path)
        except OSError as exc:
            self._note_failed(src, obj_path, exc.strerror or str(exc))
            warn_once(f"artifact-copy:{self.path}", f"em_dist: {src} was not copied into artifact {self.name!r} "
                      f"({exc}); the partial copy is removed and training goes on. The artifact lists it in 'failed'.")
            return None
        except BaseException as exc:  # the program's own exception (a signal handler's): noted, then its way
            self._note_failed(src, obj_path, f"interrupted: {type(exc).__name__}")
            raise
        with self._lock:
            self.failed = [f for f in self.failed if f["path"] != obj_path]
        return entry

    def _note_failed(self, src: Path, obj_path: str, reason: str) -> None:
        with self._lock:
            self.failed = [f for f in self.failed if f["path"] != obj_path]
            self.failed.append({"path": obj_path, "source": str(src), "reason": reason})

    def _copy(self, src: Path, obj_path: str) -> dict[str, Any]:
        """Copy ``src`` to ``obj_path`` under a temporary name, renamed when complete; removed on any failure."""
        dst = self.path / layout.ARTIFACT_CONTENT_DIR / obj_path
        dst.parent.mkdir(parents=True, exist_ok=True)
        left = src.stat().st_size
        _check_room(dst.parent, left)
        tmp = dst.with_name(f".{dst.name}{_PART}{uuid.uuid4().hex[:8]}")
        _partial.add(tmp)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(src, "rb") as fin, open(tmp, "wb") as fout:
                chunks = 0
                while chunk := fin.read(_CHUNK):
                    digest.update(chunk)
                    fout.write(chunk)
                    size += len(chunk)
                    chunks += 1
                    if not chunks % _ROOM_EVERY:  # another writer may have taken the room meanwhile
                        _check_room(dst.parent, max(0, left - size))
            shutil.copystat(src, tmp, follow_symlinks=True)
            os.replace(tmp, dst)
        except BaseException:
            _remove(tmp)
            raise
        finally:
            _partial.discard(tmp)
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
            "failed": self.failed,
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


def _check_room(folder: Path, needed: int) -> None:
    """Raise ``ENOSPC`` when writing ``needed`` more bytes under ``folder`` would leave less than
    :data:`HEADROOM` free (1/8 of a disk smaller than 512 MB): the run's records come first."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return  # can't tell: the copy itself finds out
    free = st.f_bavail * st.f_frsize
    headroom = min(HEADROOM, st.f_blocks * st.f_frsize // 8)
    if needed and free - needed < headroom:
        raise OSError(errno.ENOSPC, f"{needed} bytes would leave {folder}'s disk with less than "
                      f"{headroom >> 20} MB free for the run's records ({free >> 20} MB free)")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        warn_once(f"artifact-partial:{path}", f"em_dist: could not remove the partial copy {path} ({exc})")


def _disk_trouble(path: Path, exc: OSError) -> None:
    warn_once(f"artifact-disk:{path}", f"em_dist: cannot write the artifact folder {path} ({exc}); training goes on without it")
