"""The system-metrics sampler: a daemon thread that records ``system`` metrics of one rank.

Every ``interval`` seconds it reads the process (every rank), the host (local rank 0 only,
so once per host), the rank's GPU (through NVML, when there is one) and the rank's step
time, and hands one record ``("system", sample, None, time, metrics)`` to the run, the
same record a ``log()`` call makes: it travels to rank 0, is written, uploaded and charted
like any metric. The record's step is the sample's index (0, 1, 2, ...): the training step is
not known to this thread, and system metrics are read against time.

``step_time_s`` is the seconds per training step since the previous sample: from the last
step-marking record (:func:`em_dist.observe.steps.marks_step`) the run's background thread
took off the buffer (``Sink.step_mark``); ``log()`` itself does nothing for it.

The thread never raises into training: a reader that fails is warned about once and
dropped. Readers are opened on this thread (importing psutil, initialising NVML), never on
the training thread, and NVML creates no CUDA context.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from .._warn import warn_once
from .nvml import NvmlDevice, gpu_metrics, rank_device
from .process import HostReader, ProcessReader

DEFAULT_INTERVAL = 10.0
"""Seconds between samples unless ``create_run(system_metrics_interval=)`` or ``EM_SYSTEM_METRICS_INTERVAL`` say otherwise."""
INTERVAL_ENV = "EM_SYSTEM_METRICS_INTERVAL"

Emit = Callable[[int, float, dict[str, float]], None]
"""``emit(sample_index, time, metrics)``: hands one ``system`` record to the run."""
StepMark = Callable[[], "tuple[int, float] | None"]
"""The latest ``(step, time)`` a step-marking record of this rank carried, or None."""


def system_metrics_interval(value: Any, env: Mapping[str, str] | None = None) -> float:
    """The sampling interval: ``value`` if given, else ``$EM_SYSTEM_METRICS_INTERVAL``, else 10 s; 0 turns sampling off.

    Raises ``ValueError`` for a negative or non-numeric value (the lead's ``positive_seconds``
    rule in :mod:`em_dist.ranks.timing`, with 0 allowed).
    """
    env = os.environ if env is None else env
    raw = env.get(INTERVAL_ENV)
    if value is None and raw is not None and raw.strip():
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"the environment gives {INTERVAL_ENV}={raw!r}; it must be a number of seconds") from None
        if value < 0 or value != value:
            raise ValueError(f"the environment gives {INTERVAL_ENV}={raw!r}; it must be 0 (off) or a positive number of seconds")
    if value is None:
        return DEFAULT_INTERVAL
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValueError(f"system_metrics_interval must be 0 (off) or a positive number of seconds, got {value!r}")
    return float(value)


class SystemSampler:
    """One rank's sampler thread. :meth:`start` returns at once; :meth:`stop` is bounded."""

    def __init__(self, interval: float, emit: Emit, step_mark: StepMark, *, local_rank: int = 0,
                 host: bool = True, env: Mapping[str, str] | None = None) -> None:
        self.interval = interval
        self._emit = emit
        self._step_mark = step_mark
        self._local_rank = local_rank
        self._host = host
        self._env = dict(os.environ if env is None else env)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="em-system-metrics", daemon=True)
        self._readers: dict[str, Any] = {}
        self._opened = False
        self._index = 0
        self._last_mark: tuple[int, float] | None = None

    def start(self) -> None:
        """Start sampling in the background."""
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Stop sampling and wait at most ``timeout`` seconds; True when the thread ended.

        Takes no lock, so a signal's finishing thread may call it. A sample under way when
        the run ends is dropped by the run (it ignores records after ``finish()``).
        """
        self._stop.set()
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def sample(self) -> dict[str, float]:
        """Read everything once and return the metrics (what the thread emits; for tests and benchmarks)."""
        if not self._opened:
            self._open()
        metrics: dict[str, float] = {}
        for name, reader in list(self._readers.items()):
            try:
                values = reader.read()
                metrics.update(gpu_metrics(values) if name == "gpu" else values)
            except Exception as exc:  # noqa: BLE001 - a reader that fails once is dropped, training goes on
                warn_once(f"system-metrics:{name}", f"em_dist: {name} metrics stopped ({exc!r}); the run goes on without them")
                self._close(name)
        step_time = self._step_time()
        if step_time is not None:
            metrics["step_time_s"] = step_time
        return metrics

    def _open(self) -> None:
        self._opened = True
        try:
            proc = ProcessReader.open()
            if proc is not None:
                self._readers["process"] = proc
            if self._host:
                host = HostReader.open()
                if host is not None:
                    self._readers["host"] = host
            gpu = NvmlDevice.open(rank_device(self._env, self._local_rank))
            if gpu is not None:
                self._readers["gpu"] = gpu
        except Exception as exc:  # noqa: BLE001
            warn_once("system-metrics-open", f"em_dist: system metrics could not start ({exc!r}); the run goes on without them")

    def _close(self, name: str) -> None:
        reader = self._readers.pop(name, None)
        if hasattr(reader, "close"):
            try:
                reader.close()
            except Exception:  # noqa: BLE001
                pass

    def _step_time(self) -> float | None:
        try:
            mark = self._step_mark()
        except Exception:  # noqa: BLE001 - the sink is being swapped (a late join): next time
            return None
        last, self._last_mark = self._last_mark, mark if mark is not None else self._last_mark
        if mark is None or last is None or mark[0] <= last[0]:
            return None
        return (mark[1] - last[1]) / (mark[0] - last[0])

    def _loop(self) -> None:
        # Samples start every `interval` from the start of the previous one; the wait is the
        # stop event's, so stop() ends the thread within one read.
        try:
            self._open()
            self._last_mark = self._step_mark()
            next_at = time.monotonic() + self.interval
            while not self._stop.wait(max(0.0, next_at - time.monotonic())):
                next_at += self.interval
                t = time.time()
                metrics = self.sample()
                if metrics and not self._stop.is_set():
                    self._emit(self._index, t, metrics)
                    self._index += 1
                if next_at < time.monotonic():  # suspended (or starved): don't catch up in a burst
                    next_at = time.monotonic() + self.interval
        except Exception as exc:  # noqa: BLE001 - the thread must never take the process down
            warn_once("system-metrics", f"em_dist: system metrics stopped ({exc!r}); the run goes on without them")
        finally:
            for name in list(self._readers):
                self._close(name)
