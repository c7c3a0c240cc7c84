"""torchrun jobs across simulated hosts (network namespaces, see ``_hosts.py``): each host has its own
name, addresses, /etc/hosts, pid space and disk, as on a cluster. Every record must land exactly once
in rank 0's run, relayed by its node's leader, with no journal left behind on any host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import em_dist

from ..poll import wait_for
from ..ranks._launch import WORKER, check_gathered
from ._hosts import REPO, Cluster, host_env, torchrun_argv

pytestmark = pytest.mark.timeout(150)

NPROC = 2
"""Processes per host."""
LIMIT = 90
"""Seconds one host's launch may take before it is killed (a healthy job takes well under half)."""
STEPS, EXTRA = 40, 7


@dataclass
class Job:
    cluster: Cluster
    codes: list[int]

    def results(self) -> dict[int, dict]:
        """Each rank's report (written by the worker to its host's ``out``)."""
        out = {}
        for h in self.cluster.hosts:
            for f in h.out.glob("rank-*.json"):
                out[int(f.stem.split("-")[1])] = json.loads(f.read_text())
        return out

    def run(self):
        """Rank 0's one run, read from host 0's disk."""
        runs = [p for p in (self.cluster.hosts[0].export / "runs").iterdir() if (p / "run.json").is_file()]
        assert len(runs) == 1, f"expected one run folder on rank 0's host, found {[r.name for r in runs]}"
        return em_dist.load_run(runs[0])

    def journals(self) -> dict[str, list[str]]:
        """The journals left on each host's disk."""
        return {h.name: sorted(str(p.relative_to(h.export)) for p in (h.export / "runs").glob(".spool/**/*")
                               if p.is_file())
                for h in self.cluster.hosts}


def start(cluster: Cluster, *worker_args: str, env: dict[str, str] | None = None,
          per_host: dict[int, dict[str, str]] | None = None) -> list[subprocess.Popen]:
    """One torchrun per host (host 0 first: its agent hosts the rendezvous), each bounded by LIMIT."""
    procs = []
    for h in cluster.hosts:
        extra = dict(env or {}, **(per_host or {}).get(h.index, {}))
        procs.append(cluster.start(h, torchrun_argv(cluster, h, NPROC, WORKER, *worker_args),
                                   host_env(cluster, h, **extra), LIMIT))
    return procs


def launch(cluster: Cluster, *worker_args: str, env: dict[str, str] | None = None,
           per_host: dict[int, dict[str, str]] | None = None) -> Job:
    """A job on every host, waited for."""
    procs = start(cluster, *worker_args, env=env, per_host=per_host)
    return Job(cluster, cluster.wait_all(procs, LIMIT + 10))


def check_job(job: Job, init: str, by: str = "route to node0", loopback_on_host0: bool = False) -> None:
    """Every record once, the layout as the hosts are, every rank's link on its host's address (chosen
    ``by`` that rule); with ``loopback_on_host0`` rank 0's own host's ranks reach it on the loopback
    (their route toward 127.0.1.1 leaves from 127.0.0.1)."""
    c = job.cluster
    assert job.codes == [0] * c.n, c.logs()
    world = c.n * NPROC
    results = job.results()
    assert sorted(results) == list(range(world)), c.logs()
    assert {r["em_dist"] for r in results.values()} == {str(REPO / "em_dist" / "__init__.py")}
    rec = job.run()
    check_gathered(rec, world, steps=STEPS, extra=EXTRA)
    assert rec.status == "Succeeded" and rec.lost_ranks == [] and rec.late_ranks == []
    assert rec.world["nodes"] == c.n and rec.world["size"] == world
    assert rec.world["transport"] == "gloo"
    assert rec.world["backend"] == ("gloo" if init != "none" else None) or init == "none"
    # ranks 2i, 2i+1 on host i (torchrun orders the nodes by name); a leader relays its node's others
    hosts = {int(r): p["host"] for r, p in rec.platform["ranks"].items()}
    assert hosts == {r: f"node{r // NPROC}" for r in range(world)}
    assert rec.world.get("relayed_by", {}) == {str(r): r - r % NPROC for r in range(NPROC, world) if r % NPROC}
    assert all(d["complete"] for d in rec.delivery.values()), rec.delivery
    assert job.journals() == {h.name: [] for h in c.hosts}
    # where each rank's link listened: its host's address (a loopback one only beside rank 0)
    links = {int(r): p.get("link") for r, p in rec.platform["ranks"].items()}
    for r in range(1, world):
        host = c.hosts[r // NPROC]
        local = loopback_on_host0 and host.index == 0
        assert links[r]["address"] == ("127.0.0.1" if local else host.address), (r, links[r])
        assert links[r]["by"] == ("route to node0" if local else by), (r, links[r])
    served = {b["address"] for b in links[0]["serves"]}
    assert served == ({c.hosts[0].address, "127.0.0.1"} if loopback_on_host0 else {c.hosts[0].address}), links[0]
    # em run show says the same: nodes, relays, each host's ranks and link addresses, each rank complete
    show = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "show", str(rec.path)], capture_output=True,
                          text=True, timeout=60, env=host_env(c, c.hosts[0]))
    assert show.returncode == 0, show.stderr
    assert f"nodes      {c.n}, relayed by " in show.stdout, show.stdout
    for h in c.hosts:
        assert f"host       {h.name}: ranks {h.index * NPROC}, {h.index * NPROC + 1} (links on {h.address}" in show.stdout
    assert show.stdout.count("records in the run, complete") == world - 1, show.stdout
    case = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0]
    print(f"{case}: records in the run {({r: len(rec.metrics(rank=r)) for r in range(world)})}, journals left 0; "
          f"finish_s {({r: d.get('finish_s') for r, d in sorted(results.items())})}")


