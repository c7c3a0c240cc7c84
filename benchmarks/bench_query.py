"""Metric query: one 1M-point series downsampled to 2,000 points (target: under 300 ms server time).

Run: ``python benchmarks/bench_query.py [--points 1000000] [--target 2000] [--repeat 20]``.
The run (one rank, one metric) is written in the run format, uploaded to a fresh
``em server`` on SQLite, then queried; ``server_ms`` is measured by the server around the
query (database read, decode, downsample, JSON), the wall figure adds HTTP on loopback.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_upload import start_em_server, write_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--target", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="em-bench-query-"))
    proc = None
    try:
        from em_dist.client.read import Client
        from em_dist.client.upload import upload_run

        run_dir = write_run(work / "runs", ranks=1, lines_per_rank=args.points, metrics=("loss",))
        proc, url, key = start_em_server(work / "server")
        started = time.perf_counter()
        result = upload_run(run_dir, host=url, api_key=key)
        print(f"uploaded {args.points} points in {time.perf_counter() - started:.2f} s")
        client = Client(host=url, api_key=key)
        server_ms, wall_ms = [], []
        for _ in range(args.repeat):
            t = time.perf_counter()
            answer = client.metrics(result.server_run_id, type="train", name="loss", rank=0, points=args.target)
            wall_ms.append((time.perf_counter() - t) * 1000)
            server_ms.append(answer["server_ms"])
        (series,) = answer["series"]
        assert series["count"] == args.points and len(series["steps"]) <= args.target
        print(f"{args.points} points -> {len(series['steps'])} points: server median {statistics.median(server_ms):.1f} ms "
              f"(min {min(server_ms):.1f}, max {max(server_ms):.1f}); wall median {statistics.median(wall_ms):.1f} ms "
              f"over {args.repeat} queries; target < 300 ms: {'PASS' if statistics.median(server_ms) < 300 else 'FAIL'}")
        t = time.perf_counter()
        agg = client.aggregate(result.server_run_id, "train", "loss", points=args.target)
        print(f"cross-rank aggregate of the same series to {len(agg['steps'])} points: {(time.perf_counter() - t) * 1000:.1f} ms wall")
        client.close()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
