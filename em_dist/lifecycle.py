"""The one holder of live runs: finishes them at interpreter exit with the status the exit deserves.

How the end of a process is seen:

- ``run.finish()`` / ``with``: Succeeded (or Failed with the exception).
- an uncaught exception: ``sys.excepthook`` notes it; at exit the run is Failed with it.
- ``sys.exit(n)`` on the main thread with a non-zero ``n`` (or a message): em_dist wraps
  ``sys.exit`` to note the code; at exit the run is Failed (``exit code: n``). A
  ``raise SystemExit(n)`` written out (not through ``sys.exit``) can't be seen by
  Python < 3.12's hooks and reads as Succeeded.
- a signal: :mod:`em_dist.ranks.signals`. One the program handled was noted in the run
  (``run.signals``); a run it then leaves unfinished at exit, with no exception and no
  non-zero exit, is Failed (``signal: SIGTERM``): the program never said it was done, and
  Lightning's graceful stop leaves by ``SystemExit`` (``SIGTERMException``) with status 0.
- the end of a ``multiprocessing`` child (``start_processes(start_method="fork")``,
  Lightning ``ddp_fork``), which leaves by ``os._exit`` without running ``atexit``:
  multiprocessing runs its own finalizers first, and one of them finishes the child's runs.
- a spawned process that was handed a Run (Lightning ``ddp_spawn``) finishes the Run that
  re-attached there like a fork child's (:mod:`em_dist.ranks.spawned`).
- a fork child never finishes (nor writes to) the runs of its parent: they are forgotten
  in the child at fork; one the child's engine later makes its rank's run (``ddp_fork``) is
  registered again then (:mod:`em_dist.ranks.forked`).

No lock is taken here from a finishing path: list append/remove are atomic under the GIL,
and a signal's finishing thread may unregister a run while the interrupted thread is in here.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, NoReturn

if TYPE_CHECKING:
    from .run import Run


@dataclass(frozen=True)
class Hooks:
    """What this module calls on a live run. The run hands them over when it is registered, so this
    module never reaches into a run's private members."""

    finish: Callable[[str, str | None], None]
    """End the run with (status, reason) at the process's end; never raises."""
    after_fork: Callable[[], bool]
    """In a fork child, from the at-fork hook (no thread may start there): True if the child keeps
    the run (it may become the child's rank's run, :mod:`em_dist.ranks.forked`)."""
    settled: Callable[[], None]
    """In a child that kept the run, once multiprocessing set the child up: start its background work."""


_live: list[tuple[Run, Hooks]] = []
_install_lock = threading.Lock()  # register only
_installed: list[bool] = []
_uncaught: list[BaseException] = []
_exit_code: list[Any] = []
_previous_hook = None
_original_exit = sys.exit
_child_watched = False  # multiprocessing's exit finalizer that finishes the runs is registered


def register(run: Run, hooks: Hooks) -> None:
    """Track ``run`` until it finishes; installs the exit hooks on first use."""
    _live.append((run, hooks))
    if not _installed:
        with _install_lock:
            if not _installed:
                _installed.append(True)
                _install()
    _watch_multiprocessing_child()


def unregister(run: Run) -> None:
    for entry in list(_live):
        if entry[0] is run:
            try:
                _live.remove(entry)
            except ValueError:  # a signal's finishing thread removed it meanwhile
                pass


def live_runs() -> list[Run]:
    """The runs of this process that are not finished yet, oldest first."""
    return [run for run, _ in list(_live)]


def adopt_spawned(run: Run, hooks: Hooks) -> None:
    """Track a Run that re-attached in a process that unpickled it (:mod:`em_dist.ranks.spawned`)
    and start its background work.

    Unpickled while a ``multiprocessing`` spawn child is being set up (before its
    ``_bootstrap``, which neither clears finalizers nor runs after-fork callbacks for spawn),
    the child's end is watched from multiprocessing's exit finalizers, as in a fork child.
    """
    register(run, hooks)
    mp = sys.modules.get("multiprocessing")
    if mp is not None and getattr(mp.current_process(), "_inheriting", False):
        _watch_child_end()
    hooks.settled()


