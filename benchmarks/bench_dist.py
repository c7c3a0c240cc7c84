"""What rank-aware tracking costs in a real torchrun job (CPU, gloo).

Three measurements, each in fresh ``torchrun --standalone`` jobs launched from here:

1. ``log()`` latency: median and p99 µs per call (three scalar metrics) on rank 0 and
   on rank 1 of a 2-rank job. Rank 1's call only appends to a buffer, like rank 0's.
2. Step-time overhead: a small DDP training loop (gloo, CPU, 4 ranks) that logs three
   metrics every step, with no tracking, with em_dist on every rank, and with the
   rank-0-only MLflow pattern (local file store, ``if rank == 0: mlflow.log_metrics``).
   The configurations alternate over several repetitions; the median loop time of
   each is compared with no tracking. Target: em_dist < 1 %.
3. Gather throughput: 1M records in all, split evenly over 2, 4 and 8 ranks, logged as
   fast as possible, then ``finish()``: records per second landed in rank 0's run
   folder (counted on disk), and how long ``finish()`` takes with the backlog still
   outstanding (target < 1 s at 4 ranks). Under torchrun by default (gloo transport);
   ``--gather-launcher horovodrun`` runs it under ``horovodrun --gloo`` (Horovod transport).

This machine has 2 cores: 4 and 8 ranks are oversubscribed, which inflates step times
and lowers throughput; the figures are lower bounds for a real node. Run by hand::

    /work/venv/bin/python benchmarks/bench_dist.py            # everything, ~5 min on 2 cores
    /work/venv/bin/python benchmarks/bench_dist.py --only log --only gather
    /work/venv/bin/python benchmarks/bench_dist.py --only gather --gather-launcher horovodrun
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
TRACKERS = ("none", "em_dist", "mlflow_rank0")


# -- the worker side (runs under torchrun) ---------------------------------------------

def _rank() -> tuple[int, int]:
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def _percentile(sorted_values: list[int], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, round(q / 100 * (len(sorted_values) - 1))))
    return sorted_values[k] / 1000.0


def worker_log(args: argparse.Namespace) -> dict:
    """Time each ``run.log`` call of this rank."""
    import em_dist as em

    rank, _ = _rank()
    run = em.create_run(name="bench_log")
    lat = []
    perf = time.perf_counter_ns
    for i in range(args.calls):
        loss, acc = 1.0 / (i + 1), i / args.calls
        t0 = perf()
        run.log(type="train", metrics={"loss": loss, "acc": acc, "lr": 0.001}, step=i, epoch=i // 1000)
        lat.append(perf() - t0)
    t0 = time.perf_counter()
    run.finish()
    lat.sort()
    return {"rank": rank, "median_us": _percentile(lat, 50), "p99_us": _percentile(lat, 99),
            "finish_s": time.perf_counter() - t0}


def worker_ddp(args: argparse.Namespace) -> dict:
    """A small DDP loop; ``args.tracker`` decides what each step logs."""
    import torch
    import torch.distributed as dist
    import torch.nn as nn
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    rank, _ = _rank()
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DDP(nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(64, 256, generator=torch.Generator().manual_seed(rank))
    y = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(rank))

    run = None
    if args.tracker == "em_dist":
        import em_dist as em

        run = em.create_run(name="bench_ddp")
    elif args.tracker == "mlflow_rank0" and rank == 0:
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 deprecates the file store
        import mlflow

        mlflow.set_tracking_uri(Path(args.out, "mlruns").resolve().as_uri())
        mlflow.start_run()

    def step(i: int, log: bool) -> int:
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        loss.backward()
        opt.step()
        metrics = {"loss": loss.item(), "acc": (out.argmax(1) == y).float().mean().item(), "lr": 0.01}
        if not log:
            return 0
        t0 = time.perf_counter_ns()
        if run is not None:
            run.log(type="train", metrics=metrics, step=i)
        elif args.tracker == "mlflow_rank0" and rank == 0:
            mlflow.log_metrics(metrics, step=i)
        return time.perf_counter_ns() - t0

    for i in range(args.warmup):
        step(i, False)
    dist.barrier()
    t0 = time.perf_counter()
    in_log_ns = sum(step(i, True) for i in range(args.steps))
    dist.barrier()
    loop_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if run is not None:
        run.finish()
    elif args.tracker == "mlflow_rank0" and rank == 0:
        mlflow.end_run()
    finish_s = time.perf_counter() - t0
    dist.barrier()
    dist.destroy_process_group()
    return {"rank": rank, "loop_s": loop_s, "in_log_s": in_log_ns / 1e9, "finish_s": finish_s}


def _sync_engine(engine: str):
    """(rank, world, barrier, close) over the job's engine; only for lining the ranks up."""
    if engine == "horovod":
        import horovod.torch as hvd
        import torch

        hvd.init()
        count = iter(range(1 << 30))
        barrier = lambda: hvd.allreduce(torch.zeros(1), name=f"bench.barrier.{next(count)}")  # noqa: E731
        return hvd.rank(), hvd.size(), barrier, lambda: None
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = _rank()
    return rank, world, dist.barrier, dist.destroy_process_group


