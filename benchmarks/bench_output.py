"""What capturing stdout costs a training script: printing N lines with em_dist's capture on, off, and without em_dist.

Each row is a fresh process (benchmarks/_harness.py) that prints N lines of ~40 bytes,
one per timed step, to a pipe its parent drains (what torchrun and most launchers give
a rank; ``--terminal``: to a pseudo-terminal, what a user at a terminal has). Three ways to print: ``print()`` (Python's buffer: one write per 8 KiB),
``print(..., flush=True)`` (one write per line) and ``os.write(1, ...)`` (one write per
line, no Python buffer, what C code does). Reported: median and p99 µs per line, the
time of ``finish()`` (the capture handing over its last lines, the writer writing them)
and how many lines the run recorded. Not a test: run it by hand::

    /work/main/.venv/bin/python benchmarks/bench_output.py [--lines 100000] [--terminal]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Workload, run_workload  # noqa: E402

WAYS = {
    "print": "print(f'step {i} loss {1.0 / (i + 1):.6f} ok')",
    "print flush": "print(f'step {i} loss {1.0 / (i + 1):.6f} ok', flush=True)",
    "os.write": "os.write(1, f'step {i} loss {1.0 / (i + 1):.6f} ok\\n'.encode())",
}
MODES = {
    "no em_dist": ("", "pass"),
    "em_dist, capture off": ("import em_dist as em\nrun = em.create_run(name='bench', capture_output=False)", "run.finish()"),
    "em_dist, capture on": ("import em_dist as em\nrun = em.create_run(name='bench')", "run.finish()"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--terminal", action="store_true",
                    help="print to a pseudo-terminal (a user's terminal) instead of a pipe (a launcher's)")
    args = ap.parse_args()
    print(f"# printing {args.lines:,} lines to a {'terminal' if args.terminal else 'pipe'}; µs per line\n")
    print(f"{'way':<12} {'mode':<22} {'median':>8} {'p99':>8} {'mean':>8} {'finish s':>9} {'recorded':>9}")
    for way, step in WAYS.items():
        for mode, (setup, finish) in MODES.items():
            with tempfile.TemporaryDirectory(prefix="embench-out-") as keep:
                w = Workload(name=f"{way} / {mode}", setup=setup, step=step, finish=finish,
                             env={"EM_RUN_PARENT_DIR": "{out_dir}/runs"})
                res = run_workload(w, args.lines, python=args.python, keep_dir=Path(keep), terminal=args.terminal)
                if res.error:
                    print(f"{way:<12} {mode:<22} error: {res.error}")
                    continue
                logs = list(Path(keep).glob("runs/*/logs/rank-0.log"))
                recorded = sum(1 for _ in open(logs[0], "rb")) if logs else 0
                lat = sorted(res.latencies_ns)
                med, p99 = lat[len(lat) // 2] / 1e3, lat[int(len(lat) * 0.99)] / 1e3
                mean = sum(lat) / len(lat) / 1e3
                print(f"{way:<12} {mode:<22} {med:8.2f} {p99:8.2f} {mean:8.2f} {res.finish_s:9.3f} {recorded:9,}")
    print("\nrecorded: lines in logs/rank-0.log after finish() (every printed line, with capture on)")


if __name__ == "__main__":
    main()
