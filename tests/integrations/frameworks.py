"""What the integration tests share: a framework that must be installed under CI, and a job's one run."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

WORKERS = Path(__file__).parent / "workers"


def require(module: str) -> ModuleType:
    """Import ``module``; skip the test when it is missing, fail instead under CI (``make setup`` installs it)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is missing ({exc}); `make setup` installs the integrations extra and CI is set")
        pytest.skip(f"{module} is not installed (pip install -e '.[integrations]')")


def series(rec, type: str, name: str, rank: int) -> list[tuple]:
    """``(step, epoch, value)`` of one metric of one rank, in logging order."""
    return [(p["step"], p["epoch"], p["value"]) for p in rec.metrics(type=type, name=name, rank=rank)]
