"""Warn once per kind of trouble, from any thread, without ever raising or taking a lock.

No lock on purpose: a signal's finishing thread may warn while the interrupted thread is
anywhere, also inside this module. ``dict.setdefault`` is atomic under the GIL, so exactly
one caller wins each key.
"""

from __future__ import annotations

import warnings

from .errors import EMWarning

_seen: dict[str, object] = {}


def warn_once(key: str, message: str, stacklevel: int = 3) -> None:
    """Issue ``message`` as an :class:`EMWarning` the first time ``key`` is seen in this process."""
    token = object()
    if _seen.setdefault(key, token) is not token:
        return
    warn(message, stacklevel + 1)


def silence(key: str) -> None:
    """Never warn ``key`` from now on (trouble a caller already explained otherwise)."""
    _seen.setdefault(key, None)


def warn(message: str, stacklevel: int = 3) -> None:
    """Issue ``message`` as an :class:`EMWarning` (every time); never raises."""
    try:
        warnings.warn(message, EMWarning, stacklevel=stacklevel)
    except Exception:  # a warnings filter set to "error" must not break training
        pass
