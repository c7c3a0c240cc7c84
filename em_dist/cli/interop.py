"""``em import tensorboard LOGDIR``, ``em import mlflow SOURCE`` and ``em export RUN --format csv|parquet|tensorboard``."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CommandError
from ..store.layout import run_parent_dir
from .runs import find_run

if TYPE_CHECKING:
    from ..interop.folder import ImportedRun
    from . import Groups

FORMATS = ("csv", "parquet", "tensorboard")


def register(groups: Groups) -> None:
    top = groups["top"]
    p = top.add_parser("import", help="make local runs from another tracker's files",
                       description="Make local run folders from another tracker's files; upload them as any run.")
    sub = p.add_subparsers(dest="import_command", metavar="FORMAT")
    sub.required = True
    tb = sub.add_parser("tensorboard", help="TensorBoard event files (scalars, histograms, images, text; rank-<r> folders are ranks)",
                        description="One run per folder of event files under LOGDIR; a folder rank-<r> is rank r of "
                                    "its parent's run. Scalars, histograms, images and text are imported with their steps and times.")
    tb.add_argument("logdir", help="the TensorBoard log directory")
    tb.add_argument("--name", default=None, help="the runs' name (default: the log directory's name)")
    tb.add_argument("-d", "--dir", default=None, help="parent folder of the new runs (default $EM_RUN_PARENT_DIR or .em/runs)")
    tb.set_defaults(func=_import_tensorboard)
    ml = sub.add_parser("mlflow", help="MLflow runs: params, metric histories, tags, artifacts",
                        description="One local run per MLflow run, read with MLflow's client: params as hparams, "
                                    "every metric's history, user tags as labels, artifacts as an output artifact.")
    ml.add_argument("source", help="a tracking URI (sqlite:///mlflow.db, http://host:5000), a .db file or an mlruns folder")
    ml.add_argument("--experiment", default=None, help="only this experiment (default: every experiment)")
    ml.add_argument("-d", "--dir", default=None, help="parent folder of the new runs (default $EM_RUN_PARENT_DIR or .em/runs)")
    ml.set_defaults(func=_import_mlflow)

    p = top.add_parser("export", help="write a local run's metrics as CSV, Parquet or TensorBoard files",
                       description="Write every rank's metric points of a local run as a CSV or Parquet table "
                                   "(a row per point) or as TensorBoard event files (a folder per rank; "
                                   "histograms, images and text too).")
    p.add_argument("run", help="run folder, its alternative name, or a run's name (its newest run)")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("-o", "--out", default=None,
                   help="file (csv, parquet) or folder (tensorboard); default <alternative name>.<format> here")
    p.set_defaults(func=_export)


def _import_tensorboard(args: argparse.Namespace) -> int:
    from ..interop.tensorboard import read_logdir

    if not Path(args.logdir).is_dir():
        raise CommandError(f"em import tensorboard: {args.logdir} is not a folder")
    runs = read_logdir(args.logdir, name=args.name)
    if not runs:
        raise CommandError(f"em import tensorboard: no event files (events.out.tfevents.*) under {args.logdir}")
    return _write(runs, args.dir)


def _import_mlflow(args: argparse.Namespace) -> int:
    from ..interop.mlflow import read_runs

    with tempfile.TemporaryDirectory(prefix="em-mlflow-") as scratch:  # artifacts, until they are copied
        try:
            runs = read_runs(args.source, Path(scratch), experiment=args.experiment)
        except ValueError as exc:
            raise CommandError(f"em import mlflow: {exc}") from None
        if not runs:
            raise CommandError(f"em import mlflow: no runs at {args.source}")
        return _write(runs, args.dir)


def _write(runs: list[ImportedRun], parent_dir: str | None) -> int:
    """Write each imported run as a local run folder; one line per run says where and what."""
    from ..interop.folder import write_run  # the run-folder writer: not on every `em` command's start-up

    parent = Path(parent_dir) if parent_dir else run_parent_dir()
    for run in runs:
        path = write_run(run, parent)
        skipped = f"; not imported: {', '.join(f'{n} {k}' for k, n in sorted(run.skipped.items()))}" if run.skipped else ""
        points = sum(len(p) for p in run.points.values())
        media = sum(len(m) for m in run.media.values())
        also = f" and {media} media" if media else ""
        print(f"{path}  ranks {sorted(set(run.points) | set(run.media))}, {points} points{also} from {run.source}{skipped}")
    return 0


def _export(args: argparse.Namespace) -> int:
    run = find_run(args.run)
    out = Path(args.out) if args.out else Path(f"{run.alternative_name}.{'tb' if args.format == 'tensorboard' else args.format}")
    if args.format == "tensorboard":
        from ..interop.tensorboard import export_run

        folders = export_run(run, out)
        media = [m for m in run.media() if m.kind != "table"]
        print(f"{out}  {len(folders)} rank folder(s), {len(run.metrics())} points, {len(media)} media (tables left out)")
        return 0
    from ..interop.tables import export_csv, export_parquet

    (export_csv if args.format == "csv" else export_parquet)(run, out)
    print(f"{out}  {len(run.metrics())} points")
    return 0
