"""pandas views of runs: one run's metric points, and a listing of runs with hparams and last metrics.

pandas is an optional dependency (``pip install 'em_dist[dataframe]'``), imported on the
first call; without it the call raises an ``ImportError`` that says what to install. The
column names follow the run filter language of the server (``hparams.lr``,
``metrics.val/loss``), so a column read here is the name a filter uses.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import Any

from .store.records import MetricPoint

POINT_COLUMNS = ("type", "name", "rank", "step", "epoch", "value", "time", "attempt")
"""A metric point's columns, one row per point (a "long" frame: pivot it for one column per series)."""

RUN_COLUMNS = ("id", "name", "alternative_name", "folder", "status", "status_reason", "labels",
               "start_timestamp", "end_timestamp", "duration_s", "world_size", "lost_ranks")
"""A run listing's fixed columns; ``hparams.<key>`` and ``metrics.<type>/<name>`` follow them."""


def _pandas() -> Any:
    try:
        return importlib.import_module("pandas")
    except ImportError as exc:
        raise ImportError("em_dist's dataframes need pandas: pip install 'em_dist[dataframe]' "
                          "(or pip install pandas)") from exc


def points_frame(points: Sequence[MetricPoint]) -> Any:
    """A ``pandas.DataFrame`` of metric points, columns :data:`POINT_COLUMNS` in logging order per rank.

    ``epoch`` and ``attempt`` are nullable integers (``epoch`` nullable floats when one is fractional) (``attempt`` is absent in points read from a
    server); ``time`` is seconds since the epoch, as logged.
    """
    pd = _pandas()
    frame = pd.DataFrame.from_records([{c: p.get(c) for c in POINT_COLUMNS} for p in points], columns=list(POINT_COLUMNS))
    frame["rank"] = frame["rank"].astype("int64")
    frame["step"] = frame["step"].astype("int64")
    epochs = frame["epoch"].dropna()
    frame["epoch"] = frame["epoch"].astype("Int64" if (epochs == epochs.round()).all() else "Float64")  # log(epoch=0.5) exists
    frame["attempt"] = frame["attempt"].astype("Int64")
    frame["time"] = frame["time"].astype("float64")
    return frame


def runs_frame(runs: Sequence[Mapping[str, Any]]) -> Any:
    """A ``pandas.DataFrame`` with one row per run summary (what ``Client.runs`` lists): the columns
    :data:`RUN_COLUMNS`, then ``hparams.<key>`` and ``metrics.<type>/<name>`` (the run's latest
    value of each series, from its lowest rank that logged it), a column missing for a run being NaN."""
    pd = _pandas()
    rows: list[dict[str, Any]] = []
    hparams: dict[str, None] = {}  # first-seen order of the extra columns, over every run
    metrics: dict[str, None] = {}
    for run in runs:
        row = {c: run.get(c) for c in RUN_COLUMNS}
        for key, value in (run.get("hparams") or {}).items():
            row[f"hparams.{key}"] = value
            hparams.setdefault(f"hparams.{key}", None)
        for key, value in (run.get("latest") or {}).items():
            row[f"metrics.{key}"] = value
            metrics.setdefault(f"metrics.{key}", None)
        rows.append(row)
    return pd.DataFrame.from_records(rows, columns=[*RUN_COLUMNS, *hparams, *metrics])
