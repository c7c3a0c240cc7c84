"""SIGTERM/SIGINT/SIGHUP: record that the signal came; the program decides how it ends.

Schedulers preempt with SIGTERM (SLURM, Kubernetes, ``docker stop``), launchers stop
the survivors of a failed job with it (torchrun, srun), users press Ctrl-C (SIGINT) or
lose their terminal (SIGHUP). What em_dist does depends on who else handles the signal,
decided at the moment it arrives:

- **The program handles it** (a handler of the script or its framework is in the chain):
  em_dist notes the signal in each live run (``signals`` in run.json) and flushes what was
  logged, on a helper thread, and does nothing else: it never kills the process and keeps
  what is logged afterwards. The run ends by what the program does next (``finish()``:
  Succeeded; an exception: Failed with it; an exit without ``finish()``: Failed,
  ``signal: SIGTERM``). A handler installed *before* ``create_run`` is em_dist's previous
  handler: em_dist calls it at once, on the main thread, as Python would have. A handler
  installed *after* ``create_run`` sits in front of em_dist's; a framework that chains to
  the handler it found (Lightning's ``_SignalConnector`` composes its own with
  ``signal.getsignal(SIGTERM)``) calls em_dist's from its own. em_dist sees that because
  ``signal.getsignal`` no longer returns its handler, checked when the signal arrives (not
  at ``create_run``, when Lightning had not installed anything yet). A handler installed
  after ``create_run`` that does not chain replaces em_dist's: em_dist then never sees the
  signal, and the program alone decides, as without em_dist.
- **Nobody else handles it** (the default action, or SIGINT's ``KeyboardInterrupt``, which
  is Python's default): each live run is finished as ``Failed`` with ``signal: SIGTERM``,
  then the default action is taken so the exit status stays the signal's (143 for SIGTERM
  in a shell), or ``KeyboardInterrupt`` raised on the main thread.

An ignored signal stays ignored (em_dist installs nothing over it, e.g. SIGHUP under
``nohup``), SIGINT in a REPL or notebook is left alone, ``EM_DIST_NO_SIGNALS=1`` installs
nothing, and other signals (SIGUSR1, Lightning's SLURM requeue) are never touched.

Why a chaining handler in front of em_dist's means "the program decides": without
em_dist it would have found the default action and not chained at all (Lightning checks
``getsignal(...) not in (None, SIG_DFL)``), so em_dist stands for the default there and
must not take it. A framework that instead takes the default action itself when it finds
none is then left to do so, or the scheduler's SIGKILL follows; either way what was
logged is on disk and the run says it got the signal.

Why the handler does almost nothing: Python runs a signal handler on the main thread
between two bytecodes of whatever that thread was doing, so the interrupted code may
hold *any* lock (em_dist's, the user's, the logging module's). Work in the handler that
takes such a lock, or that waits for a thread that needs one, deadlocks. So
:func:`_handle` only reads the current handler (``signal.getsignal`` takes no lock), sets
a flag and starts a helper thread (the low-level ``_thread.start_new_thread``, which takes
no Python lock), calls the program's handler if it is em_dist's previous one, and returns;
the interrupted thread goes on and releases what it holds. When nobody else handles the
signal, the helper runs the callbacks on a worker thread with a bounded join (the runs'
``signal_close_cap``), then hands the signal on: the default action it takes itself (the
process then dies of the signal even when the main thread is stuck in C code); SIGINT's
``KeyboardInterrupt`` must be raised on the main thread, so it sends the signal there again
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

Callback = Callable[[str, bool], None]
"""``callback(signal_name, ends)``: ``ends`` True when the process ends by the signal (finish the
run as Failed), False when the program handles it (note the signal, flush, keep the run live)."""

# Plain containers mutated only by single GIL-atomic operations (append, remove, item
# assignment, pop): the handler and the helper threads read them without a lock.
_callbacks: list[Callback] = []
_caps: dict[Callback, float] = {}
_previous: dict[int, Any] = {}
_chain_due: dict[int, bool] = {}
_busy: list[int] = []  # the signal being finished, if any
_noting: dict[int, bool] = {}  # signals whose note is under way on a helper thread
_arrived: dict[Callback, list[str]] = {}  # each callback's list the handler appends a signal's name to
_names = {getattr(signal, n): n for n in SIGNALS if hasattr(signal, n)}  # no enum lookup in the handler
_install_lock = threading.Lock()  # add_callback only (the main thread, never a handler)


def add_callback(callback: Callback, cap: float = RankTimings.signal_close_cap,
                 arrived: list[str] | None = None) -> bool:
    """Call ``callback(signal_name, ends)`` on SIGTERM/SIGINT/SIGHUP, waiting at most ``cap`` seconds
    for it when the process ends; False when no handler can be installed here (not the main
    thread, embedded).

    ``arrived``: a list the handler itself appends the signal's name to (once), so the run
    knows of the signal at once, even when the program ends it before the callback's thread ran.
    """
    _caps[callback] = cap
    if arrived is not None:
        _arrived[callback] = arrived
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


def remove_callback(callback: Callback) -> None:
    """Stop calling ``callback``; safe from any thread, also while a signal is being handled."""
    try:
        _callbacks.remove(callback)
    except ValueError:
        pass
    _caps.pop(callback, None)
    _arrived.pop(callback, None)


def _handle(signum: int, frame: Any) -> None:
    # The interrupted main thread may hold any lock: no lock, no wait here. Even threading.Thread
    # is out (its start takes the threading module's locks); _thread.start_new_thread takes none.
    if _chain_due.pop(signum, False):
        _chain(signum, frame)
        return
    name = _names.get(signum)
    for cb in list(_callbacks):  # list appends and membership tests only: no lock, atomic under the GIL
        names = _arrived.get(cb)
        if names is not None and name is not None and name not in names:
            names.append(name)
    previous = _previous.get(signum, signal.SIG_DFL)
    # Decided now, not at install: a framework's handler installed after ours (Lightning's) is
    # what getsignal returns, and it is calling us from its own.
    if signal.getsignal(signum) is not _handle or _programs(previous):
        if _callbacks and signum not in _noting:
            _noting[signum] = True
            _thread.start_new_thread(_note, (signum,))
        if callable(previous):
            previous(signum, frame)  # the program's handler (or Python's, for SIGINT), on the main thread as ever
        return  # SIG_DFL behind a handler in front: without us that handler found no default to take
    if not _callbacks and not _busy:
        _chain(signum, frame)
        return
    if _busy:
        return  # a second signal while finishing: the finish is bounded and hands the signal on
    _busy.append(signum)
    _thread.start_new_thread(_finish_then_chain, (signum,))


def _programs(handler: Any) -> bool:
    """True for a handler of the program or its framework; Python's own SIGINT handler
    (``KeyboardInterrupt``) is the default action, as SIG_DFL is."""
    return callable(handler) and handler is not signal.default_int_handler


def _note(signum: int) -> None:
    """On a helper thread: tell every live run the program handles ``signum`` (each callback
    bounds its own waits; nothing waits for this thread)."""
    try:
        name = signal.Signals(signum).name
        for cb in list(_callbacks):
            try:
                cb(name, False)
            except Exception as exc:  # noqa: BLE001 - one run's trouble must not cost another its note
                warn_once("signal-note", f"em_dist: noting {name} in the run failed ({exc!r})")
    finally:
        _noting.pop(signum, None)


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
                cb(name, True)
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
    except (OSError, AttributeError):  # no libc (not Linux): the main thread does it
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
    _noting.clear()
    _arrived.clear()
    _chain_due.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def _main_ident() -> int:
    """The main thread's id (it has one: it is running, it is who a signal interrupts)."""
    ident = threading.main_thread().ident
    return ident if ident is not None else threading.get_ident()
