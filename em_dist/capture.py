"""Captured output: what this process writes to stdout and stderr, still shown, and recorded line by line.

Capture works on the file descriptors, not on ``sys.stdout``: fd 1 and fd 2 are ``dup2``-ed
onto what the pass-through process reads, so Python's ``print``, ``os.write(1, ...)``, C
extensions and subprocesses that inherit the fds (``subprocess.run``) all land there. What
they are pointed at depends on what they were, so that the program can't tell:

- **a terminal**: a pseudo-terminal with the terminal's modes and size (the pass-through
  process copies a new size on ``SIGWINCH``), so ``isatty()``, ``os.get_terminal_size()``,
  colours, progress bars, line-buffered children and readline (stdin is left alone) stay as
  they were. Output processing is the real terminal's (``OPOST`` is off on ours): the bytes
  reach it as written.
- **anything else** (a launcher's pipe, a file): a pipe.
- fd 1 and fd 2 that were **one** terminal or one pipe stay one: a single channel, so their
  order is the order written and no line of one is cut into by the other (recorded as ``out``).

A small pass-through process (:mod:`em_dist._tee`) reads each channel, writes every byte on
to the original fd at once and forwards it, with the time it was read, to one daemon thread
here (``em_dist-output``), which cuts it into lines and hands each to every live run that
captures (as a record of :func:`em_dist.store.lines.output_record`, appended to the run's
record buffer: the writer and the peers' forwarder carry it like a metric). That process is
nobody's child here (it is started through one that exits at once), so ``os.wait()`` never
meets it. Terminal control sequences are shown, not recorded.

What it guarantees, and how:

- **The training thread is never held longer than by the terminal.** The pass-through
  process reads as soon as a pipe has data; its only blocking call is the write to the
  original fd, and it holds what this process's thread has not taken yet in its own memory
  (non-blocking forwarding), so neither the GIL nor a slow run slows the pipes. The pipes
  are enlarged (``F_SETPIPE_SZ``) for bursts.
- **Shown even when the process dies:** what was printed just before a ``kill -9`` or a
  segfault (faulthandler's dump) is still in the pipe; the pass-through process outlives
  the script, shows the rest and exits when every writer has closed the pipes. It
  ignores SIGINT, SIGTERM and SIGHUP (they are the script's to handle).
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
  tools that swapped them meanwhile keep theirs), and what was written before is handed
  to the run; then it waits (bounded) for the pass-through process to end, so it is gone
  when the script is. It goes on showing (not recording) what subprocesses that outlive
  the run still write, until they close the pipes. A fork child (``os.fork``, ``multiprocessing`` with
  fork) gets the original fds back at once: it has no reading thread. ``subprocess``
  children (fork + exec in C) keep the pipes and are captured.
- **No locks on the signal path**: subscribers are a list replaced whole (atomic under the
  GIL), the state is plain attributes; a signal's finishing thread may stop the capture.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import stat
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from typing import Callable

from ._warn import warn_once
from .limits import MAX_OUTPUT_LINE_CHARS
from .platform.host import process_running
from .store.lines import output_record

Deliver = Callable[[str], None]
"""Takes one captured line as a record (``output_record(...)``): a run's buffer append."""

PIPE_BYTES = 1 << 20
"""Pipe size asked for (Linux caps it at ``/proc/sys/fs/pipe-max-size``, 1 MiB by default)."""
_READ = 1 << 16
PASSTHROUGH_END_WAIT = 2.0
"""The most stopping waits for the pass-through process to end: milliseconds when no subprocess holds
the output; the bound leaves room for a busy machine, where ending one process can take a scheduler
round of half a second."""
_ESCAPES = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
"""Terminal control sequences (colours, cursor moves, titles): shown on the terminal, not recorded."""
_HEADER = 13
"""A frame from the pass-through process: tag (1 byte), length (uint32), read time (float64); see em_dist._tee."""


