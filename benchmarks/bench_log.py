"""How much a metric-logging call costs: em_dist against its peers and the physical limit.

The same workload runs through every tracker, each in a fresh process, one after the
other: N steps, each one call logging three scalar metrics (``loss``, ``acc``, ``lr``)
with step and epoch. Reported per tracker: median and p99 µs per step, the time of the
final ``finish()``/``close()``, peak RSS of the process and bytes left on disk. Then the
targets of issue 2, each with PASS/FAIL. Not a test: run it by hand::

    /work/venv/bin/python benchmarks/bench_log.py            # plain table
    /work/venv/bin/python benchmarks/bench_log.py --markdown # for the README
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Result, Workload, run_workload  # noqa: E402

VALUES = "loss = 1.0 / (i + 1); acc = i / N"
EM_STEP = "run.log(type='train', metrics={'loss': loss, 'acc': acc, 'lr': 0.001}, step=i, epoch=i // 1000)"
EM_ENV = {"EM_RUN_PARENT_DIR": "{out_dir}/runs", "EM_ARTIFACT_PARENT_DIR": "{out_dir}/artifacts"}
EM_PENDING = "EXTRA['queued_at_finish'] = len(getattr(run, '_buffer', ()))"  # a peek, for the report only


def em(
    name: str, *, setup: str = "", pre_step: str = VALUES, step: str = EM_STEP, create: str = "", after: str = "", note: str = ""
) -> Workload:
    """An em_dist workload; ``create`` adds keyword arguments to ``create_run``, ``after`` runs after it."""
    return Workload(
        name=name,
        setup=f"{setup}\nimport em_dist as em\nrun = em.create_run(name='bench'{create})\n{after}",
        pre_step=pre_step,
        step=step,
        after_loop=EM_PENDING,
        finish="run.finish()",
        env=dict(EM_ENV),
        note=note,
    )


def raw_append() -> Workload:
    return Workload(
        name="raw JSON-line append",
        setup="import json\nf = open(os.path.join(out_dir, 'metrics.jsonl'), 'w', buffering=65536)",
        pre_step=VALUES,
        step=(
            "f.write(json.dumps({'type': 'train', 'step': i, 'epoch': i // 1000, 'time': time.time(), "
            "'metrics': {'loss': loss, 'acc': acc, 'lr': 0.001}}) + '\\n')"
        ),
        finish="f.close()",
        note="json.dumps + write to a 64 KiB-buffered file: the physical limit",
    )


def mlflow_workload(asynchronous: bool, backend: str = "file") -> Workload:
    uri = "'file:' + os.path.join(out_dir, 'mlruns')" if backend == "file" else "'sqlite:///' + os.path.join(out_dir, 'mlflow.db')"
    sync = ", synchronous=False" if asynchronous else ""
    return Workload(
        name=f"MLflow {backend} store ({'async' if asynchronous else 'sync'})",
        setup=(
            "import logging; logging.getLogger('mlflow').setLevel(logging.ERROR)\n"
            f"import mlflow\nmlflow.set_tracking_uri({uri})\n"
            "mlflow.set_experiment('bench')\nmlflow.start_run()"
        ),
        pre_step=VALUES,
        step=f"mlflow.log_metrics({{'loss': loss, 'acc': acc, 'lr': 0.001, 'epoch': i // 1000}}, step=i{sync})",
        finish=("mlflow.flush_async_logging()\n" if asynchronous else "") + "mlflow.end_run()",
        env={"MLFLOW_ALLOW_FILE_STORE": "true"},
        note=("log_metrics(..., synchronous=False); finish = flush_async_logging() + end_run()" if asynchronous
              else "log_metrics(...); epoch logged as a 4th metric (MLflow has no epoch)"),
    )


def wandb_workload() -> Workload:
    home = "{out_dir}/../wandb-home"
    return Workload(
        name="W&B offline",
        setup="import wandb\nwr = wandb.init(project='bench', dir=out_dir, mode='offline')",
        pre_step=VALUES,
        step="wr.log({'loss': loss, 'acc': acc, 'lr': 0.001, 'epoch': i // 1000}, step=i)",
        after_loop="EXTRA['children'] = True",
        finish="wr.finish()",
        env={
            "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": "{out_dir}",
            "WANDB_CACHE_DIR": home, "WANDB_CONFIG_DIR": home, "WANDB_DATA_DIR": home,
            "WANDB_DISABLE_GIT": "true", "WANDB_DISABLE_CODE": "true",
        },
        note="wandb.init(mode='offline') + run.log(dict, step=i); RSS excludes the wandb-core process (see children)",
    )


def tensorboard_workload() -> Workload:
    return Workload(
        name="TensorBoard SummaryWriter",
        setup="from torch.utils.tensorboard import SummaryWriter\nw = SummaryWriter(log_dir=os.path.join(out_dir, 'tb'))",
        pre_step=VALUES,
        step=(
            "w.add_scalar('train/loss', loss, global_step=i)\n"
            "w.add_scalar('train/acc', acc, global_step=i)\n"
            "w.add_scalar('train/lr', 0.001, global_step=i)"
        ),
        finish="w.close()",
        note="torch.utils.tensorboard: 3 add_scalar per step (no epoch)",
    )


TORCH_CPU_VALUES = "loss = torch.tensor(1.0 / (i + 1)); acc = torch.tensor(i / N); lr = torch.tensor(0.001)"
TORCH_STEP = "run.log(type='train', metrics={'loss': loss, 'acc': acc, 'lr': lr}, step=i, epoch=i // 1000)"
CUDA_SETUP = "import torch\none = torch.ones((), device='cuda')"
CUDA_VALUES = "loss = one * (1.0 / (i + 1)); acc = one * (i / N); lr = one * 0.001"


# -- reporting ---------------------------------------------------------------------------
def _mb(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:,.0f}"


def _bytes(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def row(r: Result) -> list[str]:
    if r.error:
        return [r.name, f"{r.steps:,}", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]
    return [
        r.name,
        f"{r.steps:,}",
        f"{r.percentile_us(50):,.2f}",
        f"{r.percentile_us(99):,.2f}",
        f"{r.mean_us:,.2f}",
        f"{r.finish_s:,.3f}",
        _mb(r.peak_process_mb) + ("" if r.children_mb in (None, 0) else f" (+{_mb(r.children_mb)} child)"),
        _bytes(r.disk_bytes),
    ]


HEADER = ["tracker", "steps", "median µs/step", "p99 µs/step", "mean µs/step", "finish s", "peak RSS MB", "on disk"]


def table(rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        out = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(HEADER) - 1)) + " |"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(x[c]) for x in [HEADER] + rows) for c in range(len(HEADER))]
    fmt = lambda r: "  ".join(x.ljust(w) if c == 0 else x.rjust(w) for c, (x, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(HEADER), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])


def machine_info(python: str) -> list[str]:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def ver(pkg: str) -> str:
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        with open("/proc/loadavg") as f:
            load = "load average " + " ".join(f.read().split()[:3])
    except OSError:
        load = "load average unknown"
    return [
        f"{load} (other work on the machine inflates and scatters every figure)",
        f"CPU: {cpu}, {os.cpu_count()} logical cores ({usable} usable); {platform.system()} {platform.release()}",
        f"Python {platform.python_version()} ({python})",
        "versions: " + ", ".join(f"{p} {ver(p)}" for p in ("em-dist", "torch", "mlflow", "wandb", "tensorboard", "numpy")),
    ]


def cuda_available(python: str) -> bool:
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=120).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


# -- main --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=100_000, help="steps for em_dist, the raw append and the torch rows")
    ap.add_argument("--peer-steps", type=int, default=2_000, help="steps for MLflow (slow: ms per call)")
    ap.add_argument("--fast-peer-steps", type=int, default=20_000, help="steps for W&B offline and TensorBoard")
    ap.add_argument("--rss-points", type=int, default=1_000_000, help="points logged for the RSS-growth target")
    ap.add_argument("--finish-points", type=int, default=100_000, help="points queued for the finish() target")
    ap.add_argument("--only", default="", help="comma-separated substrings: run only the trackers whose names match")
    ap.add_argument("--no-targets", action="store_true", help="skip the extra target workloads")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown, for docs/benchmarks.md")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per tracker process")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the tracker processes")
    args = ap.parse_args(argv)
    py = args.python
    cuda_line = "em_dist, torch CUDA tensors: not run"

    plan: list[tuple[Workload, int]] = [
        (raw_append(), args.steps),
        (em("em_dist", note="run.log(type, metrics, step, epoch); finish() writes and fsyncs the rest"), args.steps),
        (em("em_dist, torch CPU tensors", setup="import torch", pre_step=TORCH_CPU_VALUES, step=TORCH_STEP,
            note="values are 0-dim torch CPU tensors made before each (untimed) call"), args.steps),
    ]
    if cuda_available(py):
        plan.append((em("em_dist, torch CUDA tensors", setup=CUDA_SETUP, pre_step=CUDA_VALUES, step=TORCH_STEP,
                        note="values are 0-dim CUDA tensors from an async kernel; no sync in the timed call"), args.steps))
    else:
        cuda_line = "em_dist, torch CUDA tensors: skipped, torch.cuda.is_available() is False on this machine"
    plan += [
        (mlflow_workload(False), args.peer_steps),
        (mlflow_workload(True), args.peer_steps),
        (mlflow_workload(False, "sqlite"), args.peer_steps),
        (wandb_workload(), args.fast_peer_steps),
        (tensorboard_workload(), args.fast_peer_steps),
    ]
    targets: list[tuple[Workload, int]] = [] if args.no_targets else [
        (em("em_dist finish(), all queued", create=", flush_interval=30",
            after="if hasattr(run, '_wake_at'): run._wake_at = 1 << 62  # benchmark-only: no early wake-up",
            note="flush_interval=30 and the early wake-up disabled, so every point waits for finish()"),
         args.finish_points),
        (em("em_dist 1M points RSS"), args.rss_points),
    ]
    only = [s.strip().lower() for s in args.only.split(",") if s.strip()]
    if only:
        keep = lambda w: any(s in w.name.lower() for s in only)  # noqa: E731
        plan = [p for p in plan if keep(p[0])]
        targets = [p for p in targets if keep(p[0])]

    results: dict[str, Result] = {}
    for w, n in plan + targets:
        print(f"running {w.name} ({n:,} steps) ...", file=sys.stderr, flush=True)
        results[w.name] = run_workload(w, n, python=py, timeout=args.timeout)
        if results[w.name].error:
            print(f"  failed: {results[w.name].error}", file=sys.stderr, flush=True)

    print("## Machine")
    for line in machine_info(py):
        print(f"- {line}")
    floor = [r.timer_floor_ns for r in results.values() if not r.error]
    if floor:
        print(f"- timer overhead inside each measured step: about {min(floor) / 1000:.2f} µs (perf_counter_ns pair)")
    print()
    print("## Per-step cost (each tracker in a fresh process)")
    main_rows = [row(results[w.name]) for w, _ in plan if w.name in results]
    print(table(main_rows, args.markdown))
    print()
    if not any("CUDA" in w.name for w, _ in plan) and (not only or any("cuda" in s for s in only)):
        print(f"- {cuda_line}")
    for w, _ in plan:
        r = results[w.name]
        print(f"- {w.name}: " + (f"could not run here: {r.error}" if r.error else w.note))
    print("- One step = one log call (for TensorBoard: the 3 add_scalar calls). MLflow, W&B and TensorBoard "
          "use fewer steps (--peer-steps, --fast-peer-steps); compare per-step figures, not finish time or bytes.")
    print("- peak RSS is the whole tracker process (interpreter and imports included); "
          "'child' is the RSS of processes it started (W&B's wandb-core), sampled after the loop.")
    for w, _ in plan:
        r = results[w.name]
        if w.name.startswith("em_dist") and not r.error:
            print(f"- {w.name}: {r.extra.get('queued_at_finish', '?'):,} points still queued when finish() was called; "
                  f"loop throughput {r.steps / r.loop_s:,.0f} steps/s")
    print()
    print_targets(results, targets)
    return 0


def print_targets(results: dict[str, Result], targets: list[tuple[Workload, int]]) -> None:
    """The issue's targets, each with PASS/FAIL and the figures behind it."""
    print("## Targets (issue 2)")
    em_r, raw = results.get("em_dist"), results.get("raw JSON-line append")
    if em_r and raw and not em_r.error and not raw.error:
        ratio = em_r.percentile_us(50) / raw.percentile_us(50)
        print(f"- {verdict(ratio <= 2.0)} em_dist median within 2x of the raw append: "
              f"{em_r.percentile_us(50):.2f} vs {raw.percentile_us(50):.2f} µs ({ratio:.2f}x); "
              f"means {em_r.mean_us:.2f} vs {raw.mean_us:.2f} µs ({em_r.mean_us / raw.mean_us:.2f}x)")
    peers = [r for r in results.values() if not r.error and r.name.split()[0] in ("MLflow", "W&B", "TensorBoard")]
    if em_r and not em_r.error and peers:
        fastest = min(peers, key=lambda r: r.percentile_us(50))
        speedup = fastest.percentile_us(50) / em_r.percentile_us(50)
        print(f"- {verdict(speedup >= 40)} em_dist at least 40x faster than the fastest peer "
              f"({fastest.name}, {fastest.percentile_us(50):.1f} µs): {speedup:.0f}x")
    fin = results.get(targets[0][0].name) if targets else None
    if fin and not fin.error:
        queued = fin.extra.get("queued_at_finish", "?")
        print(f"- {verdict(fin.finish_s < 1.0)} finish() with {queued:,} of {fin.steps:,} points queued under 1 s: "
              f"{fin.finish_s:.3f} s")
    elif fin:
        print(f"- FAIL finish() target could not run: {fin.error}")
    mem = results.get(targets[1][0].name) if len(targets) > 1 else None
    if mem and not mem.error:
        growth = mem.rss_growth_mb
        how = "peak over loop+finish" if mem.peak_reset else "process peak (peak reset unavailable, pessimistic)"
        print(f"- {verdict(growth < 50)} RSS growth under 50 MB for {mem.steps:,} points: {growth:.1f} MB "
              f"({mem.rss_before_mb:.0f} MB before the loop, {how} {mem.peak_loop_mb:.0f} MB; "
              f"{mem.extra.get('queued_at_finish', '?'):,} queued at finish, median {mem.percentile_us(50):.2f} µs)")
    elif mem:
        print(f"- FAIL RSS target could not run: {mem.error}")


if __name__ == "__main__":
    sys.exit(main())
