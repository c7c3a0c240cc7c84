"""Console timings: run search over 10,000 runs, and a run with 1,000,000 points of one metric.

``--only search``: a real server on SQLite holding 10,000 runs (hparams, labels, statuses
and two metrics each; written straight into the database for speed, as the other
server benchmarks do), then the median time of ``GET /runs`` with the README's example
filter and a few others, server time (``server_ms``) and client wall time. Target < 300 ms.

Builds the run with the public API, uploads it with the real client to a real server
(``em server start`` on a free port, temporary data dir), then measures:

- the server time of the downsampled series request the Metrics tab makes
  (``GET /runs/{id}/metrics?points=2000``; the server's own ``server_ms`` and the
  client's wall time), and of the ``x=time`` variant the console adds;
- in headless Chromium (Debian ``/usr/bin/chromium`` through Playwright): time from
  navigation start to the loss chart drawn on the run's Metrics tab, cold (charting
  library not cached) and warm (reload).

Not a test: run it by hand::

    /work/venv/bin/python benchmarks/bench_console.py [--points 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("EM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def make_run(points: int) -> Path:
    import em_dist as em

    run = em.create_run(name="bench-1m")
    for step in range(points):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1) + (step % 100) * 1e-4}, step=step, epoch=step // 10_000)
    run.finish()
    return Path(run.path)


def start_server(data_dir: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "em_dist.cli.main", "server", "start", "--port", "0",
                             "--data-dir", str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline().decode()
            if line.startswith("em server listening on "):
                return proc, line.split()[-1]
            if not line:
                break
    proc.kill()
    raise SystemExit("the server did not start")


def timed_get(session, url: str, repeat: int) -> tuple[float, float, int]:
    """Median client wall ms, median server_ms, points returned."""
    wall, server, n = [], [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        body = session.get(url, timeout=120).json()
        wall.append((time.perf_counter() - t0) * 1000)
        server.append(body.get("server_ms", float("nan")))
        n = sum(len(s["values"]) for s in body["series"])
    return statistics.median(wall), statistics.median(server), n


def browser_times(url: str, key: str, run_id: str, repeat: int) -> tuple[list[float], list[float]]:
    """Navigation start -> chart drawn: cold (a fresh browser context each: empty cache) and warm (reload)."""
    from playwright.sync_api import sync_playwright

    chart = '.chart[data-metric="train/loss"][data-rendered]'
    cold, warm = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for i in range(repeat):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            # sign in as the console does: the key buys a server-side session, whose cookie the context keeps
            signed = context.request.post(f"{url}/api/v1/session", headers={"Authorization": f"Bearer {key}"})
            assert signed.ok, signed.text()
            page = context.new_page()
            page.goto(f"{url}/#/run/{run_id}/metrics")
            page.wait_for_selector(chart, timeout=60_000)
            cold.append(page.evaluate("performance.now()"))
            if i == 0:
                for _ in range(repeat):
                    page.reload()
                    page.wait_for_selector(chart, timeout=60_000)
                    warm.append(page.evaluate("performance.now()"))
            context.close()
        browser.close()
    return cold, warm

SEARCHES = [
    'hparams.lr < 0.01 and metrics.val/loss < 0.2 and labels contains "baseline" and status = "Succeeded"',
    'hparams.optimizer = "Adam" and hparams.batch_size >= 64',
    'name contains "run-99" or labels contains "rare"',
    "",
]


def seed_runs(data_dir: Path, owner: str, folder_path: str, n: int) -> None:
    """``n`` runs in one folder, inserted in bulk (the API path is what the tests cover)."""
    import datetime as dt
    import random
    import uuid

    from sqlalchemy import insert, select

    from em_dist.server.config import ServerConfig
    from em_dist.server.db import open_database
    from em_dist.server.models import Folder, MetricSeries, Run, User

    rng = random.Random(12)
    db = open_database(ServerConfig.build(data_dir))
    with db.write_session() as session:
        user = session.scalars(select(User).where(User.name == owner)).one()
        folder = session.scalars(select(Folder).where(Folder.owner_id == user.id, Folder.path == folder_path)).one()
        now = dt.datetime.now(dt.timezone.utc)
        runs, series = [], []
        for i in range(n):
            rid = str(uuid.uuid4())
            labels = rng.sample(["baseline", "ablation", "big", "small", "tuned"], 2) + (["rare"] if i % 997 == 0 else [])
            runs.append(dict(
                id=rid, folder_id=folder.id, owner_id=user.id, name=f"run-{i}", local_name=f"run-{i}", alternative_name="",
                status=rng.choice(["Succeeded", "Succeeded", "Failed", "Running"]), labels=labels, description="",
                start_timestamp=(now - dt.timedelta(minutes=n - i)).isoformat(), end_timestamp=None,
                hparams={"lr": 10 ** rng.uniform(-4, -1), "batch_size": rng.choice([16, 32, 64, 128]),
                         "optimizer": rng.choice(["Adam", "SGD", "AdamW"]), "model": {"depth": rng.randint(2, 24)}},
                hparams_ranks={}, platform={}, git=None, world={"size": 1}, lost_ranks=[], extra={},
                created=now - dt.timedelta(seconds=n - i), updated=now))
            for mtype in ("train", "val"):
                series.append(dict(run_id=rid, rank=0, type=mtype, name="loss", count=100, last_step=99,
                                   last_value=rng.uniform(0.01, 1.0)))
        session.execute(insert(Run), runs)
        session.execute(insert(MetricSeries), series)
        session.commit()
    db.dispose()


def bench_search(url: str, key: str, data_dir: Path, runs: int, repeat: int) -> None:
    import requests

    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    assert http.post(f"{url}/api/v1/folders", json={"path": "sweep"}, timeout=30).status_code == 201
    t0 = time.perf_counter()
    seed_runs(data_dir, "bench", "sweep", runs)
    print(f"seeded {runs:,} runs in {time.perf_counter() - t0:.1f} s (SQLite)")
    print(f"\n{'GET /runs?folder=sweep&limit=100&filter=...':<100} {'server ms':>9} {'wall ms':>8} {'total':>6}")
    for filter in SEARCHES:
        wall, server, total = [], [], 0
        for _ in range(repeat + 1):  # the first request warms the caches and is not counted
            t0 = time.perf_counter()
            body = http.get(f"{url}/api/v1/runs", params={"folder": "sweep", "limit": 100, "filter": filter}, timeout=60).json()
            wall.append((time.perf_counter() - t0) * 1000)
            server.append(body["server_ms"])
            total = body["total"]
        label = filter or "(no filter)"
        print(f"{label[:100]:<100} {statistics.median(server[1:]):>9.1f} {statistics.median(wall[1:]):>8.1f} {total:>6,}")


def bench_search_server(tmp: Path, args: argparse.Namespace) -> None:
    proc, url = start_server(tmp / "search-server")
    try:
        from em_dist.server import admin
        from em_dist.server.config import ServerConfig
        from em_dist.server.db import open_database

        db = open_database(ServerConfig.build(tmp / "search-server"))
        key = admin.add_user(db, "bench")
        db.dispose()
        bench_search(url, key, tmp / "search-server", args.runs, args.repeat)
    finally:
        proc.terminate()
        proc.wait(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["search", "chart"], default=None)
    args = parser.parse_args()

    import requests

    tmp = Path(tempfile.mkdtemp(prefix="em-bench-console-"))
    if args.only != "chart":  # search first: its server holds only the 10,000 runs
        bench_search_server(tmp, args)
    if args.only == "search":
        return
    os.environ["EM_RUN_PARENT_DIR"] = str(tmp / "runs")
    os.environ["EM_ARTIFACT_PARENT_DIR"] = str(tmp / "artifacts")
    t0 = time.perf_counter()
    run_dir = make_run(args.points)
    print(f"logged {args.points:,} points in {time.perf_counter() - t0:.1f} s")

    proc, url = start_server(tmp / "server")
    try:
        from em_dist.client.upload import upload_run
        from em_dist.server import admin
        from em_dist.server.config import ServerConfig
        from em_dist.server.db import open_database

        db = open_database(ServerConfig.build(tmp / "server"))
        key = admin.add_user(db, "bench")
        db.dispose()
        t0 = time.perf_counter()
        result = upload_run(run_dir, host=url, api_key=key)
        print(f"uploaded {result.metrics_sent / 1e6:.1f} MB of metrics in {time.perf_counter() - t0:.1f} s")

        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {key}"
        base = f"{url}/api/v1/runs/{result.server_run_id}"
        rows = [
            ("GET /runs/{id}/metrics?points=2000 (x = step)", f"{base}/metrics?type=train&name=loss&points=2000"),
            ("GET /runs/{id}/metrics?x=time&points=2000",
             f"{url}/api/v1/runs/{result.server_run_id}/metrics?type=train&name=loss&points=2000&x=time"),
            ("GET /runs/{id}/metrics (all points, for scale)", f"{base}/metrics?type=train&name=loss"),
        ]
        print(f"\n{'request':<58} {'server ms':>10} {'wall ms':>10} {'points':>10}")
        for label, target in rows:
            wall, server, n = timed_get(http, target, 1 if "all points" in label else args.repeat)
            print(f"{label:<58} {server:>10.1f} {wall:>10.1f} {n:>10,}")

        cold, warm = browser_times(url, key, result.server_run_id, args.repeat)
        print(f"\nbrowser: navigation start -> loss chart drawn ({args.points:,} points, downsampled on the server)")
        print(f"  cold (empty cache, charting library fetched), median of {len(cold)}: {statistics.median(cold):8.0f} ms"
              f" (min {min(cold):.0f}, max {max(cold):.0f}; target < 1500: {'PASS' if statistics.median(cold) < 1500 else 'FAIL'})")
        print(f"  warm (reload), median of {len(warm)}:    {statistics.median(warm):8.0f} ms")
        target = statistics.median(warm) <= 1500
        print(f"  target 'renders in about a second' (warm <= 1.5 s): {'PASS' if target else 'FAIL'}")
    finally:
        proc.terminate()
        proc.wait(15)


if __name__ == "__main__":
    main()
