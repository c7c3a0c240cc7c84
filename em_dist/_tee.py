"""The capture's pass-through process (started by :mod:`em_dist.capture`; standard library only).

Run as ``python -I -S _tee.py OUT_R ERR_R OUT_ORIG ERR_ORIG CTL_R RET_W``. It reads the two
pipes that fd 1 and fd 2 of the training process now point at, writes every byte on to the
original fds at once (the terminal, the launcher's pipe), and forwards it to the training
process's capture thread over ``RET_W`` as frames ``tag (1 byte) + length (4 bytes) + data``
(``o`` stdout, ``e`` stderr, ``s`` a sync answer, ``d`` bytes not forwarded), each header
``<tag><length: uint32><read time: float64>`` (little-endian), then the data.

Why a process of its own: what a script printed just before it died (``kill -9``, a
segfault's faulthandler dump, ``os._exit``) is in the pipe, not yet read; a thread would die
with the process and the bytes would never reach the terminal. This process outlives it,
passes the rest on, and exits when every writer closed the pipes. It needs no GIL of the
training process, so a C extension printing while it holds the GIL never waits for it.

``RET_W`` is non-blocking: while the capture thread is behind, frames wait here (up to
:data:`BACKLOG` bytes, then the oldest are counted and dropped), never in the pipes the
script writes to. A byte on ``CTL_R`` asks for a sync: every byte already in the pipes is
read and forwarded, then an ``s`` frame. ``CTL_R`` closing (the run stopped capturing, or the
process died) ends the forwarding; the pass-through goes on until the pipes close.
"""

import os
import select
import signal
import struct
import sys
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


def main(argv: list[str]) -> None:
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # a Ctrl-C or a launcher's TERM is for the script, not for us
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    out_r, err_r, out_orig, err_orig, ctl_r, ret_w = (int(a) for a in argv)
    os.set_blocking(ret_w, False)
    inputs = {out_r: (b"o", out_orig), err_r: (b"e", err_orig)}
    poller = select.poll()
    for fd in inputs:
        poller.register(fd, select.POLLIN)
    poller.register(ctl_r, select.POLLIN)
    backlog = bytearray()
    forwarding = True
    dropped = 0

    def take(fd: int) -> bool:
        try:
            data = os.read(fd, _READ)
        except OSError:
            data = b""
        tag, orig = inputs[fd]
        if not data:
            poller.unregister(fd)
            del inputs[fd]
            os.close(fd)
            return False
        _write_all(orig, data)
        if forwarding:
            backlog.extend(tag + struct.pack("<Id", len(data), time.time()) + data)
        return True

    while inputs:
        try:
            events = poller.poll(20 if backlog else None)
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
                backlog.extend(b"s" + struct.pack("<Id", len(asks), time.time()) + asks)
            elif fd in inputs:
                take(fd)
        if forwarding and backlog:
            if len(backlog) > BACKLOG:  # the capture thread is far behind: the oldest go, counted
                dropped += len(backlog)
                backlog.clear()
                note = str(dropped).encode()
                backlog.extend(b"d" + struct.pack("<Id", len(note), time.time()) + note)
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
