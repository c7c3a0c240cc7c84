"""Names and places of run and artifact folders (docs/format.md)."""

from __future__ import annotations

import os
import secrets
import string
import time
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


def run_parent_dir() -> Path:
    """Where runs live: ``$EM_RUN_PARENT_DIR`` or ``.em/runs``."""
    return Path(os.environ.get("EM_RUN_PARENT_DIR") or ".em/runs")


def artifact_parent_dir() -> Path:
    """Where artifacts live: ``$EM_ARTIFACT_PARENT_DIR`` or ``.em/artifacts``."""
    return Path(os.environ.get("EM_ARTIFACT_PARENT_DIR") or ".em/artifacts")


def alternative_name(name: str, when: float | None = None) -> str:
    """``<name>_<yymmdd>_<hhmmss>_<6 random chars>``: unique, sortable, readable."""
    stamp = time.strftime("%y%m%d_%H%M%S", time.localtime(when))
    suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(6))
    return f"{name}_{stamp}_{suffix}"


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
    return "/".join(part for part in p.split("/") if part not in ("", "."))


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
    return strategy  # type: ignore[return-value]
