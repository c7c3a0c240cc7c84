"""Warn once per kind of trouble, from any thread, without ever raising."""

from __future__ import annotations

import threading
import warnings

from .errors import EMWarning

_seen: set[str] = set()
_lock = threading.Lock()


def warn_once(key: str, message: str, stacklevel: int = 3) -> None:
    """Issue ``message`` as an :class:`EMWarning` the first time ``key`` is seen in this process."""
    with _lock:
        if key in _seen:
            return
        _seen.add(key)
    try:
        warnings.warn(message, EMWarning, stacklevel=stacklevel)
    except Exception:  # a warnings filter set to "error" must not break training
        pass
