"""Simulated hosts for the multi-host tests: network namespaces on one machine (root only).

A :class:`Cluster` is N hosts plus one namespace that holds the bridge between them. Each
host has its own network stack (a veth with an address in a private /24, ``lo``), and each
job started on it (:meth:`Cluster.start`) runs in its own UTS namespace (the host's name),
pid namespace (it can't see another host's processes) and mount namespace, where the host's
own ``/etc/hosts`` is bind-mounted and its working folder is a tmpfs of its own. The working
folder has the same path on every host (as a home folder has on a real cluster) but a
different disk; the job script copies it to the host's ``export`` folder when it ends, so the
test can read each host's disk afterwards.

Traffic goes only between the namespaces made here. Every launch is bounded by ``timeout``,
started in a process group of its own, and killed in :meth:`Cluster.close`, which also
deletes the namespaces (killing a host's pid 1 ends everything inside it).

CI runs as root and must run these tests (``CI`` set: a host that can't be made fails the
test); elsewhere they are skipped, saying why (:func:`require_namespaces`).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUBNET = "10.231.77"
"""The private /24 of the simulated hosts: host i is ``SUBNET.(i + 1)``, only inside namespaces made here."""
RDZV_PORT = 29400


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=check)


def namespaces_missing() -> str | None:
    """Why hosts can't be simulated on this machine, or None when they can."""
    if os.geteuid() != 0:
        return "simulated hosts need root (ip netns, unshare)"
    for tool in ("ip", "unshare", "timeout", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = f"emprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"cannot make a network namespace ({made.stderr.strip()})"
    _ip("netns", "del", probe, check=False)
    return None


def require_namespaces() -> None:
    """Skip (or, with ``CI`` set, fail) when hosts can't be simulated here."""
    reason = namespaces_missing()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set: the multi-host tests must run)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Host:
    """One simulated host: its namespace, name, address, interface and folders."""

    index: int
    ns: str
    name: str
    address: str
    ifname: str
    root: Path
    """This host's folders as the test sees them: ``etc-hosts``, ``export`` (its disk after a job), ``out``, logs."""

    @property
    def export(self) -> Path:
        return self.root / "export"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def log(self) -> Path:
        return self.root / "job.log"