def check_host_metrics(job: Job) -> None:
    """Host metrics come once per host (from its local rank 0), under the host's name, and each host's
    network counters are its own: the hosts that send records to rank 0's host sent bytes."""
    c, rec = job.cluster, job.run()
    by_host = rec.host_metrics()
    assert sorted(by_host) == [h.name for h in c.hosts]
    for h in c.hosts:
        points = by_host[h.name]
        assert {p["rank"] for p in points} == {h.index * NPROC}, h.name
        names = {p["name"] for p in points}
        assert {"host_cpu_percent", "net_sent_bytes_per_s", "net_recv_bytes_per_s"} <= names, (h.name, names)
    for h in c.hosts[1:]:
        assert max(p["value"] for p in by_host[h.name] if p["name"] == "net_sent_bytes_per_s") > 0, h.name
    assert max(p["value"] for p in by_host[c.hosts[0].name] if p["name"] == "net_recv_bytes_per_s") > 0


@pytest.mark.parametrize("hosts,init", [(2, "before"), (3, "none")])
def test_every_record_once_across_hosts(tmp_path: Path, hosts: int, init: str) -> None:
    sampled = hosts == 3  # system metrics every 0.2 s, in a job that lasts about a second longer
    with Cluster(hosts, tmp_path) as c:
        job = launch(c, "--init", init, "--allreduce", "1" if init != "none" else "0", "--timeout", "20",
                     *(["--linger-s", "1.2"] if sampled else []),
                     env={"EM_SYSTEM_METRICS_INTERVAL": "0.2"} if sampled else None)
        check_job(job, init)
        if sampled:
            check_host_metrics(job)


def test_own_name_at_127_0_1_1_with_gloo_socket_ifname(tmp_path: Path) -> None:
    """Debian's /etc/hosts: a host's own name is 127.0.1.1. Training works with GLOO_SOCKET_IFNAME,
    so em_dist's links must bind there too, not on the loopback address its name resolves to."""
    with Cluster(2, tmp_path, own_name_at="127.0.1.1") as c:
        job = launch(c, "--init", "before", "--allreduce", "1", "--timeout", "15",
                     per_host={h.index: {"GLOO_SOCKET_IFNAME": h.ifname} for h in c.hosts})
        check_job(job, "before", by="GLOO_SOCKET_IFNAME")


def test_own_name_at_127_0_1_1_without_a_training_group(tmp_path: Path) -> None:
    """The same hosts, no GLOO_SOCKET_IFNAME and no gloo group (training on NCCL, say): each end binds
    on the route toward the other, so only ranks on rank 0's own host use 127.0.1.1."""
    with Cluster(2, tmp_path, own_name_at="127.0.1.1") as c:
        job = launch(c, "--init", "none", "--timeout", "15")
        check_job(job, "none", loopback_on_host0=True)


