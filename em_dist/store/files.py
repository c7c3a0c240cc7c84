"""Small file primitives: atomic JSON replace and tolerant JSON reads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


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


def read_json(path: Path, default: Any = None) -> Any:
    """The parsed file, or ``default`` when it is absent."""
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return default
