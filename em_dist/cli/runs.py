"""``em run list`` and ``em run show``: read local run folders."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any

from ..errors import RunFormatError
from ..observe.steps import describe_slowest
from ..store.reader import list_runs, load_run, read_summary
from ..store.records import READER_FIELDS, MetricPoint, RunRecord

if TYPE_CHECKING:
    from . import Groups


def register(groups: Groups) -> None:
    run = groups["run"]
    p = run.add_parser("list", help="list the runs in a folder", description="List the local runs, oldest first.")
    p.add_argument("-d", "--dir", default=None, help="parent folder of the runs (default $EM_RUN_PARENT_DIR or .em/runs)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_list)

    p = run.add_parser("show", help="show one run", description="Show a run's status, hparams, last metrics and artifacts.")
    p.add_argument("path", help="run folder, its alternative name, or a run's name (its newest run) under $EM_RUN_PARENT_DIR")
    p.add_argument("--json", action="store_true", help="print everything (metrics included) as JSON")
    p.set_defaults(func=_show)

    p = run.add_parser("merge", help="merge ranks' journals into a finished run",
                       description="Append to a finished run the records its ranks journaled and rank 0 never "
                                   "confirmed, exactly once by (rank, record number); closed journals are deleted "
                                   "once merged. Run it where the journals are (a rank's host), with the run folder "
                                   "copied or mounted there, then upload the run as usual.")
    p.add_argument("path", help="the run folder")
    p.add_argument("--spool", action="append", default=[],
                   help="a folder of journals (rank-<r>.journal); default: <runs folder>/.spool/<run id>")
    p.set_defaults(func=_merge)


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


def _merge(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..store import journal

    run_dir = Path(args.path)
    r = load_run(run_dir)
    if not journal.finished(run_dir):
        print(f"em run merge: run {r.name!r} at {run_dir} is still live; merge once it has ended", file=sys.stderr)
        return 1
    paths = journal.journals_of(r.id, run_dir.parent, [Path(d) for d in args.spool])
    if not paths:
        print(f"no journals of run {r.id} found")
        return 0
    for path in paths:
        merged = journal.merge(run_dir, path)
        state = "complete, journal removed" if merged.removed else "journal still open: run merge again once that rank ended"
        print(f"rank {merged.rank}: {merged.added} records added, the run holds 1..{merged.last} ({state})")
    return 0


def find_run(path: str) -> RunRecord:
    """The run at ``path`` (a folder or an alternative name), else the newest local run named ``path``:
    users know their runs by the name they gave ``create_run``, not by the folder's suffix."""
    try:
        return load_run(path)
    except RunFormatError:
        named = [r for r in list_runs() if r.name == path]
        if not named:
            raise
        if len(named) > 1:
            print(f"em: {len(named)} runs are named {path!r}; showing the newest "
                  f"(the others: {', '.join(r.alternative_name for r in named[:-1])})", file=sys.stderr)
        return named[-1]


def _show(args: argparse.Namespace) -> int:
    r = find_run(args.path)
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
    if r.signals:
        print(f"signals    {', '.join(r.signals)}")
    print(f"world      size {r.world.get('size', 1)}, launcher {r.world.get('launcher', 'none')}" + (f", lost ranks {r.lost_ranks}" if r.lost_ranks else ""))
    for line in _world_lines(r):
        print(line)
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


def _world_lines(r: RunRecord) -> list[str]:
    """Nodes, relays, late ranks, each rank's delivery and drops: where every rank's records are."""
    w, lines = r.world, []
    if w.get("nodes") and w.get("size", 1) > 1:
        lines.append(f"nodes      {w['nodes']}" + (f", relayed by {w['relayed_by']}" if w.get("relayed_by") else ""))
    if r.late_ranks:
        lines.append(f"late ranks {r.late_ranks}")
    lines.extend(_host_lines(r))
    for rank, d in sorted(r.delivery.items(), key=lambda kv: int(kv[0])):
        where = "complete" if d.get("complete") else f"incomplete: the rest is in {d.get('journal') or 'its journal'}"
        lines.append(f"rank {rank:<5} {d.get('records', 0)} records in the run, {where}")
    for rank, d in sorted(r.dropped.items(), key=lambda kv: int(kv[0])):
        lines.append(f"dropped    rank {rank}: {d.get('records', 0)} records, {d.get('output_lines', 0)} output lines")
    return lines


def _host_lines(r: RunRecord) -> list[str]:
    """One line per host of a job on several: its ranks and the addresses their links listened on
    (the platform entries' ``link``), so a rank that bound a wrong network shows."""
    by_host: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for rank, entry in (r.platform.get("ranks") or {}).items():
        if isinstance(entry, dict) and entry.get("host") and str(rank).isdigit():
            by_host.setdefault(str(entry["host"]), []).append((int(rank), entry))
    if len(by_host) < 2:
        return []
    lines = []
    for host, entries in sorted(by_host.items(), key=lambda kv: min(rank for rank, _ in kv[1])):
        entries.sort(key=lambda e: e[0])
        addresses: list[str] = []
        for _rank, entry in entries:
            link = entry.get("link") or {}
            found = [link.get("address")] + [s.get("address") for s in link.get("serves") or [] if isinstance(s, dict)]
            addresses += [a for a in found if a and a not in addresses]
        ranks = ", ".join(str(rank) for rank, _ in entries)
        lines.append(f"host       {host}: ranks {ranks}" + (f" (links on {', '.join(addresses)})" if addresses else ""))
    return lines


def _last_points(r: RunRecord) -> dict[tuple[str, str, int], MetricPoint]:
    last: dict[tuple[str, str, int], MetricPoint] = {}
    for p in r.metrics():
        last[(p["type"], p["name"], p["rank"])] = p
    return last


def _summary(r: RunRecord) -> dict[str, Any]:
    doc = {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name not in READER_FIELDS}
    doc["artifacts"] = [dataclasses.asdict(a) for a in r.artifacts]
    return doc
