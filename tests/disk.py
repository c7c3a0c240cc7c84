"""A real small disk for the disk-trouble tests: a tmpfs mounted for one test (root only).

CI runs as root and must run these tests (``CI`` set: a failed mount fails the test);
elsewhere a machine that can't mount skips them, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size_mb: int = 48) -> Iterator[Path]:
    """Mount a ``size_mb`` tmpfs at ``path`` for the duration of the block."""
    path.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        reason = f"cannot mount a tmpfs at {path} ({proc.stderr.strip() or 'mount failed'}); run as root"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI is set: this test must run)")
        pytest.skip(reason)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def remount(path: Path, mode: str) -> None:
    """``mode`` is ``ro`` or ``rw``."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True, timeout=30)


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system of ``path`` with a filler file, then free about ``leave_bytes``."""
    filler = path / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        try:
            while True:  # the last pages
                f.write(block[:4096])
        except OSError:
            pass
    if leave_bytes:
        size = filler.stat().st_size
        os.truncate(filler, max(0, size - leave_bytes))
    return filler
