"""GPU readings through NVML (``pynvml`` from ``nvidia-ml-py``, an optional extra) and their conversion to metrics.

NVML talks to the driver, not to CUDA: reading it creates no CUDA context and never touches
the training thread's device. Which GPU a rank uses is read from the environment
(:func:`rank_device`): ``CUDA_VISIBLE_DEVICES`` as torch reads it, indexed by ``LOCAL_RANK``.

The reading is split from the conversion so the conversion can be tested with recorded
readings on a machine without a GPU: :meth:`NvmlDevice.read` returns the driver's raw
values (absent where the driver says "not supported"), :func:`gpu_metrics` turns them into
the metrics em_dist records.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

GPU_METRICS = ("gpu_utilization", "gpu_memory_used_bytes", "gpu_memory_utilization", "gpu_power_watts",
               "gpu_temperature_c", "gpu_sm_clock_mhz")
"""The GPU metrics, in the order the console shows them."""


def gpu_metrics(raw: Mapping[str, Any]) -> dict[str, float]:
    """The GPU metrics of one raw reading (:meth:`NvmlDevice.read`); a value the driver did not give is absent.

    - ``gpu_utilization``: percent of the last sample period a kernel ran (NVML ``utilization.gpu``);
    - ``gpu_memory_used_bytes``: device memory in use (all processes);
    - ``gpu_memory_utilization``: that memory as a percent of the device's total;
    - ``gpu_power_watts``: board power draw (NVML reports milliwatts);
    - ``gpu_temperature_c``: core temperature;
    - ``gpu_sm_clock_mhz``: the current SM clock.
    """
    out: dict[str, float] = {}
    if raw.get("utilization_gpu") is not None:
        out["gpu_utilization"] = float(raw["utilization_gpu"])
    used, total = raw.get("memory_used"), raw.get("memory_total")
    if used is not None:
        out["gpu_memory_used_bytes"] = float(used)
        if total:
            out["gpu_memory_utilization"] = 100.0 * float(used) / float(total)
    if raw.get("power_mw") is not None:
        out["gpu_power_watts"] = float(raw["power_mw"]) / 1000.0
    if raw.get("temperature_c") is not None:
        out["gpu_temperature_c"] = float(raw["temperature_c"])
    if raw.get("sm_clock_mhz") is not None:
        out["gpu_sm_clock_mhz"] = float(raw["sm_clock_mhz"])
    return out


def rank_device(env: Mapping[str, str], local_rank: int) -> int | str | None:
    """The GPU this rank uses, as NVML finds it: a physical index, a ``GPU-`` UUID, or None.

    ``CUDA_VISIBLE_DEVICES`` lists what the process sees (indices or UUIDs; torch stops at the
    first entry it can't read, and a MIG instance is not a whole GPU NVML can sample here); a
    rank uses the one at its ``LOCAL_RANK``, or the only one. Unset: physical GPU ``LOCAL_RANK``.
    """
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return local_rank
    entries: list[int | str] = []
    for part in visible.split(","):
        part = part.strip()
        if part.isdigit():
            entries.append(int(part))
        elif part.startswith("GPU-"):
            entries.append(part)
        else:
            break  # "", "-1", "MIG-...": nothing more torch would use
    if len(entries) == 1:
        return entries[0]
    return entries[local_rank] if 0 <= local_rank < len(entries) else None


class NvmlDevice:
    """One GPU opened through NVML. :meth:`open` returns None when NVML or the GPU is not there."""

    def __init__(self, nvml: Any, handle: Any) -> None:
        self._nvml = nvml
        self._handle = handle

    @classmethod
    def open(cls, device: int | str | None) -> NvmlDevice | None:
        """Initialise NVML and find ``device``; None without ``pynvml``, a driver, or that GPU."""
        if device is None:
            return None
        try:
            import pynvml
        except ImportError:
            return None
        try:
            pynvml.nvmlInit()
        except Exception:  # noqa: BLE001 - no driver, no library: no GPU metrics
            return None
        try:
            if isinstance(device, str):
                handle = pynvml.nvmlDeviceGetHandleByUUID(device)
            elif device < pynvml.nvmlDeviceGetCount():
                handle = pynvml.nvmlDeviceGetHandleByIndex(device)
            else:
                handle = None
        except Exception:  # noqa: BLE001
            handle = None
        if handle is None:
            _shutdown(pynvml)
            return None
        return cls(pynvml, handle)

    def read(self) -> dict[str, Any]:
        """The driver's raw values (see :func:`gpu_metrics`); a query the GPU does not support is left out."""
        nv, h = self._nvml, self._handle
        raw: dict[str, Any] = {}
        util = _ask(nv.nvmlDeviceGetUtilizationRates, h)
        if util is not None:
            raw["utilization_gpu"] = util.gpu
        mem = _ask(nv.nvmlDeviceGetMemoryInfo, h)
        if mem is not None:
            raw["memory_used"], raw["memory_total"] = mem.used, mem.total
        raw["power_mw"] = _ask(nv.nvmlDeviceGetPowerUsage, h)
        raw["temperature_c"] = _ask(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
        raw["sm_clock_mhz"] = _ask(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM)
        return {k: v for k, v in raw.items() if v is not None}

    def close(self) -> None:
        """Release NVML (it counts its inits)."""
        _shutdown(self._nvml)


def _ask(query: Any, *args: Any) -> Any:
    try:
        return query(*args)
    except Exception:  # noqa: BLE001 - NVMLError_NotSupported and kin: the value is absent
        return None


def _shutdown(nvml: Any) -> None:
    try:
        nvml.nvmlShutdown()
    except Exception:  # noqa: BLE001
        pass
