"""Captured output: what this process writes to stdout and stderr, still shown, and recorded line by line.

Capture works on the file descriptors, not on ``sys.stdout``: fd 1 and fd 2 are
``dup2``-ed onto two pipes, so Python's ``print``, ``os.write(1, ...)``, C extensions
and subprocesses that inherit the fds (``subprocess.run``) all land there. One daemon
thread (``em_dist-output``) reads both pipes, writes every byte on to the original fd at
once (the terminal, torchrun's pipe, a file: the output is shown as before), and hands
each line, with the time it was read, to every live run that captures (as a record of
:func:`em_dist.store.lines.output_record`, appended to the run's record buffer: the
writer and the peers' forwarder carry it like a metric).

What it guarantees, and how:

- **The training thread is never held longer than by the terminal.** The thread reads as
  soon as a pipe has data and its only blocking call is the write to the original fd;
  handing a line on is a deque append. The pipes are enlarged (``F_SETPIPE_SZ``) so a burst
  does not wait for the thread to be scheduled. (A C extension that prints more than a
  pipe holds *while holding the GIL* would wait for this thread, which needs the GIL; the
  pipe size makes that a megabyte of output in one call.)
- **kill -9 loses at most one interval.** A complete line is recorded when it is read; a
  partial line (no newline yet: ``print(..., end="")``, a progress bar) is recorded as it
  stands once it is half an interval old, and what follows starts a new line. The writer
  then puts it on disk within its flush interval.
- **Bytes are kept as they are**: non-UTF-8 bytes are shown as ``\\xNN``, NUL as ``\\x00``;
  a carriage return keeps what a terminal would show (the text after it); a line longer
  than :data:`em_dist.limits.MAX_OUTPUT_LINE_CHARS` is cut into several.
- **The fds come back**: the last run to stop capturing flushes ``sys.stdout`` and
  ``sys.stderr`` (so Python's buffered text is captured, not written past us), then puts
  the original fds back, but only where fd 1 / fd 2 still are our pipes (pytest and other
  tools that swapped them meanwhile keep theirs). The thread then reads what is left and
  goes on passing through (not recording) what subprocesses that outlive the run still
  write, until they close the pipe. A fork child (``os.fork``, ``multiprocessing`` with
  fork) gets the original fds back at once: it has no reading thread. ``subprocess``
  children (fork + exec in C) keep the pipes and are captured.
- **No locks on the signal path**: subscribers are a list replaced whole (atomic under the
  GIL), the state is plain attributes; a signal's finishing thread may stop the capture.
"""

from __future__ import annotations

import fcntl
import os
import select
import sys
import threading
import time
from collections import deque
from typing import Callable

from ._warn import warn_once
from .limits import MAX_OUTPUT_LINE_CHARS
from .store.lines import output_record

Deliver = Callable[[str], None]
"""Takes one captured line as a record (``output_record(...)``): a run's buffer append."""

PIPE_BYTES = 1 << 20
"""Pipe size asked for (Linux caps it at ``/proc/sys/fs/pipe-max-size``, 1 MiB by default)."""
_READ = 1 << 16
_FDS = ((1, "out"), (2, "err"))


