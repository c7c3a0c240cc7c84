"""Host and process facts: cheap, torch-free probes of the machine a rank runs on.

Each function is best-effort: on any failure it returns ``None`` instead of raising,
because platform info is a nice-to-have and must never stop a training job.
"""

from __future__ import annotations

import os
import platform
import socket
import sys

_PROC_CPUINFO = "/proc/cpuinfo"
_PROC_MEMINFO = "/proc/meminfo"


def process_running(pid: int) -> bool:
    """Whether process ``pid`` of this host (and pid namespace) still runs. One that exited is not
    running even while it waits, a zombie, for its parent to reap it; a process of another user is
    (it exists). Without /proc (not Linux) only whether the pid exists is known."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: it exists
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[-1].split()[0]
    except FileNotFoundError:
        return not os.path.isdir("/proc")  # it ended since the kill above, or this system has no /proc
    except (OSError, IndexError):
        return True  # it exists; whether it already exited can't be read
    return state not in (b"Z", b"X")


def hostname() -> str | None:
    """Return this host's name."""
    try:
        return socket.gethostname()
    except OSError:
        return None


def os_string() -> str | None:
    """Return a ``platform.platform()``-style string such as ``Linux-6.1.0-x86_64-with-glibc2.36``.

    ``platform.platform()`` forks ``uname -p`` and scans the interpreter binary
    (about 20 ms), so on POSIX the same facts are read from ``os.uname`` and
    ``os.confstr`` instead.
    """
    try:
        if hasattr(os, "uname"):
            uname = os.uname()
            text = f"{uname.sysname}-{uname.release}-{uname.machine}"
            try:
                libc = os.confstr("CS_GNU_LIBC_VERSION")  # e.g. "glibc 2.36"
            except (ValueError, OSError, AttributeError):
                libc = None
            if libc:
                text += "-with-" + libc.replace(" ", "")
            return text
        return platform.platform()
    except Exception:  # noqa: BLE001 - best effort by contract
        return None


def cpu_model() -> str | None:
    """Return the CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        if os.path.exists(_PROC_CPUINFO):
            with open(_PROC_CPUINFO, encoding="utf-8", errors="replace") as f:
                fallback = None
                for line in f:
                    key, sep, value = line.partition(":")
                    if not sep:
                        continue
                    key = key.strip().lower()
                    if key == "model name":
                        return value.strip() or None
                    if key in ("hardware", "model", "cpu model", "uarch") and fallback is None:
                        fallback = value.strip() or None
                if fallback:
                    return fallback
            return platform.machine() or None
        return platform.processor() or platform.machine() or None
    except Exception:  # noqa: BLE001
        return None


def cpu_count_available() -> int | None:
    """Return how many CPUs this process may run on (its affinity mask), or None if unknown."""
    try:
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count()
    except Exception:  # noqa: BLE001
        return None


def memory_total_bytes() -> int | None:
    """Return the host's physical memory in bytes."""
    try:
        if os.path.exists(_PROC_MEMINFO):
            with open(_PROC_MEMINFO, encoding="ascii", errors="replace") as f:
                for line in f:
                    if line.startswith("MemTotal:"):
                        parts = line.split()
                        factor = 1024 if len(parts) > 2 and parts[2].lower() == "kb" else 1
                        return int(parts[1]) * factor
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except Exception:  # noqa: BLE001
        return None


def safe_cwd() -> str | None:
    """Return the working directory (None if it was deleted under us)."""
    try:
        return os.getcwd()
    except OSError:
        return None


def command() -> list[str]:
    """Return the command line as the interpreter saw it (``sys.argv``)."""
    try:
        return [str(a) for a in sys.argv]
    except Exception:  # noqa: BLE001
        return []
