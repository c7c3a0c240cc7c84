"""The capture's pass-through process (started by :mod:`em_dist.capture`; standard library only).

Run as ``python -I -S _tee.py CTL_R RET_W CHANNEL...``, each channel ``TAG:READ_FD:ORIG_FD:KIND``
(``KIND`` ``p`` a pipe, ``t`` a pseudo-terminal's master). It reads what the training process
writes to fd 1 and fd 2 (one channel for both when they were one terminal or one pipe), writes
every byte on to the original fd at once (the terminal, the launcher's pipe), and forwards it to
the training process's capture thread over ``RET_W`` as frames, each header
``<tag><length: uint32><read time: float64>`` (little-endian), then the data: ``o`` stdout,
``e`` stderr, ``s`` a sync answer, ``d`` bytes not forwarded, ``p`` this process's pid (the
first frame).

Why a process of its own: what a script printed just before it died (``kill -9``, a
segfault's faulthandler dump, ``os._exit``) is in the pipe, not yet read; a thread would die
with the process and the bytes would never reach the terminal. This process outlives it,
passes the rest on, and exits when every writer closed the pipes. It needs no GIL of the
training process, so a C extension printing while it holds the GIL never waits for it.

Why it forks once more at start (``--detach``): the process the training process started exits
at once and is reaped by it; this one is nobody's child there, so a script that reaps its
children with ``os.wait()`` never meets it. It stays in the script's process group, so the
terminal's ``SIGWINCH`` reaches it: it copies the terminal's new size onto the pseudo-terminal.

``RET_W`` is non-blocking: while the capture thread is behind, frames wait here (up to
:data:`BACKLOG` bytes, then the oldest are counted and dropped), never in the pipes the
script writes to. A byte on ``CTL_R`` asks for a sync: every byte already in the pipes is
read and forwarded, then an ``s`` frame. ``CTL_R`` closing (the run stopped capturing, or the
process died) ends the forwarding; the pass-through goes on until the pipes close.
"""

import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time

BACKLOG = 64 << 20
_READ = 1 << 16


def _write_all(fd: int, data: bytes) -> None:
    view, done = memoryview(data), 0
    while done < len(data):
        try:
            done += os.write(fd, view[done:])
        except InterruptedError:
            continue
        except OSError:
            return  # the terminal is gone: nothing left to show it to


def _frame(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("<Id", len(body), time.time()) + body


def copy_size(orig: int, master: int) -> None:
    """The terminal's size onto the pseudo-terminal (what ``os.get_terminal_size(1)`` reads)."""
    try:
        size = fcntl.ioctl(orig, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(master, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def main(argv: list[str]) -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # a Ctrl-C or a launcher's TERM is for the script, not for us
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    if argv and argv[0] == "--detach":
        argv = argv[1:]
        if os.fork():
            os._exit(0)  # the training process reaps this one at once; the child goes on, nobody's child there
    ctl_r, ret_w = int(argv[0]), int(argv[1])
    inputs: dict[int, tuple[bytes, int]] = {}
    ptys: list[tuple[int, int]] = []
    for spec in argv[2:]:
        tag, read_fd, orig_fd, kind = spec.split(":")
        inputs[int(read_fd)] = (tag.encode(), int(orig_fd))
        if kind == "t":
            ptys.append((int(orig_fd), int(read_fd)))

    def resized(*_: object) -> None:
        for terminal, master in ptys:
            copy_size(terminal, master)

    if ptys:
        signal.signal(signal.SIGWINCH, resized)
        resized()  # a resize between the script's copy and this handler
    os.set_blocking(ret_w, False)
    poller = select.poll()
    for fd in inputs:
        poller.register(fd, select.POLLIN)
    poller.register(ctl_r, select.POLLIN)
    backlog = bytearray(_frame(b"p", str(os.getpid()).encode()))
    forwarding = True
    dropped = 0

    def take(fd: int) -> bool:
        try:
            data = os.read(fd, _READ)
        except InterruptedError:
            return True
        except OSError:  # EIO from a pseudo-terminal: every holder of its other side closed it
            data = b""
        tag, orig = inputs[fd]
        if not data:
            poller.unregister(fd)
            del inputs[fd]
            os.close(fd)
            return False
        _write_all(orig, data)
        if forwarding:
            backlog.extend(_frame(tag, data))
        return True

    while inputs:
        try:
            events = poller.poll(20 if backlog and forwarding else None)
        except InterruptedError:
            continue
        for fd, _ in events:
            if fd == ctl_r:
                try:
                    asks = os.read(ctl_r, 64)
                except OSError:
                    asks = b""
                if not asks:  # the run stopped capturing, or the process is gone
                    poller.unregister(ctl_r)
                    forwarding = False
                    backlog.clear()
                    continue
                for _ in range(4096):  # drain what is in the pipes now (bounded: writers go on)
                    ready = [f for f, _ in poller.poll(0) if f in inputs]
                    if not ready or not all(take(f) for f in ready):
                        break
                backlog.extend(_frame(b"s", asks))
            elif fd in inputs:
                take(fd)
        if forwarding and backlog:
            if len(backlog) > BACKLOG:  # the capture thread is far behind: the oldest go, counted
                dropped += len(backlog)
                backlog.clear()
                backlog.extend(_frame(b"d", str(dropped).encode()))
            try:
                n = os.write(ret_w, backlog)
                del backlog[:n]
            except BlockingIOError:
                pass
            except OSError:  # the training process is gone: pass through only
                forwarding = False
                backlog.clear()
    sys.exit(0)


if __name__ == "__main__":
    main(sys.argv[1:])
