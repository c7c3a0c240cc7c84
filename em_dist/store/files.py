"""Small file primitives: atomic JSON replace and tolerant JSON reads."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import RunFormatError


def write_json_atomic(path: Path, doc: Any, durable: bool = True) -> None:
    """Write ``doc`` to ``path`` so that readers see the old or the new file, never half of one.

    ``durable`` also fsyncs the data before the rename (metadata yes, heartbeats no).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = json.dumps(doc, indent=1, sort_keys=False, allow_nan=False, default=str).encode()
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def contained(folder: Path, path: Path) -> bool:
    """True when ``path``, links followed, lies inside ``folder`` (links followed too)."""
    try:
        return path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # a link loop
        return False


def read_json_in(folder: Path, name: str | Path, default: Any = None) -> Any:
    """:func:`read_json` of ``folder / name``, refusing a file that resolves outside ``folder``.

    A run folder is read by the uploader and the local console, which show what they read to
    the browser: a ``hparams.json`` linked to ``~/.ssh/config`` must not come along.
    Raises :class:`~em_dist.errors.RunFormatError` for such a link.
    """
    path = folder / name
    if path.is_symlink() and not contained(folder, path):
        raise RunFormatError(f"{path} links outside its folder {folder}; em_dist reads only files inside it")
    return read_json(path, default)


def complete_lines(path: Path, errors: str = "replace") -> Iterator[str]:
    """The lines of a text file that its writer finished (each ends in a newline): a torn last line,
    from a crash mid-write, is left out; nothing when the file is absent. ``errors`` says what stands
    for bytes that are not UTF-8 (:func:`open`'s meaning)."""
    try:
        f = open(path, encoding="utf-8", errors=errors)
    except FileNotFoundError:
        return
    with f:
        for line in f:
            if not line.endswith("\n"):
                return
            yield line


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed file, or ``default`` when it is absent."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and write (then remove) a probe file in it; else raise the OSError, saying where.

    ``create_run`` calls it for the runs folder: a run whose folder can't be written records
    nothing, so it fails at the call with this message instead of warning later that a
    ``run.json`` that was never written "still says the run is live".
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".em-write-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise type(exc)(exc.errno, f"{what}: cannot write in {folder} ({exc.strerror or exc}); nothing could be "
                                   "recorded there: run from a writable directory or set $EM_RUN_PARENT_DIR "
                                   "(trials: $AIMD_TRIAL_PARENT_DIR) to a writable folder") from exc
