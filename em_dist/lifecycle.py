"""The one holder of live runs: finishes them at interpreter exit with the status the exit deserves."""

from __future__ import annotations

import atexit
import sys
import threading
from typing import Any

_live: list[Any] = []
_lock = threading.Lock()
_installed = False
_uncaught: BaseException | None = None
_previous_hook = None


def register(run: Any) -> None:
    """Track ``run`` until it finishes; installs the exit hooks on first use."""
    global _installed
    with _lock:
        _live.append(run)
        if not _installed:
            _installed = True
            _install()


def unregister(run: Any) -> None:
    with _lock:
        if run in _live:
            _live.remove(run)


def current() -> Any | None:
    """The most recently created run that is not finished yet, if any."""
    with _lock:
        return _live[-1] if _live else None


def _install() -> None:
    global _previous_hook
    _previous_hook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_at_exit)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
    global _uncaught
    _uncaught = exc
    hook = _previous_hook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _at_exit() -> None:
    with _lock:
        runs = list(reversed(_live))
    for run in runs:
        if _uncaught is not None:
            run._finish("Failed", f"exception: {type(_uncaught).__name__}: {_uncaught}")
        else:
            run._finish("Succeeded", None)
