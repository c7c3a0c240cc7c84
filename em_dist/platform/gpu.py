"""Torch, CUDA and GPU facts, read only through a torch the user already imported.

Importing torch costs seconds, so nothing here imports it: every probe takes the
module found in ``sys.modules`` (or None). GPU properties come from
``torch.cuda.get_device_properties``; the driver version from
``/proc/driver/nvidia/version``, else ``nvidia-smi`` with a short timeout.
"""

from __future__ import annotations

import re
import subprocess
import sys
from types import ModuleType
from typing import Any

_NVIDIA_PROC_VERSION = "/proc/driver/nvidia/version"
_NVIDIA_SMI_TIMEOUT_S = 2.0
_DRIVER_RE = re.compile(r"Kernel Module(?: for [\w-]+)?\s+(\d+(?:\.\d+)+)")


def imported_torch() -> ModuleType | None:
    """Return the torch module if the process has already imported it, else None."""
    torch = sys.modules.get("torch")
    return torch if torch is not None and hasattr(torch, "__version__") else None


def torch_version(torch: ModuleType) -> str | None:
    """Return ``torch.__version__`` as a string."""
    try:
        return str(torch.__version__)
    except Exception:  # noqa: BLE001
        return None


def cuda_available(torch: ModuleType) -> bool | None:
    """Return whether torch sees a usable CUDA device."""
    try:
        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return None


def cuda_version(torch: ModuleType) -> str | None:
    """Return the CUDA version torch was built with (None for a CPU build)."""
    try:
        value = torch.version.cuda
        return str(value) if value else None
    except Exception:  # noqa: BLE001
        return None


def format_cudnn_version(code: int) -> str:
    """Turn cuDNN's integer version into ``major.minor.patch``.

    cuDNN 9 encodes ``major*10000 + minor*100 + patch`` (90100 is 9.1.0); earlier
    releases ``major*1000 + minor*100 + patch`` (8902 is 8.9.2).
    """
    if code >= 90000:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


def cudnn_version(torch: ModuleType) -> str | None:
    """Return the cuDNN version torch loaded, or None without cuDNN."""
    try:
        if not torch.version.cuda:
            return None
        import torch.backends.cudnn as cudnn  # a submodule of the already-imported torch

        code = cudnn.version()  # type: ignore[no-untyped-call]  # torch leaves version() unannotated
        return format_cudnn_version(int(code)) if code else None
    except Exception:  # noqa: BLE001
        return None


def format_nccl_version(value: Any) -> str | None:
    """Turn what ``torch.cuda.nccl.version()`` returns into ``"2.x.y"``.

    Recent torch returns a tuple ``(2, 21, 5)`` (sometimes with a suffix element);
    older torch an integer: ``major*10000 + minor*100 + patch`` from NCCL 2.9 on,
    ``major*1000 + minor*100 + patch`` before.
    """
    if isinstance(value, tuple) and len(value) >= 3:
        return ".".join(str(part) for part in value[:3])
    if isinstance(value, int) and value > 0:
        if value >= 20900:
            return f"{value // 10000}.{value % 10000 // 100}.{value % 100}"
        return f"{value // 1000}.{value % 1000 // 100}.{value % 100}"
    return None


def nccl_version(torch: ModuleType) -> str | None:
    """Return the NCCL version torch was built with, when it has CUDA."""
    try:
        if not torch.version.cuda:
            return None
        import torch.cuda.nccl as nccl

        return format_nccl_version(nccl.version())  # type: ignore[no-untyped-call]  # torch leaves version() unannotated
    except Exception:  # noqa: BLE001
        return None


def gpus(torch: ModuleType) -> list[dict[str, Any]]:
    """Return one record per CUDA device visible to this process (indices as torch numbers them)."""
    found: list[dict[str, Any]] = []
    try:
        count = int(torch.cuda.device_count())
    except Exception:  # noqa: BLE001
        return found
    for index in range(count):
        try:
            props = torch.cuda.get_device_properties(index)
        except Exception:  # noqa: BLE001
            continue
        uuid = getattr(props, "uuid", None)
        found.append(
            {
                "index": index,
                "name": str(props.name),
                "memory_total_bytes": int(props.total_memory),
                "compute_capability": f"{props.major}.{props.minor}",
                "uuid": str(uuid) if uuid is not None else None,
            }
        )
    return found


def parse_driver_version(text: str) -> str | None:
    """Extract the driver version from ``/proc/driver/nvidia/version`` content."""
    match = _DRIVER_RE.search(text)
    return match.group(1) if match else None


def gpu_driver(cuda_seen: bool) -> str | None:
    """Return the NVIDIA driver version.

    ``/proc/driver/nvidia/version`` is read first (free); ``nvidia-smi`` is asked
    only when torch reports CUDA, with a short timeout.
    """
    try:
        with open(_NVIDIA_PROC_VERSION, encoding="utf-8", errors="replace") as f:
            version = parse_driver_version(f.read())
        if version:
            return version
    except OSError:
        pass
    if not cuda_seen:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=_NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return lines[0] if out.returncode == 0 and lines else None
