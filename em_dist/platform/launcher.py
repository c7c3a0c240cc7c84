"""The launcher variables a rank sees: an allow-list, never an environment dump.

Only names that describe where a process sits in a job (torchrun, Open MPI, PMI,
SLURM, Horovod, the visible devices) are recorded. Anything else in the environment,
tokens and passwords included, is never read into the run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

LAUNCHER_VARS: tuple[str, ...] = (
    # torchrun / torch elastic
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "NODE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "TORCHELASTIC_RUN_ID",
    # Open MPI, PMI / PMIx (MPICH, Intel MPI, srun --mpi)
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "PMI_RANK",
    "PMI_SIZE",
    "PMIX_RANK",
    # SLURM
    "SLURM_JOB_ID",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_LOCALID",
    "SLURM_NODEID",
    "SLURM_JOB_NODELIST",
    # Horovod
    "HOROVOD_RANK",
    "HOROVOD_SIZE",
    "HOROVOD_LOCAL_RANK",
    # devices
    "CUDA_VISIBLE_DEVICES",
)

#: Recorded by presence only (``True``); the value is never read.
PRESENCE_VARS: tuple[str, ...] = ("KUBERNETES_SERVICE_HOST",)


def launcher_env(environ: Mapping[str, str] | None = None) -> dict[str, str | bool]:
    """Return the allow-listed launcher variables that are set, plus presence flags.

    Values of :data:`LAUNCHER_VARS` are kept as strings; each set name of
    :data:`PRESENCE_VARS` maps to ``True``.
    """
    env = os.environ if environ is None else environ
    seen: dict[str, str | bool] = {name: env[name] for name in LAUNCHER_VARS if name in env}
    for name in PRESENCE_VARS:
        if name in env:
            seen[name] = True
    return seen


def nccl_env_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """Return the names (not values) of the ``NCCL_*`` variables that are set."""
    env = os.environ if environ is None else environ
    return sorted(name for name in env if name.startswith("NCCL_"))
