"""Does em_dist slow a Horovod training loop? (issue 8, item 9)

The loop of the issue: ``horovodrun -np 4 --gloo``, 200 small allreduces (a 16-float
tensor each, one ``run.log`` per step when em_dist is on), timed on rank 0 from the
first to the last allreduce. Each mode runs ``--runs`` times (default 5), interleaved;
the median and the spread are printed.

Modes:

- ``none``: Horovod alone (no em_dist import);
- ``em_dist``: ``create_run`` after ``hvd.init()``; records go over em_dist's own gloo
  pairs, on a store found through Horovod's rendezvous (what em_dist does now);
- ``rounds``: the same with the rendezvous hidden from em_dist, so it falls back to
  its alltoall rounds inside Horovod's cycle (what em_dist did before).

    python benchmarks/bench_horovod.py [--runs 5] [--np 4] [--steps 200] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOOP = textwrap.dedent("""
    import os, sys, time
    import horovod.torch as hvd
    import torch
    mode, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    hvd.init()
    run = None
    if mode != "none":
        import em_dist as em
        if mode == "rounds":
            import em_dist.ranks.horovod_store as hs
            hs.rendezvous = lambda: None  # hide Horovod's rendezvous: em_dist falls back to its rounds
        run = em.create_run(name="bench_hvd")
    t = torch.ones(16)
    hvd.allreduce(t, name="warmup")
    t0 = time.perf_counter()
    for i in range(steps):
        t = hvd.allreduce(t, name=f"grad.{i}", op=hvd.Average)
        if run is not None:
            run.log(type="train", metrics={"loss": 1.0 / (i + 1)}, step=i)
    took = time.perf_counter() - t0
    if run is not None:
        run.finish()
    if hvd.rank() == 0:
        with open(out, "w") as f:
            f.write(repr(took))
    hvd.allreduce(t, name="done")
""")


def one(mode: str, np_: int, steps: int, tmp: Path) -> float:
    script = tmp / "loop.py"
    script.write_text(LOOP)
    out = tmp / f"took-{mode}.txt"
    out.unlink(missing_ok=True)
    env = dict(os.environ, EM_RUN_PARENT_DIR=str(tmp / "runs"), OMP_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    horovodrun = str(Path(sys.executable).with_name("horovodrun"))
    cmd = [horovodrun, "-np", str(np_), "-H", f"localhost:{np_}", "--gloo", sys.executable, str(script),
           mode, str(steps), str(out)]
    proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"{mode}: horovodrun failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return float(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--np", type=int, default=4)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--modes", default="none,em_dist,rounds")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args()
    modes = args.modes.split(",")
    times: dict[str, list[float]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as d:
        for i in range(args.runs):
            for mode in modes:  # interleaved: a busy moment of the machine hits every mode alike
                times[mode].append(one(mode, args.np, args.steps, Path(d)))
                print(f"run {i + 1} {mode}: {times[mode][-1]:.3f} s", file=sys.stderr, flush=True)
    base = statistics.median(times[modes[0]])
    if args.markdown:
        print(f"| mode ({args.np} ranks, --gloo, {args.steps} allreduces) | median s | min–max s | vs {modes[0]} |")
        print("| --- | --- | --- | --- |")
    for mode in modes:
        med = statistics.median(times[mode])
        if args.markdown:
            print(f"| {mode} | {med:.2f} | {min(times[mode]):.2f}–{max(times[mode]):.2f} | {med / base:.2f}x |")
        else:
            print(f"{mode:8} median {med:.3f} s  min {min(times[mode]):.3f}  max {max(times[mode]):.3f}  "
                  f"({med / base:.2f}x {modes[0]})  runs {[round(t, 3) for t in times[mode]]}")


if __name__ == "__main__":
    main()
