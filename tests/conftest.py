"""Every test gets its own run/artifact folders and HOME, so nothing leaks between tests or into the repo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "em" / "runs"))
    monkeypatch.setenv("EM_ARTIFACT_PARENT_DIR", str(tmp_path / "em" / "artifacts"))
    monkeypatch.setenv("AIMD_TRIAL_PARENT_DIR", str(tmp_path / "aimd" / "trials"))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var in ("EM_HOST", "EM_API_KEY", "EM_DIST_TIMEOUT", "EM_FLUSH_INTERVAL"):
        monkeypatch.delenv(var, raising=False)
    # System metrics are on by default (every 10 s); tests that count records turn them on themselves.
    monkeypatch.setenv("EM_SYSTEM_METRICS_INTERVAL", "0")


@pytest.fixture
def run_parent(tmp_path: Path) -> Path:
    return tmp_path / "em" / "runs"


def python_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


PYTHON = sys.executable
