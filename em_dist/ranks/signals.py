"""SIGTERM/SIGINT: finish live distributed runs as Failed before the process goes.

Launchers stop the survivors of a failed job with SIGTERM (torchrun, srun,
Kubernetes) and users press Ctrl-C (SIGINT). The handler runs the registered
callbacks (rank 0 flushes and marks its run Failed with ``signal: SIGTERM``), then
hands the signal on to what was installed before: a user's handler is called, the
default action is re-raised so the exit status stays the signal's, an ignored
signal stays ignored. Installed only from the main thread (Python allows no other).
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable

from .._warn import warn_once

SIGNALS = ("SIGTERM", "SIGINT")

_callbacks: list[Callable[[str], None]] = []
_previous: dict[int, Any] = {}
_lock = threading.Lock()


def add_callback(callback: Callable[[str], None]) -> bool:
    """Call ``callback(signal_name)`` on SIGTERM/SIGINT; False when handlers can't be installed here."""
    with _lock:
        _callbacks.append(callback)
        if _previous:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        for name in SIGNALS:
            signum = getattr(signal, name)
            try:
                _previous[signum] = signal.signal(signum, _handle)
            except (ValueError, OSError):  # an embedded interpreter may refuse
                continue
        return bool(_previous)


def remove_callback(callback: Callable[[str], None]) -> None:
    with _lock:
        if callback in _callbacks:
            _callbacks.remove(callback)


def _handle(signum: int, frame: Any) -> None:
    name = signal.Signals(signum).name
    with _lock:
        callbacks = list(_callbacks)
    for cb in callbacks:
        try:
            cb(name)
        except Exception as exc:  # noqa: BLE001 - the signal must still be handed on
            warn_once("signal-callback", f"em_dist: finishing the run on {name} failed ({exc!r})")
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:  # the default action: die of this signal, as if we were never here
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