def _lines(disk: Path | None, rank: int) -> int:
    """Rank ``rank``'s metric lines in the run folder on ``disk`` (rank 0's host), so far."""
    files = list((disk / "runs").glob(f"*/metrics/rank-{rank}.jsonl")) if disk is not None else []
    return files[0].read_bytes().count(b"\n") if files else 0


def _journaled(disk: Path | None, rank: int) -> int:
    """Metric records (not captured output lines) in rank ``rank``'s journal on ``disk`` (its own host), so far."""
    from em_dist.store import journal
    from em_dist.store.lines import OUTPUT_MARK

    files = list((disk / "runs").glob(f".spool/*/rank-{rank}.*journal")) if disk is not None else []
    return sum(1 for _n, r in journal.read_records(files[0]) if r[:1] != OUTPUT_MARK) if files else 0


def test_a_host_cut_off_mid_run_keeps_its_records_for_em_run_merge(tmp_path: Path) -> None:
    """Host 1 loses the network after its first records reached rank 0: the rest stay in its ranks'
    journals on its own disk (rank 0 can't read them, and they can't see rank 0's run); the run says
    where they are, and ``em run merge`` with that spool completes the run, every record once. Training
    is not touched: every process exits 0."""
    go = tmp_path / "go"
    with Cluster(2, tmp_path) as c:
        h0, h1 = c.hosts
        procs = start(c, "--init", "none", "--timeout", "5", "--wait-file", str(go))
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) for r in (2, 3)), 40, "host 1's first records at rank 0")
        c.set_link(h1, up=False)
        wait_for(lambda: _journaled(c.live_disk(procs[1]), 3) > _lines(c.live_disk(procs[0]), 3) + 20, 30,
                 "records held back on host 1")
        go.touch()
        wait_for(lambda: (h0.out / "rank-0.json").is_file() and "finish_s" in json.loads((h0.out / "rank-0.json")
                 .read_text()), 40, "rank 0's end")
        c.set_link(h1, up=True)  # the launchers' own exit barrier needs the network again
        # host 1 first: when one of its processes failed, host 0's launcher waits for it until killed
        assert c.wait_all(procs[1:], LIMIT) == [0], c.logs()
        job = Job(c, c.wait_all(procs, LIMIT))
        assert job.codes == [0, 0], c.logs()
        rec = job.run()
        assert set(rec.lost_ranks + rec.late_ranks) == {2, 3}, (rec.lost_ranks, rec.late_ranks)
        assert {r for r, d in rec.delivery.items() if not d["complete"]} == {"2", "3"}, rec.delivery
        assert all(d["journal"].startswith("node1:") for r, d in rec.delivery.items() if r in ("2", "3"))
        left = job.journals()
        assert left["node0"] == [] and len([f for f in left["node1"] if f.endswith(".journal")]) == 2, left
        in_run = {r: len(rec.metrics(rank=r)) for r in range(4)}
        spool = next((h1.export / "runs" / ".spool").iterdir())
        merged = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "merge", str(rec.path),
                                 "--spool", str(spool)], capture_output=True, text=True, timeout=60,
                                env=host_env(c, h0))
        assert merged.returncode == 0, merged.stdout + merged.stderr
        print(merged.stdout)
        rec = job.run()
        check_gathered(rec, 4, steps=STEPS, extra=EXTRA)
        for r in range(4):
            beats = [p["step"] for p in rec.metrics(type="heartbeat", rank=r)]
            assert beats == list(range(beats[0], beats[0] + len(beats))) if beats else True, r  # once each, no gap
        assert all(d["complete"] for d in rec.delivery.values()), rec.delivery
        assert job.journals()["node1"] == []
        print(f"host cut off: records in the run {in_run}, after the merge {({r: len(rec.metrics(rank=r)) for r in range(4)})}"
              f"; finish_s {({r: d.get('finish_s') for r, d in job.results().items()})}")


SILENCE = 2.0
"""``EM_DIST_PEER_TIMEOUT`` of the partition tests: short, so that a partition longer than it is quick."""


def _heartbeats_once(rec, world: int) -> None:
    """Each rank's heartbeats (logged while the test held the job) are in the run once each, with no gap."""
    for r in range(world):
        beats = [p["step"] for p in rec.metrics(type="heartbeat", rank=r)]
        assert beats == list(range(beats[0], beats[0] + len(beats))) if beats else True, r


