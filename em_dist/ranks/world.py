"""Where this process sits in a job: rank, world size, local rank, node, launcher.

Read from an engine the user already initialised (torch.distributed, Horovod,
mpi4py, looked up in ``sys.modules``) and else from the launcher's environment
variables. Detection never imports or initialises anything: importing mpi4py alone
starts MPI, and touching torch.distributed must stay the user's decision.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, TypeVar

from ..errors import LINK_ERRORS


@dataclass(frozen=True)
class WorldInfo:
    """This process's place in the job. A plain single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    launcher: str = "none"  # torchrun | horovodrun | mpirun | srun | env | none
    source: str = "none"  # what told us: torch.distributed | horovod | mpi4py | env | none

    @property
    def distributed(self) -> bool:
        """True when the job has more than one process."""
        return self.world_size > 1

    @property
    def nodes(self) -> int | None:
        """Number of nodes, when the launcher says how many processes each runs; None when it does not
        (rank 0 then counts the hosts its peers report)."""
        if self.local_world_size >= 1 and self.world_size % self.local_world_size == 0:
            return self.world_size // self.local_world_size
        return None


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for name in names:
        value = env.get(name)
        if value is not None and value.strip().lstrip("-").isdigit():
            return int(value)
    return None


def launcher_name(env: Mapping[str, str] | None = None) -> str:
    """Which launcher started this process, judged from its environment."""
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env:
        return "torchrun"
    if "HOROVOD_RANK" in env:
        return "horovodrun"
    if _mpi_launched(env):
        if any(m in sys.modules for m in ("horovod.torch", "horovod.tensorflow", "horovod.keras")):
            return "horovodrun"  # horovodrun --mpi sets only MPI's variables
        return "srun" if "SLURM_STEP_ID" in env else "mpirun"
    if "SLURM_STEP_ID" in env and "SLURM_PROCID" in env:
        return "srun"
    if "RANK" in env and "WORLD_SIZE" in env:
        return "env"
    return "none"


def _mpi_launched(env: Mapping[str, str]) -> bool:
    """Whether an MPI launcher (mpirun, mpiexec, srun --mpi) started this process: it names a rank
    and a size. A process that imported mpi4py alone is an MPI "singleton", whose MPI puts
    ``PMIX_RANK`` (and no size) into the environment that processes it spawns inherit (Lightning
    ``ddp_spawn`` after mpi4py was imported): no launcher at all."""
    if env.get("OMPI_MCA_ess") == "singleton":
        return False
    if "OMPI_COMM_WORLD_RANK" in env and "OMPI_COMM_WORLD_SIZE" in env:
        return True
    return ("PMI_RANK" in env or "PMIX_RANK" in env) and "PMI_SIZE" in env


def launcher_guess() -> str:
    """Name the launcher of a process whose rank came from an engine, not from its environment:
    Lightning's own launchers and ``torch.multiprocessing.spawn`` give their processes no RANK."""
    if any(m in sys.modules for m in ("lightning", "pytorch_lightning", "lightning.pytorch")):
        return "lightning"
    if multiprocessing.current_process().name != "MainProcess":
        return "mp.spawn"
    return "env"


def _from_env(env: Mapping[str, str]) -> WorldInfo | None:
    # One tuple per launcher family: (rank, size, local rank, local size, node) variable names.
    families = (
        ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"),
        ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_RANK"),
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
         "OMPI_COMM_WORLD_LOCAL_SIZE", "OMPI_COMM_WORLD_NODE_RANK"),
        ("PMIX_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "SLURM_NODEID"),
        ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS", "SLURM_NODEID"),
        # SLURM_NTASKS is also set in an sbatch script's single batch process; only a step counts.
        ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "SLURM_STEP_TASKS_PER_NODE", "SLURM_NODEID"),
    )
    for rank_v, size_v, local_v, local_size_v, node_v in families:
        rank, size = _int(env, rank_v), _int(env, size_v)
        if rank is None or size is None or size < 1 or not 0 <= rank < size:
            continue
        local = _int(env, local_v)
        local_size = _int(env, local_size_v)
        if local_size is None or local_size < 1:
            local_size = 0  # unknown: the node count comes from the hosts the ranks report
        return WorldInfo(
            rank=rank,
            world_size=size,
            local_rank=local if local is not None else rank,
            local_world_size=local_size,
            node_rank=_int(env, node_v) or 0,
            launcher=launcher_name(env),
            source="env",
        )
    return None


T = TypeVar("T")

QUERY_ERRORS: tuple[type[Exception], ...] = (*LINK_ERRORS, AttributeError, ImportError)
"""What asking an engine about its state may raise: what engines raise, or a missing attribute or
module (an older Horovod, mpi4py not installed)."""


def ask_engine(question: Callable[[], T], otherwise: T) -> T:
    """The answer to a question about an engine's state (``is_initialized()``, ``get_rank()``,
    ``Is_finalized()``...), or ``otherwise`` when the engine, half set up or being torn down, raises
    what engines raise (:data:`~em_dist.errors.LINK_ERRORS`; an old Horovod's missing attribute too).
    Such an engine does not count yet: callers look again later."""
    try:
        return question()
    except QUERY_ERRORS:
        return otherwise


def _from_engines() -> tuple[int, int, str] | None:
    """(rank, size, engine) from an engine the user initialised, else None. Never initialises one."""
    tdist = sys.modules.get("torch.distributed")
    if tdist is not None and ask_engine(lambda: tdist.is_available() and tdist.is_initialized(), False):
        found = ask_engine(lambda: (tdist.get_rank(), tdist.get_world_size()), None)
        if found is not None:
            return (*found, "torch.distributed")
    for name in ("horovod.torch", "horovod.tensorflow", "horovod.keras"):
        hvd = sys.modules.get(name)
        if hvd is not None and ask_engine(hvd.is_initialized, False):
            found = ask_engine(lambda: (hvd.rank(), hvd.size()), None)
            if found is not None:
                return (*found, "horovod")
    mpi = sys.modules.get("mpi4py.MPI")
    if mpi is not None and ask_engine(lambda: mpi.Is_initialized() and not mpi.Is_finalized(), False):
        found = ask_engine(lambda: (mpi.COMM_WORLD.Get_rank(), mpi.COMM_WORLD.Get_size()), None)
        if found is not None:
            return (*found, "mpi4py")
    return None


def detect_world(env: Mapping[str, str] | None = None) -> WorldInfo:
    """Describe this process's place in the job; a plain process is ``WorldInfo()`` (rank 0 of 1)."""
    env = os.environ if env is None else env
    from_env = _from_env(env)
    engine = _from_engines()
    if engine is None:
        return from_env or WorldInfo()
    rank, size, source = engine
    if from_env is not None and (from_env.rank, from_env.world_size) == (rank, size):
        return WorldInfo(**{**from_env.__dict__, "source": source})
    launcher = launcher_name(env)
    if launcher in ("none", "env"):
        launcher = launcher_guess()
    return WorldInfo(rank=rank, world_size=size, local_rank=rank, local_world_size=0,
                     launcher=launcher, source=source)
