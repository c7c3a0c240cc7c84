"""Failure-path trials of issue 8 (slow; not a test, CI runs bounded versions in tests/).

Three experiments, each on real processes:

``--jobs N``   (item 1) N 2-rank gloo jobs whose main threads update ``run.hparams`` in a
               tight loop get SIGTERM on every rank; a rank that has not exited 30 s later
               is a hang. Prints hangs out of N.
``--single N`` (item 2) N single processes logging in a fast loop get SIGTERM; for each,
               the records logged more than ``flush_interval`` (0.5 s) before the signal that
               are not on disk, the status, the end time and the exit status.
``--kill9 N``  (item 6) N single processes logging in a fast loop get SIGKILL at a random
               moment; the lag between the kill and the newest record on disk, and the
               records older than 0.5 s that were lost (lag beyond 0.5 s times the rate).

    python benchmarks/bench_failures.py --jobs 200 --single 20 --kill9 15
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
INTERVAL = 0.5

FAST_LOOP = """
import os, sys, time
import em_dist as em
run = em.create_run(name="trial")
t0 = time.monotonic()
step, said = 0, False
while True:
    run.log(type="train", metrics={"loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
    step += 1
    if not said and time.monotonic() - t0 >= 1.0:
        open(os.path.join(sys.argv[1], "ready"), "w").close()
        said = True
"""


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, EM_RUN_PARENT_DIR=str(tmp / "runs"), EM_TEST_OUT=str(tmp), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def _wait_file(path: Path, procs: list[subprocess.Popen], timeout: float = 120) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        if any(p.poll() is not None for p in procs):
            return False
        time.sleep(0.01)
    return False


def _the_run(tmp: Path):
    sys.path.insert(0, str(REPO))
    import em_dist as em

    [rec] = em.list_runs(tmp / "runs")
    return rec


def job_trial() -> tuple[bool, str]:
    """The CI test's trial (tests/ranks/test_signal_deadlock.py), once."""
    sys.path.insert(0, str(REPO))
    from tests.ranks.test_signal_deadlock import sigterm_trial

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        try:
            hung, codes = sigterm_trial(tmp)
        except AssertionError as exc:
            return False, f"did not start: {exc}"
        rec = _the_run(tmp)
        return hung, f"{rec.status} / {rec.status_reason} / exit {codes}"


def single_trial(sig: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "train.py").write_text(FAST_LOOP)
        proc = subprocess.Popen([sys.executable, str(tmp / "train.py"), str(tmp)], env=_env(tmp),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not _wait_file(tmp / "ready", [proc]):
                return {"error": "did not start"}
            time.sleep(random.uniform(0.0, 1.0))  # a random moment of the writer's cycle
            sent = time.time()
            proc.send_signal(sig)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        rec = _the_run(tmp)
        lines = (Path(rec.path) / "metrics" / "rank-0.jsonl").read_bytes().splitlines()
        first, last = json.loads(lines[0]), json.loads(lines[-1])
        rate = (len(lines) - 1) / max(1e-9, last["time"] - first["time"])
        lag = sent - last["time"]
        return {
            "exit": proc.returncode, "status": rec.status, "reason": rec.status_reason, "end": rec.end_timestamp,
            "lag_s": lag, "records": len(lines), "lost_older": max(0, int(rate * (lag - INTERVAL))),
        }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=0)
    p.add_argument("--single", type=int, default=0)
    p.add_argument("--kill9", type=int, default=0)
    args = p.parse_args()
    if args.jobs:
        t0, hangs, reasons = time.monotonic(), 0, {}
        for i in range(args.jobs):
            hung, reason = job_trial()
            hangs += hung
            reasons[reason] = reasons.get(reason, 0) + 1
            print(f"job {i + 1}/{args.jobs}: {'HANG' if hung else 'ok'} {reason}", flush=True)
        print(f"item 1: {hangs} hangs out of {args.jobs} SIGTERM trials ({time.monotonic() - t0:.0f} s); {reasons}")
    for label, n, sig in (("item 2 (SIGTERM)", args.single, signal.SIGTERM), ("item 6 (SIGKILL)", args.kill9, signal.SIGKILL)):
        if not n:
            continue
        rows = [single_trial(sig) for _ in range(n)]
        for r in rows:
            print(label, r, flush=True)
        ok = [r for r in rows if "error" not in r]
        lost = sum(r["lost_older"] for r in ok)
        worst = max((r["lag_s"] for r in ok), default=float("nan"))
        print(f"{label}: {len(ok)} trials; records older than {INTERVAL}s lost: {lost} in total, "
              f"{sum(r['lost_older'] > 0 for r in ok)} trials with any; worst lag {worst:.3f} s; exit statuses "
              f"{sorted({r['exit'] for r in ok})}; statuses {sorted({(r['status'], r['reason']) for r in ok})}; "
              f"end time set in {sum(bool(r['end']) for r in ok)}")


if __name__ == "__main__":
    main()