def _output_lines(disk: Path, rank: int) -> int:
    """Captured output lines in rank ``rank``'s journal on ``disk``."""
    from em_dist.store import journal
    from em_dist.store.lines import OUTPUT_MARK

    files = list((disk / "runs").glob(f".spool/*/rank-{rank}.*journal"))
    return sum(1 for _n, r in journal.read_records(files[0]) if r[:1] == OUTPUT_MARK) if files else 0


def _healed_job_ends_whole(c: Cluster, procs: list, go: Path) -> tuple[Job, Any]:
    """After a partition healed: host 1's held-back records reach rank 0, then (``go``) the job ends
    with every record once and no gap, Succeeded, no rank lost or late, every rank complete and no
    journal left on any host. Returns the job and its run."""
    try:
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) >= _journaled(c.live_disk(procs[1]), r) - 40
                             for r in (2, 3)), 30, "host 1's held-back records at rank 0")
    except AssertionError:
        counts = {r: (_lines(c.live_disk(procs[0]), r), _journaled(c.live_disk(procs[1]), r)) for r in (2, 3)}
        raise AssertionError(f"rank: (at rank 0, journaled) {counts}\n{c.logs()}") from None
    go.touch()
    job = Job(c, c.wait_all(procs, LIMIT))
    assert job.codes == [0, 0], c.logs()
    rec = job.run()
    check_gathered(rec, 4, steps=STEPS, extra=EXTRA)
    _heartbeats_once(rec, 4)
    assert rec.status == "Succeeded" and rec.lost_ranks == [] and rec.late_ranks == [], c.logs()
    assert all(d["complete"] for d in rec.delivery.values()), rec.delivery
    assert job.journals() == {h.name: [] for h in c.hosts}
    return job, rec


@pytest.mark.parametrize("relay", ["leader", "direct"])
def test_a_partition_longer_than_the_silence_bound_loses_nothing(tmp_path: Path, relay: str) -> None:
    """Host 1 is cut off for well over ``EM_DIST_PEER_TIMEOUT`` while its ranks keep logging (through
    their node leader, or each to rank 0 directly): rank 0 gives the links up, the ranks keep their
    records in their journals and retry; when the network is back they rebuild their links and
    re-send what rank 0 lacks, rank 0 takes them back, and the run has every record once, Succeeded,
    no journal left."""
    go = tmp_path / "go"
    with Cluster(2, tmp_path) as c:
        h0, h1 = c.hosts
        procs = start(c, "--init", "none", "--timeout", "20", "--wait-file", str(go),
                      env={"EM_DIST_PEER_TIMEOUT": str(SILENCE), "EM_DIST_RELAY": "1" if relay == "leader" else "0"})
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) for r in (2, 3)), 40, "host 1's first records at rank 0")
        c.set_link(h1, up=False)
        cut = time.monotonic()
        # the partition: longer than the silence bound (its length is what is tested, not a synchronisation)
        wait_for(lambda: time.monotonic() - cut > 2 * SILENCE + 1 and all(
            _journaled(c.live_disk(procs[1]), r) > _lines(c.live_disk(procs[0]), r) + 20 for r in (2, 3)), 30,
            "a partition twice the silence bound, records held back on host 1")
        c.set_link(h1, up=True)
        job, rec = _healed_job_ends_whole(c, procs, go)
        assert "the link to rank 0 is back" in h1.log.read_text(), c.logs()  # it was given up, and rebuilt
        if relay == "leader":  # its leader cut it off when it lost rank 0: it went to rank 0 directly
            assert "rank 3 goes to rank 0 directly" in h1.log.read_text(), c.logs()
        assert rec.world.get("relayed_by", {}) == {}
        finish = {r: d.get("finish_s") for r, d in job.results().items()}
        print(f"partition > silence bound ({relay}): records in the run {({r: len(rec.metrics(rank=r)) for r in range(4)})}"
              f", journals left 0; finish_s {finish}")


