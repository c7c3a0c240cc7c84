"""``em run list`` and ``em run show``: read local run folders."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ..observe.steps import describe_slowest
from ..store.reader import list_runs, load_run, read_summary
from ..store.records import RunRecord


def register(groups: dict) -> None:
    run = groups["run"]
    p = run.add_parser("list", help="list the runs in a folder", description="List the local runs, oldest first.")
    p.add_argument("-d", "--dir", default=None, help="parent folder of the runs (default $EM_RUN_PARENT_DIR or .em/runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_list)

    p = run.add_parser("show", help="show one run", description="Show a run's status, hparams, last metrics and artifacts.")
    p.add_argument("path", help="run folder, or its alternative name under $EM_RUN_PARENT_DIR")
    p.add_argument("--json", action="store_true", help="print everything (metrics included) as JSON")
    p.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    """Metadata only (run.json and the writer's summary.json): never a metric file, so a run of
    millions of points lists as fast as an empty one."""
    runs = list_runs(args.dir)
    if args.json:
        json.dump([dict(_summary(r), summary=read_summary(r.path)) for r in runs], sys.stdout, indent=1)
        print()
        return 0
    if not runs:
        print("no runs found")
        return 0
    rows = [("NAME", "STATUS", "WORLD", "STARTED", "RECORDS", "PATH")]
    for r in runs:
        summary = read_summary(r.path)
        records = str(sum(summary["records"].values())) if summary else "-"
        rows.append((r.name, r.status, str(r.world.get("size", 1)), (r.start_timestamp or "")[:19], records, r.path or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _show(args: argparse.Namespace) -> int:
    r = load_run(args.path)
    if args.json:
        doc = _summary(r)
        doc.update(hparams=r.hparams, rank_hparams=r.rank_hparams, platform=r.platform, git=r.git, metrics=r.metrics(),
                   rank_timing=r.rank_timing())
        json.dump(doc, sys.stdout, indent=1, default=str)
        print()
        return 0
    status = r.status + (f" ({r.status_reason})" if r.status_reason else "")
    print(f"run        {r.name}  [{r.alternative_name}]")
    print(f"id         {r.id}")
    print(f"status     {status}")
    print(f"started    {r.start_timestamp}")
    print(f"ended      {r.end_timestamp or '-'}")
    print(f"world      size {r.world.get('size', 1)}, launcher {r.world.get('launcher', 'none')}" + (f", lost ranks {r.lost_ranks}" if r.lost_ranks else ""))
    if r.labels:
        print(f"labels     {', '.join(r.labels)}")
    print(f"path       {r.path}")
    print("hparams")
    for k, v in r.hparams.items():
        print(f"  {k} = {v!r}")
    print("last metrics (type/name: value @ step, per rank)")
    for (type_, name, rank), p in sorted(_last_points(r).items()):
        print(f"  {type_}/{name} rank {rank}: {p['value']} @ step {p['step']}" + (f", epoch {p['epoch']}" if p["epoch"] is not None else ""))
    timing = r.rank_timing()
    if any(e["step_time_s"] is not None for e in timing["ranks"]):
        print(f"slowest    {describe_slowest(timing)}")
        print("step time (median per rank)")
        for e in timing["ranks"]:
            lag = f", lag {e['lag_s'] * 1000:.1f} ms" if e["lag_s"] is not None else ""
            step_time = f"{e['step_time_s'] * 1000:.1f} ms" if e["step_time_s"] is not None else "-"
            print(f"  rank {e['rank']}: {step_time}{lag}  ({e['steps']} steps)")
    print("artifacts")
    for a in r.artifacts:
        print(f"  {a.role:6} {a.name}  ({len(a.files)} files)  {a.path}")
        for f in a.files:
            print(f"         {f['path']}  {f['size']} B  sha256 {f['sha256'][:16]}…")
    return 0


def _last_points(r: RunRecord) -> dict:
    last: dict = {}
    for p in r.metrics():
        last[(p["type"], p["name"], p["rank"])] = p
    return last


def _summary(r: RunRecord) -> dict:
    doc = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name not in ("points", "output")}
    doc["artifacts"] = [dataclasses.asdict(a) for a in r.artifacts]
    return doc
