"""Upload + ingest of 1M metric points (4 ranks) to em_dist's server vs MLflow's, and 1 GiB artifact throughput.

Run: ``python benchmarks/bench_upload.py [--points 1000000] [--artifact-mib 1024] [--skip-mlflow]``.
The run folder is written directly in the run format (docs/format.md) for speed: 4 ranks,
2 metrics per log line, ``points / 8`` lines per rank. Both servers use SQLite on loopback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    return e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_em_server(data_dir: Path) -> tuple[subprocess.Popen, str, str]:
    """``em server start --port 0`` on SQLite in ``data_dir``; returns (process, url, api key)."""
    proc = subprocess.Popen([sys.executable, "-m", "em_dist.cli.main", "server", "start", "--port", "0", "--data-dir", str(data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline().decode()
            if line.startswith("em server listening on "):
                url = line.split()[-1]
                key = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "server", "user", "add", "bench",
                                      "--data-dir", str(data_dir)], capture_output=True, text=True, env=env(), check=True).stdout.strip()
                return proc, url, key
            if not line:
                break
    proc.kill()
    raise RuntimeError("em server did not start")


def write_run(parent: Path, ranks: int, lines_per_rank: int, metrics: tuple[str, ...]) -> Path:
    """A finished run folder written straight in the run format (docs/format.md), for speed."""
    run_id = str(uuid.uuid4())
    run_dir = parent / f"bench_{run_id[:6]}"
    (run_dir / "metrics").mkdir(parents=True)
    now = time.time()
    meta = {"format_version": 1, "id": run_id, "name": "bench", "alternative_name": run_dir.name, "labels": [],
            "description": "", "status": "Succeeded", "status_reason": None,
            "start_timestamp": "2026-01-01T00:00:00+00:00", "end_timestamp": "2026-01-01T01:00:00+00:00",
            "pid": 0, "host": "bench", "world": {"size": ranks, "launcher": "torchrun", "backend": "gloo"}, "lost_ranks": []}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (run_dir / "hparams.json").write_text(json.dumps({"lr": 0.1}))
    (run_dir / "platform.json").write_text(json.dumps({"world": meta["world"], "ranks": {}}))
    (run_dir / "artifacts.json").write_text("[]")
    for rank in range(ranks):
        with open(run_dir / "metrics" / f"rank-{rank}.jsonl", "w") as fh:
            for step in range(lines_per_rank):
                values = {m: 1.0 / (step + 1) + rank + i for i, m in enumerate(metrics)}
                fh.write(json.dumps({"type": "train", "step": step, "epoch": step // 10000, "time": now + step * 1e-3,
                                     "metrics": values}) + "\n")
    return run_dir


def bench_em(run_dir: Path, url: str, key: str) -> float:
    from em_dist.client.upload import upload_run

    started = time.perf_counter()
    result = upload_run(run_dir, host=url, api_key=key)
    elapsed = time.perf_counter() - started
    print(f"em_dist: {result.metrics_sent / 1e6:.1f} MB of metric lines uploaded and ingested in {elapsed:.2f} s")
    return elapsed


def bench_mlflow(run_dir: Path, work: Path) -> float:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                             "--default-artifact-root", str(work / "mlruns"), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env())
    try:
        import requests

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        exp = client.create_experiment(f"bench-{uuid.uuid4().hex[:6]}")
        run = client.create_run(exp)
        metrics = []
        for path in sorted((run_dir / "metrics").glob("rank-*.jsonl")):
            rank = path.stem.split("-")[1]
            with open(path) as fh:
                for line in fh:
                    rec = json.loads(line)
                    ts = int(rec["time"] * 1000)
                    for name, value in rec["metrics"].items():
                        metrics.append(Metric(f"rank{rank}/{rec['type']}/{name}", value, ts, rec["step"]))
        started = time.perf_counter()
        for i in range(0, len(metrics), 1000):
            client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
        elapsed = time.perf_counter() - started
        print(f"mlflow:  {len(metrics)} points sent with log_batch (1000 per call) in {elapsed:.2f} s")
        return elapsed
    finally:
        proc.terminate()
        proc.wait(30)


def bench_artifact(work: Path, url: str, key: str, mib: int) -> float:
    """Upload a ``mib`` MiB artifact, then again (already held); returns the first upload's MiB/s."""
    from em_dist.client.upload import upload_artifact

    art = work / "artifact"
    (art / "files").mkdir(parents=True)
    src = art / "files" / "big.bin"
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with open(src, "wb") as fh:
        for i in range(mib):
            chunk = block[:-8] + i.to_bytes(8, "little")
            digest.update(chunk)
            fh.write(chunk)
    meta = {"format_version": 1, "id": str(uuid.uuid4()), "name": "big", "alternative_name": "big", "labels": [],
            "description": "", "created_timestamp": None, "references": [],
            "files": [{"path": "big.bin", "size": mib * 1024 * 1024, "sha256": digest.hexdigest()}]}
    (art / "artifact.json").write_text(json.dumps(meta))
    started = time.perf_counter()
    shutil.copyfile(src, work / "copy.bin")
    os.sync()
    copy_s = time.perf_counter() - started
    started = time.perf_counter()
    result = upload_artifact(art, host=url, api_key=key)
    upload_s = time.perf_counter() - started
    assert result.bytes_sent == mib * 1024 * 1024
    print(f"artifact {mib} MiB: upload {mib / upload_s:.0f} MiB/s ({upload_s:.2f} s, server hashes and stores it); "
          f"local copy {mib / copy_s:.0f} MiB/s ({copy_s:.2f} s)")
    again = time.perf_counter()
    result = upload_artifact(art, host=url, api_key=key)
    print(f"artifact re-upload: {result.bytes_sent} bytes sent in {time.perf_counter() - again:.3f} s (blob already held)")
    return mib / upload_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--artifact-mib", type=int, default=1024)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="em-bench-"))
    proc = None
    try:
        run_dir = write_run(work / "runs", ranks=4, lines_per_rank=args.points // 8, metrics=("loss", "acc"))
        proc, url, key = start_em_server(work / "server")
        print(f"{args.points} points, 4 ranks x {args.points // 8} lines x 2 metrics")
        em_s = bench_em(run_dir, url, key)
        if not args.skip_mlflow:
            ml_s = bench_mlflow(run_dir, work)
            print(f"em_dist is {ml_s / em_s:.1f}x faster than mlflow log_batch")
        if args.artifact_mib:
            bench_artifact(work, url, key, args.artifact_mib)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