def current() -> Run | None:
    """The most recently created run that is not finished yet, if any."""
    live = list(_live)
    return live[-1][0] if live else None


def _install() -> None:
    global _previous_hook
    _previous_hook = sys.excepthook
    sys.excepthook = _excepthook
    sys.exit = _exit
    atexit.register(_at_exit)


def _excepthook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    _uncaught.append(exc)
    hook = _previous_hook or sys.__excepthook__
    hook(exc_type, exc, tb)


def _exit(status: Any = None) -> NoReturn:
    """``sys.exit`` that notes the exit status of the main thread (then exits as ever)."""
    if threading.current_thread() is threading.main_thread():
        _exit_code[:] = [status]
    _original_exit(status)


def _ending() -> tuple[str, str | None]:
    """The status and reason a run left unfinished at exit deserves."""
    if _uncaught:
        exc = _uncaught[0]
        return "Failed", f"exception: {type(exc).__name__}: {exc}"
    if _exit_code and _exit_code[0] not in (None, 0):
        return "Failed", f"exit code: {_exit_code[0]}"
    return "Succeeded", None


def _at_exit() -> None:
    from .artifact import discard_partial

    discard_partial()  # a daemon thread's artifact copy, cut by the exit: never left half-written
    status, reason = _ending()
    for run, hooks in reversed(list(_live)):
        hooks.finish(*_after_signals(run, status, reason))


def _after_signals(run: Any, status: str, reason: str | None) -> tuple[str, str | None]:
    """A run that got a signal and was not finished by the program: the signal ended it."""
    if status == "Succeeded" and run.signals:
        return "Failed", f"signal: {run.signals[-1]}"
    return status, reason


def _watch_multiprocessing_child() -> None:
    """In a multiprocessing child, finish the runs among multiprocessing's exit finalizers
    (its ``_bootstrap`` runs them, then leaves by ``os._exit``: atexit never runs there)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None:
        return
    _watch_child_end()


def _watch_child_end() -> None:
    """Finish the runs among multiprocessing's exit finalizers (once per process)."""
    from multiprocessing import util

    global _child_watched
    if not _child_watched:
        util.Finalize(None, _at_child_exit, exitpriority=100)
        _child_watched = True


def _at_child_exit() -> None:
    status, reason = _ending()
    exc = sys.exc_info()[1]  # the child's target raising: multiprocessing runs us in a `finally`
    if exc is not None and not (isinstance(exc, SystemExit) and exc.code in (None, 0)):
        status = "Failed"
        reason = f"exit code: {exc.code}" if isinstance(exc, SystemExit) else f"exception: {type(exc).__name__}: {exc}"
    for run, hooks in reversed(list(_live)):
        hooks.finish(*_after_signals(run, status, reason))


def _forget_after_fork() -> None:
    """A fork child does not own its parent's runs: it must neither finish nor write them. A run
    that may become the child's rank's run (``ddp_fork``) is handed to :mod:`em_dist.ranks.forked`."""
    global _child_watched
    kept = []
    for entry in list(_live):
        try:
            if entry[1].after_fork():
                kept.append(entry)
        except Exception:  # noqa: BLE001 - a fork must never fail over tracking; the run stays the parent's
            pass
    _live[:] = kept
    _uncaught.clear()
    _exit_code.clear()
    _child_watched = False
    if kept and "multiprocessing.util" in sys.modules:
        # A multiprocessing child clears its finalizers after this hook, then runs its after-fork
        # callbacks: watch for the child's end from there.
        sys.modules["multiprocessing.util"].register_after_fork(_AFTER_MP_FORK, _watch_after_mp_fork)


class _Anchor:
    """Something ``multiprocessing.util.register_after_fork`` can hold a weak reference to."""


_AFTER_MP_FORK = _Anchor()


def _watch_after_mp_fork(_: object) -> None:
    """In a multiprocessing child, once multiprocessing set it up (threads may start here, unlike
    in the at-fork hook): watch for its end and let kept runs start their background work."""
    _watch_multiprocessing_child()
    for _run, hooks in list(_live):
        hooks.settled()


os.register_at_fork(after_in_child=_forget_after_fork)
