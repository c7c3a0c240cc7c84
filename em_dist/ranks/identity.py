"""Which Run a record belongs to, agreed by every rank without talking: identity, not order.

A job's launcher names the job in the environment of every rank (torchrun's
``TORCHELASTIC_RUN_ID``, SLURM's job and step, Horovod's rendezvous address, an MPI job
id, or ``EM_JOB_ID`` set by the user). The run id is derived from that job identity,
the run's name and how many runs of that name this process made before
(``uuid5(job, name, occurrence)``), so rank 0 and every peer compute the same id for
the same ``create_run``, whatever other runs each rank made, in whatever order. The
rank layer meets under that id; a run that exists on one rank only meets nobody.

The same id comes back after a restart of the job (torchrun ``--max-restarts``, a
SLURM requeue, a restarted Kubernetes pod with ``EM_JOB_ID`` set), which is how a
restarted job finds and continues its Run. ``attempt`` is the launcher's restart count.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

_NAMESPACE = uuid.UUID("6f9b0a52-3c1e-4d0b-9a57-0e3d2b6c1f40")

_occurrences: dict[str, int] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class JobIdentity:
    """The launcher's name for this job (stable across its restarts) and which attempt this is."""

    job: str | None
    """None when nothing names the job (a plain script): runs then get random ids."""
    attempt: int = 0
    """0 on the first attempt; the launcher's restart count after a restart."""
    user_named: bool = False
    """The user named the job (``EM_JOB_ID``): a run of that name is continued whatever the attempt."""

    @property
    def continues_runs(self) -> bool:
        """Whether an existing run with this job's derived id is this job's own: after a restart, or
        when the user named the job. A first attempt otherwise starts afresh (launchers reuse ids:
        torchrun's ``--rdzv_id``, a default ``MASTER_PORT``)."""
        return self.user_named or self.attempt > 0


def _int(value: str | None) -> int:
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0


def job_identity(env: Mapping[str, str] | None = None) -> JobIdentity:
    """Read the job's identity from the launcher's environment (never from the network)."""
    env = os.environ if env is None else env
    if env.get("EM_JOB_ID"):
        return JobIdentity(f"user/{env['EM_JOB_ID']}", _int(env.get("EM_JOB_ATTEMPT")), user_named=True)
    if env.get("TORCHELASTIC_RUN_ID") not in (None, "", "none"):  # "none": torchrun's default rdzv id
        # under SLURM, torchrun starts afresh after a requeue: SLURM's count says it is a restart
        restarts = _int(env.get("TORCHELASTIC_RESTART_COUNT")) + _int(env.get("SLURM_RESTART_COUNT"))
        return JobIdentity(f"torchrun/{env['TORCHELASTIC_RUN_ID']}", restarts)
    restarts = _int(env.get("SLURM_RESTART_COUNT"))
    if env.get("HOROVOD_GLOO_RENDEZVOUS_ADDR") and env.get("HOROVOD_GLOO_RENDEZVOUS_PORT"):
        return JobIdentity(f"horovod/{env['HOROVOD_GLOO_RENDEZVOUS_ADDR']}:{env['HOROVOD_GLOO_RENDEZVOUS_PORT']}", restarts)
    for name in ("OMPI_MCA_orte_ess_jobid", "OMPI_MCA_ess_base_jobid", "PMIX_NAMESPACE", "PMI_JOBID"):
        if env.get(name):  # one mpirun of several in a batch script, or an srun step under PMIx
            return JobIdentity(f"mpi/{env[name]}", restarts)
    if env.get("SLURM_JOB_ID"):
        # The step tells two srun calls of one batch script apart; a requeued job runs its steps
        # again under the same job id and step numbers.
        step = env.get("SLURM_STEP_ID", "batch")
        cluster = env.get("SLURM_CLUSTER_NAME", "")
        return JobIdentity(f"slurm/{cluster}/{env['SLURM_JOB_ID']}/{step}", restarts)
    if env.get("MASTER_ADDR") and env.get("MASTER_PORT") and env.get("WORLD_SIZE"):
        return JobIdentity(f"env/{env['MASTER_ADDR']}:{env['MASTER_PORT']}")
    return JobIdentity(None)


def next_occurrence(name: str) -> int:
    """How many runs named ``name`` this process created before this one (0 for the first)."""
    with _lock:
        n = _occurrences.get(name, 0)
        _occurrences[name] = n + 1
        return n


def derived_run_id(job: JobIdentity, name: str, occurrence: int) -> str | None:
    """The id every rank computes for the ``occurrence``-th run named ``name`` of ``job``; None without a job."""
    if job.job is None:
        return None
    return str(uuid.uuid5(_NAMESPACE, f"{job.job}\0{name}\0{occurrence}"))