def test_a_partition_shorter_than_the_silence_bound_loses_nothing(tmp_path: Path) -> None:
    """Host 1 is cut off for less than ``EM_DIST_PEER_TIMEOUT`` while its ranks keep logging (rank 3
    through its node leader, rank 2): nobody gives a link up. The ranks keep their records in their
    journals meanwhile; when the network is back the same links carry them on (TCP re-sends what
    was in flight), and the run has every record once, Succeeded, rank 3 still relayed by rank 2,
    no rank lost or late, no journal left, no link broken or rebuilt."""
    go = tmp_path / "go"
    silence = 10.0  # the partition must stay well inside it on a busy machine
    with Cluster(2, tmp_path) as c:
        h0, h1 = c.hosts
        procs = start(c, "--init", "none", "--timeout", "20", "--wait-file", str(go),
                      env={"EM_DIST_PEER_TIMEOUT": str(silence)})
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) for r in (2, 3)), 40, "host 1's first records at rank 0")
        c.set_link(h1, up=False)
        cut = time.monotonic()
        # the partition: a few heartbeats long, shorter than the silence bound (its length is what is
        # tested, not a synchronisation)
        wait_for(lambda: time.monotonic() - cut > 3 and all(
            _journaled(c.live_disk(procs[1]), r) > _lines(c.live_disk(procs[0]), r) + 20 for r in (2, 3)), 30,
            "a partition of 3 s, records held back on host 1")
        c.set_link(h1, up=True)
        cut_s = time.monotonic() - cut
        assert cut_s < silence - 3, cut_s  # else the test tested the other case
        job, rec = _healed_job_ends_whole(c, procs, go)
        # the links were kept: none broke, none was rebuilt, the member stayed behind its leader
        for h in c.hosts:
            log = h.log.read_text()
            for said in ("the link to rank 0 broke", "the link to rank 0 is back", "goes to rank 0 directly",
                         "stopped relaying", "did not arrive"):
                assert said not in log, (said, c.logs())
        assert rec.world.get("relayed_by", {}) == {"3": 2}, rec.world
        finish = {r: d.get("finish_s") for r, d in job.results().items()}
        print(f"partition < silence bound ({cut_s:.1f} s of {silence:.0f}): records in the run "
              f"{({r: len(rec.metrics(rank=r)) for r in range(4)})}, journals left 0; finish_s {finish}")


def test_a_leader_killed_mid_run_loses_nothing_its_member_had_journaled(tmp_path: Path) -> None:
    """kill -9 of host 1's node leader (rank 2) while its member (rank 3) logs: the member goes to
    rank 0 directly and re-sends what rank 0 lacks (its leader's acknowledgement confirmed nothing);
    torchrun then stops the member (SIGTERM), whose end hands over or journals the rest. What the
    leader had journaled is on host 1's disk; ``em run merge`` adds it, and every record of both is
    in the run once, with no gap (the leader's last moment in memory, never journaled, aside)."""
    go = tmp_path / "go"
    with Cluster(2, tmp_path) as c:
        h0, h1 = c.hosts
        procs = start(c, "--init", "none", "--timeout", "10", "--wait-file", str(go),
                      env={"EM_DIST_PEER_TIMEOUT": str(SILENCE)})
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) for r in (2, 3)), 40, "host 1's first records at rank 0")
        leader = wait_for(lambda: (h1.out / "rank-2.json").is_file() and json.loads((h1.out / "rank-2.json")
                          .read_text()).get("pid"), 30, "the leader's pid")
        c.kill(procs[1], leader)
        assert c.wait_all(procs[1:], LIMIT) != [0], c.logs()  # torchrun: a worker died, the node's job failed
        go.touch()
        # host 0's launcher then waits in torchrun's exit barrier for host 1's, which is gone: read rank
        # 0's run on its live disk once ranks 0 and 1 finished
        wait_for(lambda: all("finish_s" in json.loads(f.read_text()) for f in (h0.out / "rank-0.json",
                 h0.out / "rank-1.json") if f.is_file()) and len(list(h0.out.glob("rank-*.json"))) == 2, 40,
                 "ranks 0 and 1 to finish")
        disk0 = c.live_disk(procs[0])
        assert disk0 is not None, c.logs()
        run_dir = next(p for p in (disk0 / "runs").iterdir() if (p / "run.json").is_file())  # as host 0 sees it
        job = Job(c, [])
        job.run = lambda: em_dist.load_run(run_dir)  # type: ignore[method-assign]
        assert "rank 3 goes to rank 0 directly" in h1.log.read_text(), c.logs()
        rec = job.run()
        assert 2 in rec.lost_ranks, (rec.lost_ranks, rec.late_ranks)
        assert rec.world.get("relayed_by", {}).get("3") is None  # it ended on its own link to rank 0
        in_run = {r: len(rec.metrics(rank=r)) for r in (2, 3)}
        spool = next((h1.export / "runs" / ".spool").iterdir())
        merged = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "merge", str(run_dir),
                                 "--spool", str(spool)], capture_output=True, text=True, timeout=60,
                                env=host_env(c, h0))
        assert merged.returncode == 0, merged.stdout + merged.stderr
        print(merged.stdout)
        again = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "merge", str(run_dir),
                                "--spool", str(spool)], capture_output=True, text=True, timeout=60, env=host_env(c, h0))
        assert again.returncode == 0 and " 0 records added" in again.stdout, again.stdout + again.stderr  # once
        rec = job.run()
        check_gathered(rec, 4, steps=STEPS, extra=EXTRA)
        _heartbeats_once(rec, 4)
        # the killed leader's journal was never closed: the run holds all of it, and says it can't know more
        assert {r for r, d in rec.delivery.items() if not d["complete"]} == {"2"}, rec.delivery
        assert rec.delivery["2"]["records"] == _journaled(h1.export, 2) + _output_lines(h1.export, 2)
        assert [f for f in job.journals()["node1"] if f.endswith(".journal")] == \
            [str(p.relative_to(h1.export)) for p in (h1.export / "runs").glob(".spool/*/rank-2.*journal")]
        print(f"leader killed: records of ranks 2, 3 in the run {in_run}, after the merge "
              f"{ {r: len(rec.metrics(rank=r)) for r in (2, 3)} }; finish_s {job.results()[0].get('finish_s')}; "
              f"lost {rec.lost_ranks}, late {rec.late_ranks}")