def log_then_finish(run, records: int) -> dict:
    """Log ``records`` one-metric records as fast as possible, then ``finish()``: the seconds of each."""
    t0 = time.perf_counter()
    for i in range(records):
        run.log(type="train", metrics={"x": float(i)}, step=i)
    t1 = time.perf_counter()
    run.finish()
    t_end = time.perf_counter()
    return {"log_s": t1 - t0, "finish_s": t_end - t1, "total_s": t_end - t0}


def worker_gather(args: argparse.Namespace) -> dict:
    """Log ``args.records`` records as fast as possible, then finish; rank 0 counts what landed."""
    import em_dist as em

    rank, world, barrier, close = _sync_engine(args.engine)
    run = em.create_run(name="bench_gather", dist_timeout=120)
    barrier()
    result = {"rank": rank, **log_then_finish(run, args.records)}
    if rank == 0:
        lines = 0
        for path in (Path(run.path) / "metrics").glob("rank-*.jsonl"):
            with open(path, "rb") as f:
                lines += sum(1 for _ in f)
        result.update(landed=lines, expected=world * args.records, lost_ranks=list(run.lost_ranks),
                      transport=run.world.get("transport"))
    barrier()
    close()
    return result


def worker_main(args: argparse.Namespace) -> None:
    fn = {"log": worker_log, "ddp": worker_ddp, "gather": worker_gather}[args.worker]
    result = fn(args)
    Path(args.out, f"rank{result['rank']}.json").write_text(json.dumps(result))


# -- the launcher side -------------------------------------------------------------------

def launch(nproc: int, worker_args: list[str], timeout: float = 600.0, launcher: str = "torchrun") -> list[dict]:
    """Run this file's worker under ``torchrun --standalone`` (or ``horovodrun --gloo``); every rank's result."""
    with tempfile.TemporaryDirectory(prefix="embench-dist-") as tmp:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        env["EM_RUN_PARENT_DIR"] = str(Path(tmp, "runs"))
        env["EM_ARTIFACT_PARENT_DIR"] = str(Path(tmp, "artifacts"))
        env.setdefault("OMP_NUM_THREADS", "1")
        if launcher == "horovodrun":
            horovodrun = str(Path(sys.executable).with_name("horovodrun"))
            cmd = [horovodrun, "-np", str(nproc), "-H", f"localhost:{nproc}", "--gloo",
                   sys.executable, str(HERE), "--out", tmp, "--engine", "horovod", *worker_args]
        else:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   str(HERE), "--out", tmp, *worker_args]
        proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        results = [json.loads(p.read_text()) for p in sorted(Path(tmp).glob("rank*.json"))]
        if proc.returncode != 0 or len(results) != nproc:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{launcher} {' '.join(worker_args)} failed ({proc.returncode}):\n{tail}")
        return sorted(results, key=lambda r: r["rank"])


def bench_log(calls: int) -> list[str]:
    ranks = launch(2, ["--worker", "log", "--calls", str(calls)])
    lines = [f"## log() latency, torchrun 2 ranks, {calls} calls of 3 metrics per rank", "",
             "| rank | median µs | p99 µs | finish s |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['rank']} | {r['median_us']:.2f} | {r['p99_us']:.2f} | {r['finish_s']:.3f} |" for r in ranks]
    return lines


