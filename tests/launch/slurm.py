"""A real single-node SLURM for the tests: munge, slurmctld and slurmd from Debian's packages.

Started once per test session in a temporary directory (about 1 s once installed) and
stopped at the end; ``make test`` installs the packages (``slurm-wlm munge``). The
settings are the ones measured to work on these machines (shared/facts).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

CONF = """\
ClusterName=emtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10
MailProg=/bin/true
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=5
MinJobAge=300
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=20000
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def available() -> str | None:
    """None when a SLURM can be started here, else why not."""
    for tool in ("slurmctld", "slurmd", "sbatch", "munged", "munge"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt: slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test SLURM runs its daemons as root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slurm:
    """The daemons and the environment (``SLURM_CONF``) their client commands need."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self._procs: list[subprocess.Popen] = []

    def start(self, timeout: float = 60.0) -> "Slurm":
        for sub in ("state", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        self.conf.write_text(CONF.format(host=host, dir=self.root, ctld_port=_free_port(), d_port=_free_port(),
                                         cpus=os.cpu_count() or 2))
        self._munge()
        for daemon in ("slurmctld", "slurmd"):
            self._procs.append(subprocess.Popen([daemon, "-D", "-f", str(self.conf)], env=self.env,
                                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                                start_new_session=True))
        deadline = time.monotonic() + timeout
        while True:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if state.stdout.strip() == "idle":
                return self
            if time.monotonic() > deadline:
                self.stop()
                logs = "".join((self.root / f).read_text(errors="replace")[-2000:]
                               for f in ("slurmctld.log", "slurmd.log") if (self.root / f).exists())
                raise RuntimeError(f"SLURM did not become idle: {state.stdout!r} {state.stderr!r}\n{logs}")
            time.sleep(0.2)

    def _munge(self) -> None:
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
            return  # already running
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "/usr/sbin/munged"], check=True, timeout=30)

    def run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=kw.pop("env", self.env), capture_output=True, text=True, timeout=60, **kw)

    def job_state(self, job_id: str) -> str:
        """``JobState`` of ``scontrol show job`` (UNKNOWN when not shown)."""
        fields = dict(f.split("=", 1) for f in self.run("scontrol", "show", "job", job_id).stdout.split() if "=" in f)
        return fields.get("JobState", "UNKNOWN")

    def stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