def test_a_member_killed_mid_run_keeps_what_it_journaled_for_em_run_merge(tmp_path: Path) -> None:
    """kill -9 of a member on host 1 (rank 3, relayed by its node leader, rank 2) while it logs: what
    it had journaled but rank 0 never acknowledged stays in its journal on host 1's disk; torchrun
    then fails the node (a worker died) and SIGTERMs the leader, whose end hands over all of its own.
    The run names rank 3 lost (or late), its delivery incomplete with its journal at ``node1:``; ``em
    run merge`` with host 1's spool adds the rest, every journaled record of rank 3 once with no gap
    (its last moment in memory, never journaled, aside), and a second merge adds nothing."""
    go = tmp_path / "go"
    with Cluster(2, tmp_path) as c:
        h0, h1 = c.hosts
        procs = start(c, "--init", "none", "--timeout", "10", "--wait-file", str(go),
                      env={"EM_DIST_PEER_TIMEOUT": str(SILENCE)})
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) for r in (2, 3)), 40, "host 1's first records at rank 0")
        member = wait_for(lambda: (h1.out / "rank-3.json").is_file() and json.loads((h1.out / "rank-3.json")
                          .read_text()).get("pid"), 30, "the member's pid")
        c.kill(procs[1], member)
        t0 = time.monotonic()
        assert c.wait_all(procs[1:], LIMIT) != [0], c.logs()  # torchrun: a worker died, the node's job failed
        node_failed_s = time.monotonic() - t0
        go.touch()
        # host 0's launcher then waits in torchrun's exit barrier for host 1's, which is gone: read rank
        # 0's run on its live disk once ranks 0 and 1 finished
        wait_for(lambda: all("finish_s" in json.loads(f.read_text()) for f in (h0.out / "rank-0.json",
                 h0.out / "rank-1.json") if f.is_file()) and len(list(h0.out.glob("rank-*.json"))) == 2, 40,
                 "ranks 0 and 1 to finish")
        finished_s = time.monotonic() - t0
        disk0 = c.live_disk(procs[0])
        assert disk0 is not None, c.logs()
        run_dir = next(p for p in (disk0 / "runs").iterdir() if (p / "run.json").is_file())  # as host 0 sees it
        job = Job(c, [])
        job.run = lambda: em_dist.load_run(run_dir)  # type: ignore[method-assign]
        rec = job.run()
        assert 3 in rec.lost_ranks + rec.late_ranks and 2 not in rec.lost_ranks + rec.late_ranks, \
            (rec.lost_ranks, rec.late_ranks, c.logs())
        assert {r for r, d in rec.delivery.items() if not d["complete"]} == {"3"}, rec.delivery
        journal3 = [p for p in (h1.export / "runs").glob(".spool/*/rank-3.*journal")]
        assert len(journal3) == 1, job.journals()
        assert rec.delivery["3"]["journal"] == f"node1:{c.disk / journal3[0].relative_to(h1.export)}", \
            (rec.delivery["3"], journal3)
        # the leader delivered all of its own and of its member's that it held: nothing of it is left
        assert [f for f in job.journals()["node1"] if f.endswith(".journal")] == \
            [str(journal3[0].relative_to(h1.export))], job.journals()
        in_run = {r: len(rec.metrics(rank=r)) for r in range(4)}
        spool = next((h1.export / "runs" / ".spool").iterdir())
        merged = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "merge", str(run_dir),
                                 "--spool", str(spool)], capture_output=True, text=True, timeout=60,
                                env=host_env(c, h0))
        assert merged.returncode == 0, merged.stdout + merged.stderr
        print(merged.stdout)
        again = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "merge", str(run_dir),
                                "--spool", str(spool)], capture_output=True, text=True, timeout=60, env=host_env(c, h0))
        assert again.returncode == 0 and " 0 records added" in again.stdout, again.stdout + again.stderr  # once
        rec = job.run()
        check_gathered(rec, 4, steps=STEPS, extra=EXTRA)
        _heartbeats_once(rec, 4)
        assert {r for r, d in rec.delivery.items() if not d["complete"]} == {"3"}, rec.delivery
        assert rec.delivery["3"]["records"] == _journaled(h1.export, 3) + _output_lines(h1.export, 3), \
            (rec.delivery["3"], _journaled(h1.export, 3), _output_lines(h1.export, 3))
        print(f"member killed: records in the run {in_run}, after the merge "
              f"{ {r: len(rec.metrics(rank=r)) for r in range(4)} }; finish_s {job.results()[0].get('finish_s')}; "
              f"lost {rec.lost_ranks}, late {rec.late_ranks}; host 1's launcher failed {node_failed_s:.1f} s and "
              f"ranks 0, 1 finished {finished_s:.1f} s after the kill")