@dataclass
class Cluster:
    """``n`` hosts on one bridge. Use as a context manager: it tears everything down on exit."""

    n: int
    base: Path
    own_name_at: str | None = None
    """When set (Debian's ``127.0.1.1``), each host's /etc/hosts maps its own name there, the others
    to their addresses; else every name maps to the host's address."""
    hosts: list[Host] = field(default_factory=list)
    disk: Path = field(init=False)
    """The working folder: the same path on every host, a tmpfs of its own on each."""
    _bridge: str = field(init=False, default="")
    _procs: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.disk = self.base / "disk"
        tag = f"em{os.getpid()}x{id(self) % 1000}"
        self._bridge = f"{tag}br"
        self.hosts = [Host(i, f"{tag}h{i}", f"node{i}", f"{SUBNET}.{i + 1}", f"veth{i}", self.base / f"host{i}")
                      for i in range(self.n)]

    def __enter__(self) -> Cluster:
        require_namespaces()
        try:
            self._make()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make(self) -> None:
        _forget_dead_clusters()
        self.disk.mkdir(parents=True, exist_ok=True)
        _ip("netns", "add", self._bridge)
        _ip("-n", self._bridge, "link", "add", "br0", "type", "bridge")
        _ip("-n", self._bridge, "link", "set", "br0", "up")
        for h in self.hosts:
            for sub in ("export", "out"):
                (h.root / sub).mkdir(parents=True, exist_ok=True)
            _ip("netns", "add", h.ns)
            # the pair is made inside the namespaces, never in the machine's own
            _ip("-n", h.ns, "link", "add", h.ifname, "type", "veth", "peer", "name", f"p{h.index}", "netns", self._bridge)
            _ip("-n", h.ns, "addr", "add", f"{h.address}/24", "dev", h.ifname)
            _ip("-n", h.ns, "link", "set", "lo", "up")
            _ip("-n", h.ns, "link", "set", h.ifname, "up")
            _ip("-n", self._bridge, "link", "set", f"p{h.index}", "master", "br0")
            _ip("-n", self._bridge, "link", "set", f"p{h.index}", "up")
            (h.root / "etc-hosts").write_text(self._hosts_file(h))

    def _hosts_file(self, me: Host) -> str:
        lines = ["127.0.0.1 localhost"]
        for h in self.hosts:
            at = self.own_name_at if (h is me and self.own_name_at) else h.address
            lines.append(f"{at} {h.name}")
        return "\n".join(lines) + "\n"

    def start(self, host: Host, argv: list[str], env: dict[str, str], limit: float) -> subprocess.Popen:
        """Run ``argv`` on ``host`` (bounded by ``limit`` seconds), in its working folder; when it
        ends, the folder is copied to ``host.export`` and the job's exit status is kept."""
        script = "; ".join([
            f"hostname {shlex.quote(host.name)}",
            f"mount --bind {shlex.quote(str(host.root / 'etc-hosts'))} /etc/hosts",
            f"mount -t tmpfs -o size=256m tmpfs {shlex.quote(str(self.disk))}",
            f"cd {shlex.quote(str(self.disk))}",
            shlex.join(argv),
            "rc=$?",
            f"cp -a . {shlex.quote(str(host.export))}/",
            "exit $rc",
        ])
        cmd = ["timeout", "-k", "5", str(int(limit)), "ip", "netns", "exec", host.ns,
               "unshare", "--uts", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script]
        log = open(host.log, "wb")
        try:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        self._procs.append(proc)
        return proc

    def live_disk(self, proc: subprocess.Popen) -> Path | None:
        """The working folder of the host whose job is ``proc``, as its processes see it (through the
        root of the host's first process), while the job runs; None before it started or after."""
        unshare = _children(proc.pid)  # timeout -> unshare (ip netns exec became it) -> the host's pid 1
        inner = _children(unshare[0]) if unshare else []
        if not inner:
            return None
        return Path(f"/proc/{inner[0]}/root") / self.disk.relative_to("/")

    def kill(self, proc: subprocess.Popen, pid: int, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to process ``pid`` (as the host of job ``proc`` numbers it, in its own pid space)."""
        unshare = _children(proc.pid)
        inner = _children(unshare[0]) if unshare else []
        assert inner, "the host's job is not running"
        subprocess.run(["nsenter", "-t", str(inner[0]), "-p", "--", "kill", f"-{int(sig)}", str(pid)], check=True,
                       timeout=30)

    def set_link(self, host: Host, up: bool) -> None:
        """Cut ``host`` off the bridge (its interface down), or connect it again."""
        _ip("-n", host.ns, "link", "set", host.ifname, "up" if up else "down")

    def wait_all(self, procs: list[subprocess.Popen], limit: float) -> list[int]:
        """Each job's exit status; a job still running after ``limit`` seconds is killed (then 124)."""
        deadline = time.monotonic() + limit
        codes = []
        for p in procs:
            try:
                codes.append(p.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                _kill_group(p)
                codes.append(124)
        return codes

    def logs(self) -> str:
        """Every host's job output, for an assertion message."""
        parts = []
        for h in self.hosts:
            text = h.log.read_text(errors="replace") if h.log.exists() else "(no log)"
            parts.append(f"--- {h.name} ({h.address}) ---\n{text[-6000:]}")
        return "\n".join(parts)

    def close(self) -> None:
        """Kill every job started here (its whole process group; the host's pid namespace ends with
        its pid 1) and delete the namespaces."""
        for p in self._procs:
            _kill_group(p)
        for h in self.hosts:
            _ip("netns", "del", h.ns, check=False)
        if self._bridge:
            _ip("netns", "del", self._bridge, check=False)


def _forget_dead_clusters() -> None:
    """Delete the namespaces of an earlier test process that was killed before its teardown (named
    ``em<pid>x...`` by :class:`Cluster`; only those whose process is gone)."""
    listed = _ip("netns", "list", check=False).stdout.split()
    for name in listed:
        m = re.fullmatch(r"em(\d+)x\d+(?:h\d+|br)", name)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            _ip("netns", "del", name, check=False)
        except PermissionError:
            pass


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


def host_env(cluster: Cluster, host: Host, **extra: str) -> dict[str, str]:
    """The environment of a job on ``host``: this checkout first on the path, folders on the host's own disk."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "TORCHELASTIC", "OMPI_", "PMI",
                                "GLOO_", "TP_SOCKET", "EM_"))}
    disk = cluster.disk
    env.update(
        EM_RUN_PARENT_DIR=str(disk / "runs"),
        EM_ARTIFACT_PARENT_DIR=str(disk / "artifacts"),
        EM_SYSTEM_METRICS_INTERVAL="0",
        HOME=str(disk / "home"),
        EM_TEST_OUT=str(host.out),
        PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def torchrun_argv(cluster: Cluster, host: Host, nproc: int, script: Path, *args: str, job: str = "emjob") -> list[str]:
    """torchrun with c10d rendezvous on host 0's address; host 0's agent hosts the store."""
    argv = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={cluster.n}", f"--nproc_per_node={nproc}",
            "--rdzv_backend=c10d", f"--rdzv_endpoint={cluster.hosts[0].address}:{RDZV_PORT}", f"--rdzv_id={job}",
            "--max-restarts=0", "--monitor-interval=0.1"]
    if host.index == 0:
        argv.append("--rdzv-conf=is_host=1")  # its own name may not resolve to its address (127.0.1.1)
    return [*argv, str(script), *args]
