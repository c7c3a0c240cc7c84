"""What logging a histogram costs: ``run.log`` with an ``em.Histogram`` of 1M values against TensorBoard.

Each workload runs in a fresh process (benchmarks/_harness.py): N steps, each one call logging a
histogram of the same 1,000,000 float32 values (64 bins) at step i. Reported per tracker: the time
in the call (median, p99, mean), the time of the final ``finish()``/``close()``, and the total from
the first call until that returns (what the job waits for all histograms to be binned and on
disk). em_dist copies the values in the call and bins them on its writer thread;
``SummaryWriter.add_histogram`` bins them in the call, and so does ``wandb.Histogram`` (W&B
offline, when wandb is installed: ``pip install -e .[bench]``; else its row is reported as not
run). Not a test: run it by hand::

    /work/main/.venv/bin/python benchmarks/bench_media.py            # plain table
    /work/main/.venv/bin/python benchmarks/bench_media.py --steps 50 --values 1000000
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Result, Workload, run_workload  # noqa: E402
from bench_log import EM_ENV, machine_info, wandb_workload  # noqa: E402

HEADER = ["tracker", "steps", "median ms/call", "p99 ms/call", "mean ms/call", "finish s", "total s", "on disk"]


def em(name: str, values: str, note: str) -> Workload:
    return Workload(
        name=name,
        setup=f"{values}\nimport em_dist as em\nrun = em.create_run(name='bench-media')",
        step="run.log(type='train', metrics={'weights': em.Histogram(v, bins=64)}, step=i)",
        finish="run.finish()",
        env=dict(EM_ENV),
        note=note,
    )


def tensorboard(values: str) -> Workload:
    return Workload(
        name="TensorBoard add_histogram",
        setup=f"{values}\nfrom torch.utils.tensorboard import SummaryWriter\n"
              "w = SummaryWriter(log_dir=os.path.join(out_dir, 'tb'))",
        step="w.add_histogram('train/weights', v, global_step=i, bins=64)",
        finish="w.close()",
        note="torch.utils.tensorboard: bins in the call (NumPy), the event file written by its thread",
    )


def wandb(values: str) -> Workload:
    offline = wandb_workload()  # the same offline set-up as bench_log's W&B row
    return Workload(
        name="W&B wandb.Histogram (offline)",
        setup=f"{values}\n{offline.setup}",
        step="wr.log({'train/weights': wandb.Histogram(v, num_bins=64)}, step=i)",
        after_loop=offline.after_loop,
        finish=offline.finish,
        env=offline.env,
        note="wandb.Histogram bins in the call (NumPy); wandb-core writes the offline run",
    )


def row(r: Result) -> list[str]:
    if r.error:
        return [r.name, f"{r.steps:,}", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]
    return [r.name, f"{r.steps:,}", f"{r.percentile_us(50) / 1000:,.3f}", f"{r.percentile_us(99) / 1000:,.3f}",
            f"{r.mean_us / 1000:,.3f}", f"{r.finish_s:,.3f}", f"{r.loop_s + r.finish_s:,.3f}",
            f"{r.disk_bytes / 1e3:,.1f} kB"]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(x[c]) for x in [HEADER] + rows) for c in range(len(HEADER))]
    lines = [HEADER, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(x.ljust(w) if c == 0 else x.rjust(w) for c, (x, w) in enumerate(zip(r, widths)))
                     for r in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=50, help="histograms logged per tracker")
    ap.add_argument("--values", type=int, default=1_000_000, help="values per histogram")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per tracker process")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the tracker processes")
    args = ap.parse_args(argv)
    numpy_values = f"import numpy as np\nv = np.random.default_rng(0).standard_normal({args.values}).astype(np.float32)"
    torch_values = f"import torch\ntorch.manual_seed(0)\nv = torch.randn({args.values})"
    plan = [
        em("em_dist Histogram, NumPy", numpy_values, "copied in the call, binned with NumPy on the writer thread"),
        em("em_dist Histogram, torch CPU", torch_values, "cloned in the call, binned with torch.histc on the writer thread"),
        tensorboard(numpy_values),
    ]
    has_wandb = importlib.util.find_spec("wandb") is not None
    if has_wandb:
        plan.append(wandb(numpy_values))
    results: list[Result] = []
    for w in plan:
        print(f"running {w.name} ({args.steps} steps of {args.values:,} values) ...", file=sys.stderr, flush=True)
        results.append(run_workload(w, args.steps, python=args.python, timeout=args.timeout))
        if results[-1].error:
            print(f"  failed: {results[-1].error}", file=sys.stderr, flush=True)
    print("## Machine")
    for line in machine_info(args.python):
        print(f"- {line}")
    print()
    print(f"## One histogram of {args.values:,} float32 values (64 bins) per call, {args.steps} calls")
    print(table([row(r) for r in results]))
    print()
    for r in results:
        print(f"- {r.name}: {r.note}" + (f" (error: {r.error})" if r.error else ""))
    if not has_wandb:
        print("- W&B wandb.Histogram: not run: wandb is not installed here (pip install -e .[bench])")
    ok = [r for r in results if not r.error]
    if len(ok) == len(results):
        em_np = ok[0]
        for peer in ok[2:]:
            print(f"- in the call, em_dist (NumPy) takes {em_np.mean_us / max(peer.mean_us, 1e-9):.2f}x {peer.name}'s "
                  f"time; total until finish() returns: "
                  f"{(em_np.loop_s + em_np.finish_s) / max(peer.loop_s + peer.finish_s, 1e-9):.2f}x")
    return 0 if len(ok) == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
