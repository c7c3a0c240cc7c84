"""SIGTERM/SIGINT/SIGHUP: finish live runs as Failed before the process goes.

Schedulers preempt with SIGTERM (SLURM, Kubernetes, ``docker stop``), launchers stop
the survivors of a failed job with it (torchrun, srun), users press Ctrl-C (SIGINT) or
lose their terminal (SIGHUP). Each live run is then finished as ``Failed`` with
``signal: SIGTERM``, and the signal is handed on to what was installed before: a user's
handler is called, the default action is taken so the exit status stays the signal's
(143 for SIGTERM in a shell), an ignored signal stays ignored (em_dist installs nothing
over it, e.g. SIGHUP under ``nohup``).

Why the handler does almost nothing: Python runs a signal handler on the main thread
between two bytecodes of whatever that thread was doing, so the interrupted code may
hold *any* lock (em_dist's, the user's, the logging module's). Work in the handler that
takes such a lock, or that waits for a thread that needs one, deadlocks. So
:func:`_handle` only sets a flag and starts a helper thread (the low-level
``_thread.start_new_thread``, which takes no Python lock), and returns at once; the
interrupted thread goes on and releases what it holds. The helper runs the callbacks on
a worker thread with a bounded join (the runs' ``signal_close_cap``), then hands the
signal on: the
default action it takes itself (the process then dies of the signal even when the main
thread is stuck in C code); a Python handler (the user's, or SIGINT's
``KeyboardInterrupt``) must run on the main thread, so it sends the signal there again
and :func:`_handle` calls that handler.
"""

from __future__ import annotations

import _thread
import os
import signal
import sys
import threading
from typing import Any, Callable

from .._warn import warn_once
from .timing import RankTimings

SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")

# Plain containers mutated only by single GIL-atomic operations (append, remove, item
# assignment, pop): the handler and the helper thread read them without a lock.
_callbacks: list[Callable[[str], None]] = []
_caps: dict[Callable[[str], None], float] = {}
_previous: dict[int, Any] = {}
_chain_due: dict[int, bool] = {}
_busy: list[int] = []  # the signal being finished, if any
_install_lock = threading.Lock()  # add_callback only (the main thread, never a handler)


def add_callback(callback: Callable[[str], None], cap: float = RankTimings.signal_close_cap) -> bool:
    """Call ``callback(signal_name)`` on SIGTERM/SIGINT/SIGHUP, waiting at most ``cap`` seconds
    for it; False when no handler can be installed here (not the main thread, embedded)."""
    _caps[callback] = cap
    if callback not in _callbacks:
        _callbacks.append(callback)
    if threading.current_thread() is not threading.main_thread():
        return bool(_previous)
    with _install_lock:
        for name in SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None or (name == "SIGINT" and _interactive()):
                continue  # Ctrl-C in a REPL or notebook stops a cell, not the run
            try:
                current = signal.getsignal(signum)
                if current is _handle:
                    continue
                if current == signal.SIG_IGN:
                    continue  # ignored stays ignored, and is no reason to end the run
                signal.signal(signum, _handle)
                _previous[signum] = current
            except (ValueError, OSError):  # an embedded interpreter may refuse
                continue
    return bool(_previous)


def remove_callback(callback: Callable[[str], None]) -> None:
    """Stop calling ``callback``; safe from any thread, also while a signal is being handled."""
    try:
        _callbacks.remove(callback)
    except ValueError:
        pass
    _caps.pop(callback, None)


def _handle(signum: int, frame: Any) -> None:
    # The interrupted main thread may hold any lock: no lock, no wait here. Even threading.Thread
    # is out (its start takes the threading module's locks); _thread.start_new_thread takes none.
    if _chain_due.pop(signum, False) or (not _callbacks and not _busy):
        _chain(signum, frame)
        return
    if _busy:
        return  # a second signal while finishing: the finish is bounded and hands the signal on
    _busy.append(signum)
    _thread.start_new_thread(_finish_then_chain, (signum,))


def _chain(signum: int, frame: Any) -> None:
    """Hand the signal to what was installed before us (on the main thread)."""
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:  # the default action: die of this signal, as if we were never here
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _finish_then_chain(signum: int) -> None:
    """On the helper thread: run the callbacks (bounded), then hand the signal on."""
    try:
        _finish_and_hand_on(signum)
    except BaseException:  # noqa: BLE001 - never leave the signal swallowed
        _busy.clear()
        _chain_due[signum] = True
        signal.pthread_kill(_main_ident(), signum)


def _finish_and_hand_on(signum: int) -> None:
    name = signal.Signals(signum).name
    callbacks = list(_callbacks)
    cap = max([_caps.get(cb, RankTimings.signal_close_cap) for cb in callbacks] or [0.0])

    def run_callbacks() -> None:
        for cb in callbacks:
            try:
                cb(name)
            except Exception as exc:  # noqa: BLE001 - the signal must still be handed on
                warn_once("signal-callback", f"em_dist: finishing the run on {name} failed ({exc!r})")

    worker = threading.Thread(target=run_callbacks, name="em_dist-signal-finish", daemon=True)
    worker.start()
    worker.join(cap + 1.0)  # each finish caps its own waits at `cap`; this bounds the rest
    if worker.is_alive():
        warn_once("signal-timeout", f"em_dist: finishing the run on {name} took longer than {cap + 1.0:.0f}s; "
                  "handing the signal on anyway")
    previous = _previous.get(signum, signal.SIG_DFL)
    if not callable(previous) and previous != signal.SIG_IGN and _die_of(signum):
        return
    _chain_due[signum] = True  # the next _handle of this signal hands it on
    _busy.clear()
    signal.pthread_kill(_main_ident(), signum)


def _die_of(signum: int) -> bool:
    """Take the signal's default action from this (non-main) thread: reset the C-level handler
    and re-raise. Python allows ``signal.signal`` on the main thread only, hence libc."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.signal.restype = ctypes.c_void_p
        libc.signal.argtypes = (ctypes.c_int, ctypes.c_void_p)
        if libc.signal(signum, None) == ctypes.c_void_p(-1).value:  # SIG_ERR
            return False
    except Exception:  # noqa: BLE001 - no libc (not Linux): the main thread does it
        return False
    os.kill(os.getpid(), signum)
    return True


def _interactive() -> bool:
    return hasattr(sys, "ps1") or "ipykernel" in sys.modules


def _forget_after_fork() -> None:
    """A fork child has neither the helper thread nor its parent's runs."""
    _callbacks.clear()
    _caps.clear()
    _busy.clear()
    _chain_due.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _main_ident() -> int:
    """The main thread's id (it has one: it is running, it is who a signal interrupts)."""
    ident = threading.main_thread().ident
    return ident if ident is not None else threading.get_ident()
