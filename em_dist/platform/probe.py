"""``collect_platform``: the platform record a rank stores at ``create_run``.

Called once per rank, so it is quick (well under 150 ms) and never imports torch or
numpy: their fields are filled only when the user's process imported them already.
Every probe is best-effort: a probe that fails leaves its key ``None`` and nothing
raises.

Keys (a flat, JSON-safe dict):

``host``                  hostname
``os``                    platform string, e.g. ``Linux-6.1.0-x86_64-with-glibc2.36``
``python``                Python version, e.g. ``3.11.7``
``python_executable``     ``sys.executable``
``cpu_model``             CPU model name (``/proc/cpuinfo`` on Linux)
``cpu_count``             logical CPUs of the host
``cpu_count_available``   CPUs this process may use (its affinity mask)
``memory_total_bytes``    physical memory of the host
``pid``                   process id
``cwd``                   working directory
``command``               ``sys.argv`` as a list of strings, secret values redacted
                          (:mod:`em_dist.platform.redact`)
``numpy``                 numpy version, or None when the process has not imported numpy
``torch``                 torch version, or None when the process has not imported torch
``cuda_available``        bool from torch; None when torch is not imported
``cuda_version``          CUDA version torch was built with, or None
``cudnn_version``         ``"major.minor.patch"`` or None
``nccl_version``          ``"2.x.y"`` or None
``gpu_driver``            NVIDIA driver version, or None
``gpus``                  list of ``{"index", "name", "memory_total_bytes",
                          "compute_capability", "uuid"}``, one per CUDA device torch
                          sees (empty without torch or CUDA)
``device``                ``cpu`` when torch has no CUDA, ``cuda:<i>`` once this process
                          initialised CUDA (its current device), else None: never a guess
``mpi``                   ``{"library", "standard", "mpi4py"}`` when the process imported
                          mpi4py, else None
``local_rank``            the ``local_rank`` argument
``launcher_env``          the allow-listed launcher variables that are set (see
                          :mod:`em_dist.platform.launcher`); never an environment dump
``nccl_env_names``        names (not values) of the ``NCCL_*`` variables that are set
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from em_dist.platform import gpu, host, launcher, redact


def _numpy_version() -> str | None:
    numpy = sys.modules.get("numpy")
    version = getattr(numpy, "__version__", None)
    return str(version) if version is not None else None


def torch_fields(local_rank: int | None = None) -> dict[str, Any]:
    """The torch/CUDA/GPU keys, from the torch this process imported (all None without one).

    A Run probes again at its end, so a script that imports torch after ``create_run``
    still gets them. ``device`` states only what is known: ``cpu`` without CUDA, the
    current CUDA device once this process initialised CUDA, else None.
    """
    torch = gpu.imported_torch()
    if torch is None:
        return {
            "torch": None,
            "cuda_available": None,
            "cuda_version": None,
            "cudnn_version": None,
            "nccl_version": None,
            "gpu_driver": gpu.gpu_driver(cuda_seen=False),
            "gpus": [],
            "device": None,
        }
    available = gpu.cuda_available(torch)
    return {
        "torch": gpu.torch_version(torch),
        "cuda_available": available,
        "cuda_version": gpu.cuda_version(torch),
        "cudnn_version": gpu.cudnn_version(torch),
        "nccl_version": gpu.nccl_version(torch),
        "gpu_driver": gpu.gpu_driver(cuda_seen=bool(available)),
        "gpus": gpu.gpus(torch) if available else [],
        "device": _device(torch, available),
    }


def _device(torch: Any, cuda_available: bool | None) -> str | None:
    if not cuda_available:
        return "cpu" if cuda_available is False else None
    try:
        if torch.cuda.is_initialized():  # never initialise CUDA ourselves
            return f"cuda:{torch.cuda.current_device()}"
    except Exception:  # noqa: BLE001
        pass
    return None


def mpi_fields() -> dict[str, Any] | None:
    """The MPI library of a process that imported mpi4py (em_dist never imports it): implementation,
    standard version and mpi4py's version; None otherwise."""
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is None:
        return None
    try:
        major, minor = mpi.Get_version()
        # a C string: Open MPI's ends in a NUL byte (and whatever follows it is not text)
        library = mpi.Get_library_version().split("\x00", 1)[0].strip()
        return {"library": library.splitlines()[0] if library else None, "standard": f"{major}.{minor}",
                "mpi4py": getattr(sys.modules.get("mpi4py"), "__version__", None)}
    except Exception:  # noqa: BLE001
        return None


def collect_platform(local_rank: int | None = None) -> dict[str, Any]:
    """Describe the machine, process, software stack and launcher this rank runs in.

    ``local_rank`` is the rank's index on its node; it picks the ``device`` entry.
    The keys are listed in this module's docstring. Never raises.
    """
    if local_rank is not None and not isinstance(local_rank, int):
        local_rank = None
    info: dict[str, Any] = {
        "host": host.hostname(),
        "os": host.os_string(),
        "python": platform.python_version(),
        "python_executable": sys.executable or None,
        "cpu_model": host.cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_count_available": host.cpu_count_available(),
        "memory_total_bytes": host.memory_total_bytes(),
        "pid": os.getpid(),
        "cwd": host.safe_cwd(),
        "command": redact.redact_argv(host.command()),
        "numpy": _numpy_version(),
    }
    try:
        info.update(torch_fields(local_rank))
    except Exception:  # noqa: BLE001 - a broken torch install must not stop the run
        info.update(
            dict.fromkeys(("torch", "cuda_available", "cuda_version", "cudnn_version", "nccl_version", "gpu_driver"))
        )
        info.update({"gpus": [], "device": None})
    info["mpi"] = mpi_fields()
    info["local_rank"] = local_rank
    try:
        info["launcher_env"] = redact.redact_record(launcher.launcher_env())
        info["nccl_env_names"] = launcher.nccl_env_names()
    except Exception:  # noqa: BLE001
        info["launcher_env"] = {}
        info["nccl_env_names"] = []
    return info