class _Stream:
    """One captured fd: the pipe it now points at, the original it is passed on to, the partial line."""

    def __init__(self, fd: int, name: str) -> None:
        self.fd, self.name = fd, name
        self.saved = os.dup(fd)  # the original (terminal, launcher's pipe, file)
        self.read_fd, write_fd = os.pipe()
        try:
            fcntl.fcntl(write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except OSError:
            pass  # a smaller pipe still works; it just fills sooner
        os.set_inheritable(self.saved, False)
        os.dup2(write_fd, fd)  # fd 1/2 stay inheritable: subprocesses write into the pipe
        self.pipe_id = _ident(write_fd)
        os.close(write_fd)
        self.partial = bytearray()
        self.partial_since = 0.0
        self.open = True

    def restore(self) -> None:
        """Put the original fd back, unless someone replaced ours meanwhile (then theirs stays)."""
        try:
            if _ident(self.fd) == self.pipe_id:
                os.dup2(self.saved, self.fd)
        except OSError:
            pass


class OutputCapture:
    """Fds 1 and 2 onto pipes, and the thread that shows and records what comes through."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._subscribers: list[Deliver] = []
        self._streams: list[_Stream] = []
        try:
            for fd, name in _FDS:
                self._streams.append(_Stream(fd, name))
        except OSError:
            self._undo()
            raise
        self._wake_r, self._wake_w = os.pipe()  # sync() wakes the thread's poll through it
        self._syncs: deque[threading.Event] = deque()  # set once all written before them is handed on
        self._thread = threading.Thread(target=self._loop, name="em_dist-output", daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------
    def subscribe(self, deliver: Deliver, timeout: float) -> None:
        """Hand ``deliver`` what is written from now on (not what an earlier run's lines still in the pipe)."""
        self.sync(timeout)
        self._subscribers = [*self._subscribers, deliver]

    def unsubscribe(self, deliver: Deliver, timeout: float) -> None:
        """Stop handing lines to ``deliver``, once what was written before is handed to it."""
        self.sync(timeout)
        self._subscribers = [d for d in self._subscribers if d is not deliver]

    def sync(self, timeout: float) -> bool:
        """Flush Python's buffers and wait (at most ``timeout``) until every byte written to the fds
        before the call is read and handed on (a partial line then ends)."""
        for f in (sys.stdout, sys.stderr):
            try:
                if f is not None:
                    f.flush()
            except Exception:  # noqa: BLE001 - a closed or odd stream must not stop the finish
                pass
        done = threading.Event()
        self._syncs.append(done)
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            return False
        return done.wait(timeout)

    def stop(self, timeout: float) -> None:
        """Give the fds back, hand on what was written before (waiting at most ``timeout``), then only
        pass through what subprocesses that outlive the run still write."""
        for f in (sys.stdout, sys.stderr):  # Python's buffered text goes through us, not past us
            try:
                if f is not None:
                    f.flush()
            except Exception:  # noqa: BLE001
                pass
        for s in self._streams:
            s.restore()
        self.sync(timeout)
        self._subscribers = []

    # -- the thread -----------------------------------------------------------------
    def _loop(self) -> None:
        poller = select.poll()
        by_fd = {s.read_fd: s for s in self._streams}
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        half = self._interval / 2
        while by_fd:
            pending = any(s.partial for s in by_fd.values())
            wait = 0.02 if self._syncs else (half if pending else half * 4)
            try:
                events = poller.poll(wait * 1000)
            except InterruptedError:
                continue
            now = time.time()
            if any(fd == self._wake_r for fd, _ in events):
                os.read(self._wake_r, 64)
                events = [e for e in events if e[0] != self._wake_r]  # a wake alone: no data below
            for fd, _ in events:
                s = by_fd[fd]
                try:
                    data = os.read(fd, _READ)
                except OSError:
                    data = b""
                if not data:  # every writer closed it: the end of this stream
                    poller.unregister(fd)
                    del by_fd[fd]
                    s.open = False
                    self._end_partial(s, now)
                    os.close(fd)
                    continue
                _show(s.saved, data)
                self._split(s, data, now)
            for s in by_fd.values():
                if s.partial and now - s.partial_since >= half:
                    self._end_partial(s, now)
            if self._syncs and not events:  # the pipes are empty: all written before a sync is handed on
                for s in by_fd.values():
                    self._end_partial(s, now)
                while self._syncs:
                    self._syncs.popleft().set()
        while self._syncs:
            self._syncs.popleft().set()
        for fd in [s.saved for s in self._streams] + [self._wake_r, self._wake_w]:
            try:
                os.close(fd)
            except OSError:
                pass

    def _split(self, s: _Stream, data: bytes, now: float) -> None:
        if not s.partial:
            s.partial_since = now
        s.partial += data
        buf = s.partial
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            self._record(s, bytes(buf[start:nl]), now)
            start = nl + 1
        if start:
            del buf[:start]
            s.partial_since = now
        while len(buf) > MAX_OUTPUT_LINE_CHARS:  # a line that never ends: cut it
            self._record(s, bytes(buf[:MAX_OUTPUT_LINE_CHARS]), now)
            del buf[:MAX_OUTPUT_LINE_CHARS]

    def _end_partial(self, s: _Stream, now: float) -> None:
        if s.partial:
            self._record(s, bytes(s.partial), now)
            s.partial.clear()

    def _record(self, s: _Stream, raw: bytes, now: float) -> None:
        subscribers = self._subscribers
        if not subscribers:
            return
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        cr = raw.rfind(b"\r")
        if cr >= 0:  # what the terminal shows: the text after the last carriage return
            raw = raw[cr + 1:]
        text = raw.decode("utf-8", "backslashreplace")
        if "\x00" in text:
            text = text.replace("\x00", "\\x00")
        line = output_record(now, s.name, text)
        for deliver in subscribers:
            try:
                deliver(line)
            except Exception:  # noqa: BLE001 - a subscriber's trouble must not stop the capture
                pass

    def _undo(self) -> None:
        """Give the fds back and close ours, with no thread (a failed start; a fork child)."""
        fds = [getattr(self, "_wake_r", -1), getattr(self, "_wake_w", -1)]
        for s in self._streams:
            s.restore()
            fds += [s.read_fd, s.saved]
        for fd in fds:
            try:
                if fd >= 0:
                    os.close(fd)
            except OSError:
                pass
        self._streams = []


def _show(fd: int, data: bytes) -> None:
    """Pass ``data`` on to the original fd (blocking, as the script's own write would have been)."""
    view, done = memoryview(data), 0
    while done < len(data):
        try:
            done += os.write(fd, view[done:])
        except InterruptedError:
            continue
        except OSError:
            return  # the terminal is gone (EPIPE, EIO): still recorded, no longer shown


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


# -- the one capture of this process ---------------------------------------------------
_active: list[OutputCapture] = []  # at most one; a list so a fork hook can clear it without a global


def start(deliver: Deliver, interval: float) -> bool:
    """Hand this process's output lines to ``deliver`` from now on (starting the capture when it is
    the first); False when the fds can't be captured here (closed, not a POSIX system)."""
    if _active:
        _active[0].subscribe(deliver, interval)
        return True
    try:
        capture = OutputCapture(interval)
    except (OSError, AttributeError, ValueError) as exc:
        warn_once("capture", f"em_dist: stdout/stderr can't be captured here ({exc!r}); the run records no output")
        return False
    capture._subscribers = [deliver]  # a new capture: nothing earlier is in its pipes
    _active.append(capture)
    return True


def stop(deliver: Deliver, timeout: float) -> None:
    """Stop handing lines to ``deliver``; the last one out gives the fds back (what was written
    before is handed to ``deliver`` first, waiting at most ``timeout``)."""
    if not _active:
        return
    capture = _active[0]
    if len(capture._subscribers) > 1 or deliver not in capture._subscribers:
        capture.unsubscribe(deliver, timeout)
        return
    try:
        _active.remove(capture)
    except ValueError:
        return  # another thread is stopping it
    capture.stop(timeout)


def _forget_after_fork() -> None:
    """A fork child has no reading thread: its fds go back to the originals (its output is shown, not recorded)."""
    for capture in _active:
        capture._undo()
    _active.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