class _Stream:
    """One captured target: the fds that wrote to it (1, 2, or both when they were one terminal or
    one pipe), the pipe or pseudo-terminal they now point at, the original it is passed on to, the
    partial line."""

    def __init__(self, fds: tuple[int, ...], name: str) -> None:
        self.fds, self.name = fds, name
        self.saved = os.dup(fds[0])  # the original (terminal, launcher's pipe, file); not inheritable
        self.tty = os.isatty(self.saved)
        if self.tty:  # a pseudo-terminal: the program still sees a terminal (isatty, size, colours, line buffering)
            try:
                self.read_fd, self.write_fd = os.openpty()
            except OSError:  # no pseudo-terminals here: a pipe, as elsewhere
                self.tty = False
            else:
                try:
                    _mirror_terminal(self.saved, self.write_fd)
                except OSError:  # a terminal that hung up: a pipe, as elsewhere
                    os.close(self.read_fd)
                    os.close(self.write_fd)
                    self.tty = False
        if not self.tty:
            self.read_fd, self.write_fd = os.pipe()
            try:
                fcntl.fcntl(self.write_fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
            except OSError:
                pass  # a smaller pipe still works; it just fills sooner
        self.pipe_id = _ident(self.write_fd)
        self.partial = bytearray()
        self.partial_since = 0.0

    def spec(self) -> str:
        """This channel as the pass-through process's argument ``TAG:READ_FD:ORIG_FD:KIND``."""
        return f"{self.name[0]}:{self.read_fd}:{self.saved}:{'t' if self.tty else 'p'}"

    def close(self) -> None:
        """Close this channel's fds (a failed start)."""
        for fd in (self.saved, self.read_fd, self.write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def redirect(self) -> None:
        for fd in self.fds:
            os.dup2(self.write_fd, fd)  # fd 1/2 stay inheritable: subprocesses write into the pipe
        os.close(self.write_fd)
        self.write_fd = -1

    def restore(self) -> None:
        """Put the original fds back, unless someone replaced ours meanwhile (then theirs stays)."""
        for fd in self.fds:
            try:
                if _ident(fd) == self.pipe_id:
                    os.dup2(self.saved, fd)
            except OSError:
                pass


def _mirror_terminal(terminal: int, slave: int) -> None:
    """The pseudo-terminal takes the terminal's modes and size; output processing is left to the
    terminal (``OPOST`` off here), so the bytes reach it as the program wrote them."""
    attrs = termios.tcgetattr(terminal)
    attrs[1] &= ~termios.OPOST
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, fcntl.ioctl(terminal, termios.TIOCGWINSZ, b"\0" * 8))


def _channels() -> list[_Stream]:
    """fd 1 and fd 2 as channels: one for both when they are one terminal or one pipe (then their
    order is the order written, and no line of one is cut by the other), else one each."""
    if _ident(1) == _ident(2):
        return [_Stream((1, 2), "out")]
    out = _Stream((1,), "out")
    try:
        return [out, _Stream((2,), "err")]
    except OSError:
        out.close()
        raise


class OutputCapture:
    """Fds 1 and 2 onto pipes read by the pass-through process (:mod:`em_dist._tee`), and the
    thread that records what it forwards."""

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._subscribers: list[Deliver] = []
        self._streams: list[_Stream] = []
        self._fds: list[int] = []  # ours to close at the end
        self._syncs: deque[threading.Event] = deque()  # set once all written before them is handed on
        if not sys.executable:
            raise OSError("no Python interpreter to start the pass-through process with")
        self.pid = 0  # the pass-through process's, once it said it (its first frame)
        self._streams = _channels()
        try:
            ctl_r, self._ctl_w = os.pipe()
            self._fds += [ctl_r, self._ctl_w]
            self._ret_r, ret_w = os.pipe()
            self._fds += [self._ret_r, ret_w]
            fds = (ctl_r, ret_w, *(fd for s in self._streams for fd in (s.read_fd, s.saved)))
            # --detach: the process started here exits at once (reaped by the thread); the one that
            # passes output through is its child, nobody's child here (os.wait() never meets it)
            self._starter = subprocess.Popen(
                [sys.executable, "-I", "-S", os.path.join(os.path.dirname(__file__), "_tee.py"), "--detach",
                 str(ctl_r), str(ret_w), *(s.spec() for s in self._streams)],
                pass_fds=fds, stdin=subprocess.DEVNULL, start_new_session=False)
            for fd in (ctl_r, ret_w):
                self._close(fd)  # the pass-through process holds them now
            for stream in self._streams:
                os.close(stream.read_fd)
                stream.read_fd = -1
        except (OSError, subprocess.SubprocessError):
            self._undo()
            raise
        for stream in self._streams:
            stream.redirect()
        self._thread = threading.Thread(target=self._loop, name="em_dist-output", daemon=True)
        self._thread.start()

    # -- any thread ---------------------------------------------------------------
    def subscribe(self, deliver: Deliver, timeout: float) -> None:
        """Hand ``deliver`` what is written from now on (not an earlier run's lines still in the pipes)."""
        self.sync(timeout)
        self._subscribers = [*self._subscribers, deliver]

    def unsubscribe(self, deliver: Deliver, timeout: float) -> None:
        """Stop handing lines to ``deliver``, once what was written before is handed to it."""
        self.sync(timeout)
        self._subscribers = [d for d in self._subscribers if d is not deliver]

    def sync(self, timeout: float) -> bool:
        """Flush Python's buffers and wait (at most ``timeout``) until every byte written to the fds
        before the call is read and handed on (a partial line then ends)."""
        _flush_python()
        done = threading.Event()
        self._syncs.append(done)
        try:
            os.write(self._ctl_w, b"s")
        except OSError:
            return False
        return done.wait(timeout)

    def stop(self, timeout: float) -> None:
        """Give the fds back, hand on what was written before (waiting at most ``timeout``); the
        pass-through process goes on showing what subprocesses that outlive the run still write."""
        _flush_python()  # Python's buffered text goes through us, not past us
        for s in self._streams:
            s.restore()
        self.sync(timeout)
        self._subscribers = []
        self._close(self._ctl_w)  # the pass-through process stops forwarding; the thread sees the end
        # it ends when every writer closed the pipes: now, unless subprocesses still hold them
        # (persistent DataLoader workers): then it lives as long as they do, and this wait is short
        until = time.monotonic() + min(timeout, PASSTHROUGH_END_WAIT)
        self._thread.join(min(timeout, PASSTHROUGH_END_WAIT))
        if not self._thread.is_alive() and self.pid:
            # The thread saw the pipes close, which the pass-through process does on its way out, and a
            # loaded machine may take a while to end it after that. It is nobody's child here (no
            # waitpid): look until it has exited, within the same bound, so that a script that leaves
            # by os._exit right after finish() leaves no process behind it even for a moment.
            while process_running(self.pid) and time.monotonic() < until:
                time.sleep(0.005)

    # -- the thread -----------------------------------------------------------------
    def _loop(self) -> None:
        self._reap_starter()
        by_tag = {s.name[:1].encode(): s for s in self._streams}
        half = self._interval / 2
        buf = bytearray()
        poller = select.poll()
        poller.register(self._ret_r, select.POLLIN)
        while True:
            pending = any(s.partial for s in self._streams)
            try:
                events = poller.poll((half if pending else half * 4) * 1000)
            except InterruptedError:
                continue
            now = time.time()
            if events:
                try:
                    data = os.read(self._ret_r, _READ)
                except OSError:
                    data = b""
                if not data:
                    break
                buf += data
                while len(buf) >= _HEADER:
                    size, read_at = struct.unpack_from("<Id", buf, 1)
                    if len(buf) < _HEADER + size:
                        break
                    tag, body = bytes(buf[:1]), bytes(buf[_HEADER:_HEADER + size])
                    del buf[:_HEADER + size]
                    now = min(read_at, time.time())  # the time the pass-through process read it
                    if tag in by_tag:
                        self._split(by_tag[tag], body, now)
                    elif tag == b"s":
                        for s in self._streams:
                            self._end_partial(s, now)
                        for _ in range(len(body)):
                            if self._syncs:
                                self._syncs.popleft().set()
                    elif tag == b"p":
                        self.pid = int(body)
                    elif tag == b"d":
                        self._note(f"[em_dist] {body.decode()} bytes of output were shown but not recorded "
                                   "(the capture fell behind)", now)
            now = time.time()
            for s in self._streams:
                if s.partial and now - s.partial_since >= half:
                    self._end_partial(s, now)
        # the pass-through process stopped forwarding (stop()), or died: then give the fds back
        for s in self._streams:
            self._end_partial(s, time.time())
            s.restore()
        while self._syncs:
            self._syncs.popleft().set()
        self._close(self._ret_r)
        if self._ctl_w in self._fds:  # the pass-through process died while capturing: fds back
            self._undo()

    def _reap_starter(self) -> None:
        """Reap the process that started the pass-through one (it exits at once)."""
        try:
            self._starter.wait(60)
        except (subprocess.TimeoutExpired, OSError):
            pass  # still starting on a machine under load: Popen reaps it later

    def _note(self, text: str, now: float) -> None:
        for deliver in self._subscribers:
            try:
                deliver(output_record(now, "em", text))
            except Exception:  # noqa: BLE001
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
        if b"\x1b" in raw:
            raw = _ESCAPES.sub(b"", raw)
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
        """Give the fds back and close ours (a failed start, the end of the thread, a fork child)."""
        for s in self._streams:
            s.restore()
            self._fds += [fd for fd in (s.saved, s.read_fd, s.write_fd) if fd >= 0]
        self._streams = []
        for fd in list(self._fds):
            self._close(fd)

    def _close(self, fd: int) -> None:
        """Close one of our fds once (a number closed twice could be someone else's by then)."""
        if fd in self._fds:
            self._fds.remove(fd)
            try:
                os.close(fd)
            except OSError:
                pass


def _flush_python() -> None:
    for f in (sys.stdout, sys.stderr):
        try:
            if f is not None:
                f.flush()
        except Exception:  # noqa: BLE001 - a closed or odd stream must not stop the run
            pass


def pytest_capturing() -> bool:
    """True inside pytest's own fd capture (its default, and ``capfd``): fd 1 or 2 is the deleted
    temporary file pytest reads. Capturing on top of it would hand pytest a subprocess's lines
    late (through the pass-through process), so the capture is off there unless asked for."""
    if "_pytest.capture" not in sys.modules:
        return False
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink == 0:
            return True
    return False


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


def passthrough_pid(timeout: float = 5.0) -> int:
    """The pass-through process's pid (0 when nothing is captured): for tools and tests that check
    it is gone when the script is."""
    if not _active:
        return 0
    _active[0].sync(timeout)  # its first frame, with the pid, is handed on before the sync's answer
    return _active[0].pid


def _forget_after_fork() -> None:
    """A fork child has no reading thread: its fds go back to the originals (its output is shown, not recorded)."""
    for capture in _active:
        capture._undo()
    _active.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
