"""A run's metric points as a table file: CSV (standard library) or Parquet (``pyarrow``).

One row per point of every rank, the columns of :data:`em_dist.frames.POINT_COLUMNS`, so a
file read back with pandas is the frame ``RunRecord.dataframe()`` gives.
"""

from __future__ import annotations

import csv
import importlib
from pathlib import Path
from typing import Any

from ..frames import POINT_COLUMNS
from ..store.records import RunRecord


def export_csv(run: RunRecord, out: str | Path) -> Path:
    """Write ``run``'s points to the CSV file ``out`` (empty cells for missing epoch/attempt)."""
    path = Path(out)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(POINT_COLUMNS)
        for p in run.metrics():
            writer.writerow(["" if p.get(c) is None else p.get(c) for c in POINT_COLUMNS])
    return path


def export_parquet(run: RunRecord, out: str | Path) -> Path:
    """Write ``run``'s points to the Parquet file ``out`` (typed columns; epoch a nullable float, attempt a nullable integer)."""
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError as exc:
        raise ImportError("writing Parquet needs pyarrow: pip install 'em_dist[interop]' (or pip install pyarrow)") from exc
    points = run.metrics()
    schema = pa.schema([("type", pa.string()), ("name", pa.string()), ("rank", pa.int64()), ("step", pa.int64()),
                        ("epoch", pa.float64()), ("value", pa.float64()), ("time", pa.float64()), ("attempt", pa.int64())])
    columns: dict[str, list[Any]] = {c: [p.get(c) for p in points] for c in POINT_COLUMNS}
    columns["value"] = [float(p["value"]) for p in points]  # a bool or int metric is a number here
    columns["epoch"] = [None if p["epoch"] is None else float(p["epoch"]) for p in points]  # log(epoch=0.5) exists
    path = Path(out)
    pq.write_table(pa.table(columns, schema=schema), str(path))
    return path
