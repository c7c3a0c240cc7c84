"""Process and host readings through psutil (optional: without it these metrics are absent).

A reader is made on the sampler thread and read there only; rates and CPU percentages
are over the time since the previous reading (the first reading after :meth:`open` covers
the time since it was opened).
"""

from __future__ import annotations

import time
from typing import Any

PROCESS_METRICS = ("cpu_percent", "rss_bytes", "threads", "open_files")
"""Metrics of each rank's own process."""
HOST_METRICS = ("host_cpu_percent", "host_memory_used_bytes", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
                "net_sent_bytes_per_s", "net_recv_bytes_per_s")
"""Metrics of the whole host, recorded once per host (by its local rank 0)."""


class ProcessReader:
    """This process: CPU percent (of one core; 200 is two cores busy), resident memory, threads, open files."""

    def __init__(self, psutil: Any) -> None:
        self._proc = psutil.Process()
        self._proc.cpu_percent(None)  # the first call only starts the interval

    @classmethod
    def open(cls) -> ProcessReader | None:
        """A reader of this process, or None without psutil."""
        psutil = _psutil()
        return cls(psutil) if psutil is not None else None

    def read(self) -> dict[str, float]:
        """One reading. ``open_files`` counts file descriptors (all of them: files, sockets, pipes)
        where the system has them: it is cheap, where listing open files walks /proc."""
        p = self._proc
        with p.oneshot():
            out = {"cpu_percent": float(p.cpu_percent(None)), "rss_bytes": float(p.memory_info().rss),
                   "threads": float(p.num_threads())}
            try:
                out["open_files"] = float(p.num_fds() if hasattr(p, "num_fds") else p.num_handles())
            except Exception:  # noqa: BLE001 - not allowed here: absent
                pass
        return out


class HostReader:
    """The host: CPU percent (of all cores), memory in use, disk and network bytes per second."""

    def __init__(self, psutil: Any) -> None:
        self._ps = psutil
        psutil.cpu_percent(None)
        self._t = time.monotonic()
        self._io = self._counters()

    @classmethod
    def open(cls) -> HostReader | None:
        """A reader of this host, or None without psutil."""
        psutil = _psutil()
        return cls(psutil) if psutil is not None else None

    def _counters(self) -> dict[str, float]:
        ps = self._ps
        out: dict[str, float] = {}
        try:
            disk = ps.disk_io_counters()
            if disk is not None:
                out["disk_read_bytes_per_s"], out["disk_write_bytes_per_s"] = disk.read_bytes, disk.write_bytes
        except Exception:  # noqa: BLE001 - no disks visible (a container): absent
            pass
        try:
            net = ps.net_io_counters()
            if net is not None:
                out["net_sent_bytes_per_s"], out["net_recv_bytes_per_s"] = net.bytes_sent, net.bytes_recv
        except Exception:  # noqa: BLE001
            pass
        return out

    def read(self) -> dict[str, float]:
        """One reading; the rates are over the time since the previous one."""
        ps = self._ps
        now = time.monotonic()
        io = self._counters()
        dt = now - self._t
        out = {"host_cpu_percent": float(ps.cpu_percent(None)), "host_memory_used_bytes": float(ps.virtual_memory().used)}
        if dt > 0:
            for name, value in io.items():
                before = self._io.get(name)
                if before is not None and value >= before:  # a counter that wrapped or reset gives no rate
                    out[name] = (value - before) / dt
        self._t, self._io = now, io
        return out


def _psutil() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    return psutil