def bench_ddp(nproc: int, steps: int, reps: int) -> list[str]:
    loops: dict[str, list[float]] = {t: [] for t in TRACKERS}
    in_log: dict[str, list[float]] = {t: [] for t in TRACKERS}
    for _ in range(reps):
        for tracker in TRACKERS:
            ranks = launch(nproc, ["--worker", "ddp", "--tracker", tracker, "--steps", str(steps)])
            loops[tracker].append(max(r["loop_s"] for r in ranks))
            in_log[tracker].append(max(r["in_log_s"] for r in ranks))
    base = statistics.median(loops["none"])
    lines = [f"## Step-time overhead: DDP (gloo, CPU), {nproc} ranks, {steps} steps, 3 metrics/step, "
             f"median of {reps} alternating runs", "",
             "| tracking | ms/step | overhead vs none | time inside the log call, slowest rank |",
             "| --- | --- | --- | --- |"]
    for tracker in TRACKERS:
        loop = statistics.median(loops[tracker])
        share = statistics.median(in_log[tracker]) / loop * 100
        lines.append(f"| {tracker} | {loop / steps * 1000:.3f} | {(loop - base) / base * 100:+.2f} % | {share:.3f} % |")
    lines += ["", "runs (s): " + "; ".join(f"{t}: " + ", ".join(f"{v:.2f}" for v in loops[t]) for t in TRACKERS)]
    return lines


def bench_gather(total: int, sizes: list[int], launcher: str) -> list[str]:
    lines = [f"## Gather ({launcher}): {total:,} records in all, logged as fast as possible, then finish()", "",
             "| ranks | records/rank | landed in rank 0 | records/s into rank 0 | finish() rank 0 s | "
             "finish() slowest other rank s |", "| --- | --- | --- | --- | --- | --- |"]
    for n in sizes:
        per_rank = total // n
        ranks = launch(n, ["--worker", "gather", "--records", str(per_rank)], launcher=launcher)
        root = ranks[0]
        others = max(r["finish_s"] for r in ranks[1:])
        rate = root["landed"] / root["total_s"]
        lines.append(f"| {n}{' (oversubscribed)' if n > (os.cpu_count() or 1) else ''} | {per_rank:,} | "
                     f"{root['landed']:,}/{root['expected']:,} | {rate:,.0f} | {root['finish_s']:.3f} | {others:.3f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=["log", "ddp", "gather"],
                        help="run only these parts (repeatable)")
    parser.add_argument("--calls", type=int, default=20_000, help="log() calls per rank (part 1)")
    parser.add_argument("--steps", type=int, default=1500, help="DDP steps per run (part 2)")
    parser.add_argument("--reps", type=int, default=3, help="alternating repetitions (part 2)")
    parser.add_argument("--ddp-ranks", type=int, default=4)
    parser.add_argument("--records", type=int, default=1_000_000, help="records in all (part 3)")
    parser.add_argument("--gather-ranks", type=int, nargs="+", default=[2, 4, 8])
    parser.add_argument("--gather-launcher", choices=["torchrun", "horovodrun"], default="torchrun",
                        help="part 3 under torchrun (gloo transport) or horovodrun --gloo (Horovod transport)")
    # worker-side options (set by the launcher side)
    parser.add_argument("--worker", choices=["log", "ddp", "gather"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=["torch", "horovod"], default="torch", help=argparse.SUPPRESS)
    parser.add_argument("--tracker", choices=TRACKERS, default="none", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=300, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args)
        return

    parts = args.only or ["log", "ddp", "gather"]
    import torch

    print(f"# em_dist distributed benchmark: {os.cpu_count()} cores, torch {torch.__version__}, "
          f"Python {sys.version.split()[0]}\n", flush=True)
    started = time.monotonic()
    if "log" in parts:
        print("\n".join(bench_log(args.calls)) + "\n", flush=True)
    if "ddp" in parts:
        print("\n".join(bench_ddp(args.ddp_ranks, args.steps, args.reps)) + "\n", flush=True)
    if "gather" in parts:
        print("\n".join(bench_gather(args.records, args.gather_ranks, args.gather_launcher)) + "\n", flush=True)
    print(f"(took {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
