"""Names and places of run and artifact folders (docs/format.md)."""

from __future__ import annotations

import os
import re
import secrets
import string
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from pathlib import Path

FORMAT_VERSION = 1

RUN_FILE = "run.json"
HPARAMS_FILE = "hparams.json"
PLATFORM_FILE = "platform.json"
GIT_FILE = "git.json"
ARTIFACTS_FILE = "artifacts.json"
HEARTBEAT_FILE = "heartbeat"
UPLOADS_FILE = "uploads.json"
LOCK_FILE = ".lock"
METRICS_DIR = "metrics"
SHIPPED_FILES_DIR = "files"
ARTIFACT_FILE = "artifact.json"
ARTIFACT_CONTENT_DIR = "files"

CONFLICT_STRATEGIES = ("skip", "error", "new", "replace")
"""What an upload does when the folder holds another run of that name (run.json ``conflict_strategy``)."""

_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


_parent_for_new_runs: ContextVar[Path | None] = ContextVar("em_dist_run_parent", default=None)


def run_parent_dir() -> Path:
    """Where runs live: ``$EM_RUN_PARENT_DIR`` or ``.em/runs`` (inside :func:`runs_under`, its folder)."""
    chosen = _parent_for_new_runs.get()
    if chosen is not None:
        return chosen
    return Path(os.environ.get("EM_RUN_PARENT_DIR") or ".em/runs")


def trial_parent_dir() -> Path:
    """Where ``aimd`` trials live: ``$AIMD_TRIAL_PARENT_DIR`` or ``.aimd/trials`` (the seed's place)."""
    return Path(os.environ.get("AIMD_TRIAL_PARENT_DIR") or ".aimd/trials")


@contextmanager
def runs_under(parent: Path) -> Iterator[Path]:
    """Within this block (this thread or task only), :func:`run_parent_dir` is ``parent``.

    ``create_trial`` places its run under ``.aimd/trials`` this way: a run's folder is decided
    once, in ``create_run``, so the block only needs to span that call.
    """
    token = _parent_for_new_runs.set(Path(parent))
    try:
        yield Path(parent)
    finally:
        _parent_for_new_runs.reset(token)


def artifact_parent_dir() -> Path:
    """Where artifacts live: ``$EM_ARTIFACT_PARENT_DIR`` or ``.em/artifacts``."""
    return Path(os.environ.get("EM_ARTIFACT_PARENT_DIR") or ".em/artifacts")


def alternative_name(name: str, when: float | None = None) -> str:
    """``<name>_<yymmdd>_<hhmmss>_<6 random chars>``: unique, sortable, readable."""
    stamp = time.strftime("%y%m%d_%H%M%S", time.localtime(when))
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"{name}_{stamp}_{suffix}"


def find_run_dir(run_id: str, name: str | None = None, parent: Path | None = None) -> Path | None:
    """The folder of the run with id ``run_id`` under ``parent`` (default :func:`run_parent_dir`), if any.

    With ``name``, only that name's folders (``<name>_*``) are read: a restarted job finds its run
    without reading every run.json of a big parent folder.
    """
    from .files import read_json

    parent = run_parent_dir() if parent is None else parent
    if not parent.is_dir():
        return None
    for folder in parent.glob(f"{glob_escape(name)}_*") if name else parent.iterdir():
        try:
            doc = read_json(folder / RUN_FILE, None)
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("id") == run_id:
            return folder
    return None


def glob_escape(text: str) -> str:
    """``text`` as a literal part of a glob pattern."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def iso_time(t: float) -> str:
    """A timestamp of run.json (``start_timestamp``, ``end_timestamp``, attempts): ISO 8601 in UTC."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat()


def metrics_file(run_dir: Path, rank: int) -> Path:
    return run_dir / METRICS_DIR / f"rank-{rank}.jsonl"


def rank_hparams_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"hparams-rank-{rank}.json"


def check_name(name: object, what: str = "name") -> str:
    """A run or artifact name: a non-empty string usable as part of a folder name."""
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a string, got {type(name).__name__}")
    if not name.strip():
        raise ValueError(f"{what} must not be empty")
    if "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise ValueError(f"{what} {name!r} must not contain path separators")
    return name


def check_object_path(obj_path: str) -> str:
    """An object path inside an artifact: relative, POSIX, without '..'."""
    if not isinstance(obj_path, str) or not obj_path:
        raise ValueError("obj_path must be a non-empty relative path")
    p = obj_path.replace("\\", "/")
    if p.startswith("/") or any(part == ".." for part in p.split("/")):
        raise ValueError(f"obj_path {obj_path!r} must be relative and must not contain '..'")
    normal = "/".join(part for part in p.split("/") if part not in ("", "."))
    if not normal:  # "." or "./": no file name left
        raise ValueError(f"obj_path {obj_path!r} names no file: give a relative path such as 'model.bin'")
    return normal


def check_labels(labels: object) -> list[str]:
    """Labels are a list of strings (None means none)."""
    if labels is None:
        return []
    if isinstance(labels, str) or not isinstance(labels, (list, tuple, set)) or not all(isinstance(x, str) for x in labels):
        raise TypeError("labels must be a list of strings")
    return list(labels)


def check_conflict_strategy(strategy: object) -> str:
    """One of :data:`CONFLICT_STRATEGIES`."""
    if strategy not in CONFLICT_STRATEGIES:
        raise ValueError(f"conflict_strategy must be one of {CONFLICT_STRATEGIES}, got {strategy!r}")
    return strategy
