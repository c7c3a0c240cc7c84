"""Small file primitives: atomic JSON replace and tolerant JSON reads."""

from __future__ import annotations

import json
import os
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


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed file, or ``default`` when it is absent."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default
