"""What the system-metrics sampler costs a rank: CPU time per sample, and its share of a core at the default interval.

Two measurements per role (every rank reads its process; local rank 0 also reads the host):

- ``sample()`` called in a loop: the CPU time (``thread_time``) of one reading;
- the sampler's own thread at a short interval (``--interval``, default 0.05 s) for
  ``--seconds``: the process's CPU time over that span, less an idle baseline of the same
  length, divided by the samples taken; scaled to the default 10 s interval.

The target (issue 11): under 0.1% of one core per rank at the default interval. Not a test::

    python benchmarks/bench_system.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from em_dist.observe.sampler import DEFAULT_INTERVAL, SystemSampler  # noqa: E402

TARGET = 0.001  # of one core


def per_sample_cpu(host: bool, reps: int) -> float:
    """CPU seconds of one ``sample()`` on this thread (median of ``reps``)."""
    sampler = SystemSampler(DEFAULT_INTERVAL, lambda *_: None, lambda: None, host=host)
    sampler.sample()  # opens the readers (psutil import, NVML init): once per run, not per sample
    costs = []
    for _ in range(reps):
        t0 = time.thread_time()
        sampler.sample()
        costs.append(time.thread_time() - t0)
    return statistics.median(costs)


def thread_cpu(host: bool, interval: float, seconds: float) -> tuple[float, int]:
    """(CPU seconds the sampler's thread added, samples taken) over ``seconds`` at ``interval``."""
    taken = []
    t0 = time.process_time()
    time.sleep(seconds)
    idle = time.process_time() - t0
    sampler = SystemSampler(interval, lambda i, t, m: taken.append(i), lambda: (len(taken), time.time()), host=host)
    t0 = time.process_time()
    sampler.start()
    time.sleep(seconds)
    sampler.stop(5.0)
    return max(0.0, time.process_time() - t0 - idle), len(taken)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interval", type=float, default=0.05, help="the shortened interval of the thread measurement")
    ap.add_argument("--seconds", type=float, default=5.0, help="how long the thread samples per role")
    ap.add_argument("--reps", type=int, default=200, help="sample() calls of the loop measurement")
    args = ap.parse_args()
    print(f"system sampler cost  (python {sys.version.split()[0]}, {os.cpu_count()} CPUs, pid {os.getpid()})")
    print(f"{'role':28} {'sample() CPU':>13} {'thread CPU/sample':>18} {'share of a core @10 s':>22}  target < 0.1%")
    for role, host in (("rank (process only)", False), ("local rank 0 (process+host)", True)):
        one = per_sample_cpu(host, args.reps)
        cpu, n = thread_cpu(host, args.interval, args.seconds)
        each = cpu / n if n else float("nan")
        share = max(one, each) / DEFAULT_INTERVAL
        verdict = "PASS" if share < TARGET else "FAIL"
        print(f"{role:28} {one * 1e3:10.3f} ms {each * 1e3:15.3f} ms {share * 100:21.4f}%  {verdict} ({n} samples)")


if __name__ == "__main__":
    main()
