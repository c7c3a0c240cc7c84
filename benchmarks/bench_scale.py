"""What rank 0 pays as the job grows: 16 and 32 ranks over torchrun (gloo), 64 and 128 over mpirun (mpi4py).

Each job logs 1M records in all (split evenly over the ranks, one metric per record,
as fast as possible), then every rank calls ``finish()`` with its backlog still
outstanding. Rank 0 reports:

- records/s into rank 0: lines landed in its run folder / (log + finish) wall time;
- CPU s per 1M records: rank 0's own process CPU time (all its threads: its training
  thread logging its share, the receiving thread, the writer) per million lines landed;
- threads and sockets: the most seen in rank 0's process while the job ran (sampled
  every 0.1 s from /proc), so they can be compared across sizes;
- ``finish()`` s on rank 0 and exactly-once (every line of every rank, no more);
- the same threads, sockets and CPU for the first node leader (the rank that relays the
  second node's ranks), whose load must not depend on the job's size.

Each size runs with node leaders relaying (the default) and, with ``--flat``, once more
with ``EM_DIST_RELAY=0`` (every rank its own link to rank 0), the design it replaces.

torchrun jobs run as several agents on this host (``--nnodes N --rdzv_backend c10d``),
each agent a simulated node; mpirun jobs are cut into nodes of ``--node-size`` ranks
(``EM_DIST_NODE_SIZE``). This machine has 2 cores shared with other work: every
size here is heavily oversubscribed, so rates are lower bounds and the comparison
across sizes is the figure that matters. Run by hand::

    python benchmarks/bench_scale.py                         # 8 to 128 ranks, relayed
    python benchmarks/bench_scale.py --flat                  # and each size flat as well
    python benchmarks/bench_scale.py --torch 4x4 --mpi       # pick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_dist import log_then_finish  # noqa: E402 - benchmarks/ is on sys.path when run as a script

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]


# -- the worker side -----------------------------------------------------------------------

class _Sampler:
    """The most threads and sockets this process held, sampled every 0.1 s on a thread of its own."""

    def __init__(self) -> None:
        self.threads = self.sockets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def sample(self) -> None:
        self.threads = max(self.threads, len(os.listdir("/proc/self/task")) - 1)  # less the sampler
        socks = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                socks += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
            except OSError:
                pass
        self.sockets = max(self.sockets, socks)

    def stop(self) -> None:
        self.sample()
        self._stop.set()


def worker(args: argparse.Namespace) -> None:
    if args.engine == "mpi":
        from mpi4py import MPI

        comm = MPI.COMM_WORLD
        rank, world, barrier = comm.Get_rank(), comm.Get_size(), comm.Barrier
    else:
        import torch.distributed as dist

        dist.init_process_group("gloo")
        rank, world, barrier = dist.get_rank(), dist.get_world_size(), dist.barrier
    import em_dist as em

    leader = rank == args.leader
    sampler = _Sampler() if rank == 0 or leader else None
    run = em.create_run(name="bench_scale", dist_timeout=300)
    barrier()
    cpu0 = time.process_time()
    result = {"rank": rank, **log_then_finish(run, args.records)}
    if leader:
        sampler.stop()
        Path(args.out, "leader.json").write_text(json.dumps(
            {"cpu_s": time.process_time() - cpu0, "threads": sampler.threads, "sockets": sampler.sockets}))
    if rank == 0:
        sampler.stop()
        cpu = time.process_time() - cpu0
        counts: dict[str, int] = {}
        for path in (Path(run.path) / "metrics").glob("rank-*.jsonl"):
            with open(path, "rb") as f:
                counts[path.stem] = sum(1 for _ in f)
        exact = sorted(counts) == sorted(f"rank-{r}" for r in range(world)) and \
            all(n == args.records for n in counts.values())
        result.update(landed=sum(counts.values()), expected=world * args.records, exact=exact,
                      cpu_s=cpu, threads=sampler.threads, sockets=sampler.sockets,
                      lost=list(run.lost_ranks), transport=run.world.get("transport"),
                      relayed=len(run.world.get("relayed_by") or {}),
                      maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        Path(args.out, "rank0.json").write_text(json.dumps(result))
    barrier()
    if args.engine == "torch":
        dist.destroy_process_group()


# -- the launcher side -----------------------------------------------------------------------

def _env(tmp: str, relay: bool, node_size: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_", "EM_DIST_RELAY", "EM_DIST_NODE_SIZE"))}
    env["EM_DIST_RELAY"] = "1" if relay else "0"
    if node_size:
        env["EM_DIST_NODE_SIZE"] = str(node_size)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["EM_RUN_PARENT_DIR"] = str(Path(tmp, "runs"))
    env["EM_ARTIFACT_PARENT_DIR"] = str(Path(tmp, "artifacts"))
    env["OMP_NUM_THREADS"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_torch(nodes: int, per_node: int, records: int, tmp: str, timeout: float, relay: bool) -> None:
    """``nodes`` torchrun agents on this host, rendezvous over c10d: each agent is one simulated node."""
    port = _free_port()
    agents = []
    for node in range(nodes):
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nodes}", f"--nproc_per_node={per_node}",
               "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", f"--node_rank={node}",
               "--rdzv_id=bench_scale", "--monitor-interval=0.5", str(HERE), "--worker", "--engine", "torch",
               "--out", tmp, "--records", str(records), "--leader", str(per_node if nodes > 1 else -1)]
        agents.append(subprocess.Popen(cmd, env=_env(tmp, relay), cwd=tmp, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True))
    _wait_all(agents, timeout)


def launch_mpi(nproc: int, node_size: int, records: int, tmp: str, timeout: float, relay: bool) -> None:
    leader = node_size if nproc > node_size else -1
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(nproc), "--mca", "btl", "self,vader,tcp",
           sys.executable, str(HERE), "--worker", "--engine", "mpi", "--out", tmp, "--records", str(records),
           "--leader", str(leader)]
    _wait_all([subprocess.Popen(cmd, env=_env(tmp, relay, node_size), cwd=tmp, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)], timeout)


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if p.returncode != 0:
                raise RuntimeError(f"launcher failed ({p.returncode}):\n" + "\n".join(out.splitlines()[-20:]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def measure(kind: str, nodes: int, per_node: int, total: int, timeout: float, relay: bool) -> dict:
    """One job; ``nodes`` x ``per_node`` ranks (torchrun agents, or mpirun cut into nodes of ``per_node``)."""
    world = nodes * per_node
    records = total // world
    with tempfile.TemporaryDirectory(prefix="embench-scale-") as tmp:
        t0 = time.monotonic()
        if kind == "torch":
            launch_torch(nodes, per_node, records, tmp, timeout, relay)
        else:
            launch_mpi(world, per_node, records, tmp, timeout, relay)
        root = json.loads(Path(tmp, "rank0.json").read_text())
        leader = Path(tmp, "leader.json")
        root["leader"] = json.loads(leader.read_text()) if leader.is_file() else None
        root["job_s"] = time.monotonic() - t0
    root.update(kind=kind, world=world, nodes=nodes, per_node=per_node, records_per_rank=records, relay=relay)
    return root


def row(r: dict) -> str:
    shape = f"{r['nodes']}x{r['per_node']}"
    rate = r["landed"] / r["total_s"]
    per_m = r["cpu_s"] / max(1, r["landed"]) * 1e6
    exact = "yes" if r["exact"] and not r["lost"] else f"NO (lost {r['lost']})"
    direct = r["world"] - 1 - r["relayed"]  # ranks with a link of their own into rank 0
    mode = f"relayed: {direct} links into rank 0" if r["relay"] else f"flat: {direct} links"
    lead = r["leader"]
    leader = f"{lead['threads']} / {lead['sockets']} / {lead['cpu_s']:.2f}" if lead and r["relay"] else "-"
    return (f"| {r['world']} | {r['transport']} {shape} | {mode} | {r['landed']:,}/{r['expected']:,} | {rate:,.0f} | "
            f"{per_m:.2f} | {r['threads']} | {r['sockets']} | {r['finish_s']:.2f} | {exact} | {leader} |")


def codec_figures(records: int = 5000) -> list[str]:
    """Bytes per record of a peer's frame (5,000 lines of 3 metrics) raw and under zlib, and the CPU
    each way: the inputs of docs/scale.md's model. zstd is measured when the ``zstandard`` package
    is installed."""
    import random
    import zlib

    from em_dist.ranks.messages import Records, dumps, loads
    from em_dist.store.lines import LineEncoder

    enc, t0 = LineEncoder(), 1.764e9
    lines = [enc(("train", i, i // 1000, t0 + i * 0.01, {"loss": random.random(), "acc": random.random(),
                                                          "lr": 0.001})) for i in range(records)]
    frame = dumps({"seq": 1, "msgs": [Records(lines, 1)]})  # the wire's encoding (msgpack, versioned)
    codecs = [(f"zlib-{lvl}", lambda b, lvl=lvl: zlib.compress(b, lvl), zlib.decompress) for lvl in (1, 3, 6)]
    try:
        import zstandard

        codecs += [(f"zstd-{lvl}", zstandard.ZstdCompressor(level=lvl).compress,
                    zstandard.ZstdDecompressor().decompress) for lvl in (1, 3)]
    except ImportError:
        pass

    def per_record(fn, arg) -> float:
        t = time.perf_counter()
        for _ in range(10):
            fn(arg)
        return (time.perf_counter() - t) / 10 / records * 1e6

    out = ["| codec | bytes/record | encode µs/record (peer or leader) | decode µs/record (rank 0) |",
           "| --- | --- | --- | --- |",
           f"| none (encoded frame) | {len(frame) / records:.1f} | {per_record(dumps, {'seq': 1, 'msgs': [Records(lines, 1)]}):.3f} | "
           f"{per_record(loads, frame):.3f} (decode) |"]
    for name, comp, decomp in codecs:
        packed = comp(frame)
        out.append(f"| {name} | {len(packed) / records:.1f} | {per_record(comp, frame):.2f} | "
                   f"{per_record(decomp, packed):.3f} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=1_000_000, help="records in all, over every rank")
    parser.add_argument("--torch", nargs="*", default=["1x8", "4x4", "4x8"], help="NODESxPER_NODE torchrun jobs")
    parser.add_argument("--mpi", type=int, nargs="*", default=[8, 64, 128], help="mpirun job sizes")
    parser.add_argument("--node-size", type=int, default=8, help="ranks per simulated node of the mpirun jobs")
    parser.add_argument("--flat", action="store_true", help="also run each size with EM_DIST_RELAY=0")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--codecs", action="store_true", help="only the frame codec figures (seconds)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=["torch", "mpi"], default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--leader", type=int, default=-1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.codecs:
        print("\n".join(codec_figures()))
        return
    print(f"# em_dist scale benchmark: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start, "
          f"{args.total:,} records in all per job\n")
    print("| ranks | engine, nodes x ranks | gather | landed in rank 0 | records/s into rank 0 | "
          "rank 0 CPU s per 1M records | rank 0 threads (max) | rank 0 sockets (max) | finish() rank 0 s | "
          "exactly once | first leader: threads / sockets / CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    modes = (True, False) if args.flat else (True,)
    jobs = [("torch", *(int(x) for x in spec.split("x"))) for spec in args.torch]
    jobs += [("mpi", max(1, n // args.node_size), min(n, args.node_size)) for n in args.mpi]
    for kind, nodes, per_node in jobs:
        for relay in modes:
            print(row(measure(kind, nodes, per_node, args.total, args.timeout, relay)), flush=True)
    print(f"\n(load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
