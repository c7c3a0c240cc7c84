"""NVML readings to metrics, with readings recorded from an NVIDIA driver (no GPU on the test machine).

The GPU path itself (pynvml against a driver) is not run here: it needs a GPU.
"""

from __future__ import annotations

import pytest

from em_dist.observe.nvml import GPU_METRICS, NvmlDevice, gpu_metrics, rank_device

# What NvmlDevice.read() returned on an A100 80GB while training (values as NVML gives them).
A100_READING = {"utilization_gpu": 87, "memory_used": 41_943_040_000, "memory_total": 85_899_345_920,
                "power_mw": 312_456, "temperature_c": 61, "sm_clock_mhz": 1410}


def test_a_full_reading_converts_to_every_gpu_metric():
    m = gpu_metrics(A100_READING)
    assert sorted(m) == sorted(GPU_METRICS)
    assert m["gpu_utilization"] == 87.0
    assert m["gpu_memory_used_bytes"] == 41_943_040_000.0
    assert m["gpu_memory_utilization"] == pytest.approx(48.83, abs=0.01)
    assert m["gpu_power_watts"] == pytest.approx(312.456)
    assert m["gpu_temperature_c"] == 61.0 and m["gpu_sm_clock_mhz"] == 1410.0
    assert all(v.__class__ is float for v in m.values())


def test_values_the_driver_does_not_give_are_absent_not_zero():
    # A consumer card without power readings, and a zero that is a real reading.
    m = gpu_metrics({"utilization_gpu": 0, "memory_used": 1024, "memory_total": 0, "temperature_c": 40})
    assert m == {"gpu_utilization": 0.0, "gpu_memory_used_bytes": 1024.0, "gpu_temperature_c": 40.0}
    assert gpu_metrics({}) == {}


@pytest.mark.parametrize("visible,local_rank,expected", [
    (None, 3, 3),
    ("2", 1, 2),  # one GPU per rank, chosen by the launcher
    ("4,5,6,7", 2, 6),
    ("4,5", 3, None),
    ("GPU-8a1b,GPU-9c2d", 1, "GPU-9c2d"),
    ("", 0, None),
    ("-1", 0, None),
    ("0,MIG-abc,1", 1, 0),  # torch sees only GPU 0: the only one
])
def test_the_rank_uses_the_visible_gpu_at_its_local_rank(visible, local_rank, expected):
    env = {} if visible is None else {"CUDA_VISIBLE_DEVICES": visible}
    assert rank_device(env, local_rank) == expected


def test_no_gpu_opens_no_device():
    assert NvmlDevice.open(None) is None
    assert NvmlDevice.open(0) is None  # no pynvml or no driver here: absent, never an error