def _doc(disk: Path | None) -> dict:
    """Rank 0's run.json on ``disk`` (its host's live disk), or ``{}`` before it is there."""
    files = list((disk / "runs").glob("*/run.json")) if disk is not None else []
    try:
        return json.loads(files[0].read_text()) if files else {}
    except json.JSONDecodeError:  # caught mid-replace
        return {}


def _running(c: Cluster, proc: subprocess.Popen, pid: int) -> bool:
    """Whether process ``pid`` of the host running ``proc`` is alive (signal 0 in its pid space)."""
    try:
        c.kill(proc, pid, 0)
    except (subprocess.CalledProcessError, AssertionError):
        return False
    return True


def _rank0_run_copy(c: Cluster, proc: subprocess.Popen, to: Path) -> Path:
    """A copy of rank 0's run folder, once rank 0's process ended: from host 0's live disk while its
    launcher still runs (it may wait for host 1's in torchrun's rendezvous), else from its export."""
    import shutil

    disk = c.live_disk(proc)
    try:
        if disk is not None:
            run_dir = next(p for p in (disk / "runs").iterdir() if (p / "run.json").is_file())
            return Path(shutil.copytree(run_dir, to / run_dir.name))
    except (OSError, StopIteration):  # the launcher ended meanwhile: its disk went to its export
        shutil.rmtree(to, ignore_errors=True)
    assert c.wait_all([proc], 30) != [124], c.logs()
    runs = [p for p in (c.hosts[0].export / "runs").iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def test_sigterm_while_finish_waits_for_a_cut_off_host_names_the_late_ranks(tmp_path: Path) -> None:
    """Host 1 (ranks 2 and 3, rank 3 relayed by its leader 2) is cut off after its first records reached
    rank 0; every rank finishes, so rank 0's ``finish()`` waits (``dist_timeout`` 60 s) for the goodbyes of
    ranks 2 and 3, which can't come. Rank 0 then gets SIGTERM, as torchrun sends when a host fails: its
    waits are capped at ``signal_close_cap`` and the process dies of the signal, but run.json still says
    how the run ended: Failed, ``signal: SIGTERM``, ranks 2 and 3 in ``late_ranks``, rank 3 relayed by
    rank 2, two nodes, ranks 0 and 1 complete and every record of 2 and 3 that arrived there once.

    Late, not lost, is right: rank 0 never saw their links break (a cut link sends no reset, and the
    silence bound, ``EM_DIST_PEER_TIMEOUT``, is longer than the test), and they are in fact alive on
    host 1 with the rest of their records in their journals there. ``lost_ranks`` means a link rank 0
    saw break (the process died); claiming that here would be a guess."""
    go = tmp_path / "go"
    with Cluster(2, tmp_path) as c:
        h0, h1 = c.hosts
        procs = start(c, "--init", "none", "--timeout", "60", "--wait-file", str(go),
                      env={"EM_DIST_PEER_TIMEOUT": "60"})
        wait_for(lambda: all(_lines(c.live_disk(procs[0]), r) for r in (2, 3)), 40, "host 1's first records at rank 0")
        pid0 = wait_for(lambda: (h0.out / "rank-0.json").is_file() and json.loads((h0.out / "rank-0.json")
                        .read_text()).get("pid"), 30, "rank 0's pid")
        c.set_link(h1, up=False)
        wait_for(lambda: all(_journaled(c.live_disk(procs[1]), r) > _lines(c.live_disk(procs[0]), r) + 20
                             for r in (2, 3)), 30, "records held back on host 1")
        go.touch()
        # rank 1 finished, rank 0 is inside finish() (run.json has its end time) and waits for 2 and 3
        wait_for(lambda: "finish_s" in json.loads((h0.out / "rank-1.json").read_text())
                 and _doc(c.live_disk(procs[0])).get("end_timestamp"), 40, "rank 0 waiting in finish()")
        assert "finish_s" not in json.loads((h0.out / "rank-0.json").read_text()), c.logs()
        signalled = time.monotonic()
        c.kill(procs[0], pid0, signal.SIGTERM)
        wait_for(lambda: not _running(c, procs[0], pid0), 30, "rank 0 to end")
        ended_s = time.monotonic() - signalled
        rec = em_dist.load_run(_rank0_run_copy(c, procs[0], tmp_path / "rank0-run"))
        logs = c.logs()
        # (its finish() itself may return, cut short, a moment before the signal is handed on and ends it)
        assert rec.status == "Failed" and (rec.status_reason or "").startswith("signal: SIGTERM"), \
            (rec.status, rec.status_reason, logs)
        assert rec.signals == ["SIGTERM"]
        assert rec.late_ranks == [2, 3] and rec.lost_ranks == [], (rec.late_ranks, rec.lost_ranks, logs)
        assert rec.world.get("relayed_by") == {"3": 2}, rec.world
        assert rec.world["nodes"] == 2 and rec.world["size"] == 4 and rec.world["transport"] == "gloo", rec.world
        assert rec.end_timestamp is not None
        # ranks 0 and 1 complete; of ranks 2 and 3 what arrived before the cut, each record once
        assert rec.ranks() == [0, 1, 2, 3], rec.ranks()
        for r in (0, 1):
            n = STEPS + r * EXTRA
            assert [p["step"] for p in rec.metrics(type="train", name="v", rank=r)] == list(range(n)), r
            assert [p["step"] for p in rec.metrics(type="val", name="acc", rank=r)] == [n], r
        for r in (2, 3):
            points = rec.metrics(type="train", name="v", rank=r)
            assert points, r
            assert [p["step"] for p in points] == list(range(len(points))), r  # a prefix, no repeat, no gap
            assert [p["value"] for p in points] == [r * 1_000_000 + s for s in range(len(points))], r
        _heartbeats_once(rec, 4)
        assert rec.delivery["1"]["complete"], rec.delivery
        assert {r for r, d in rec.delivery.items() if not d["complete"]} == {"2", "3"}, rec.delivery
        assert all(d["journal"].startswith("node1:") for r, d in rec.delivery.items() if r in ("2", "3")), rec.delivery
        # em_dist's part of the end stays within the signal's cap (5 s) plus the launcher's notice
        assert ended_s < 15, ended_s
        print(f"SIGTERM while finish waits: rank 0 ended {ended_s:.1f} s after the signal; status "
              f"{rec.status} ({rec.status_reason}); late {rec.late_ranks}, lost {rec.lost_ranks}; relayed_by "
              f"{rec.world.get('relayed_by')}; records {({r: len(rec.metrics(rank=r)) for r in range(4)})}")
