"""MLflow runs in, read with MLflow's own client from any tracking URI it takes.

A tracking URI (``sqlite:///mlflow.db``, ``http://mlflow:5000``, ``file:./mlruns`` with
``MLFLOW_ALLOW_FILE_STORE=true``) or a path: a ``.db`` file is a SQLite store, a folder a file
store. Each MLflow run becomes one em_dist run: params are hparams (numbers and booleans
parsed back from MLflow's strings), every metric's history with steps and times, user tags
(not ``mlflow.*``) are labels ``key=value``, its status and times, and its artifacts one output
artifact. MLflow has no ranks: every point is rank 0's. Metric keys map to (type, name) by
:mod:`em_dist.interop.tags`.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

from .folder import ImportedRun
from .tags import split_tag

STATUSES = {"FINISHED": ("Succeeded", None), "FAILED": ("Failed", "failed in MLflow"),
            "KILLED": ("Failed", "killed in MLflow")}
"""MLflow's run status -> em_dist's; a run still RUNNING (or SCHEDULED) there reads as Failed with that said."""

_INT = re.compile(r"[-+]?\d+")


def tracking_uri(source: str) -> str:
    """The tracking URI of ``source``: a URI as given, a ``.db`` file as SQLite, a folder as a file store."""
    if "://" in source or source.startswith("file:"):
        return source
    path = Path(source).resolve()
    return f"sqlite:///{path}" if path.suffix == ".db" else path.as_uri()


def _param(text: str) -> Any:
    """An MLflow param (always a string) as the value it was: int, float, bool, else the string."""
    if _INT.fullmatch(text):
        return int(text)
    if text in ("True", "False"):
        return text == "True"
    try:
        return float(text)
    except ValueError:
        return text


def read_runs(source: str, scratch: Path, *, experiment: str | None = None) -> list[ImportedRun]:
    """The runs of ``experiment`` (default: every experiment) at ``source``; their artifacts are
    downloaded under ``scratch``, which must outlive writing the runs."""
    try:
        tracking = importlib.import_module("mlflow.tracking")
    except ImportError as exc:
        raise ImportError("importing MLflow runs needs mlflow: pip install 'em_dist[interop]' "
                          "(or pip install mlflow-skinny)") from exc
    client = tracking.MlflowClient(tracking_uri=tracking_uri(source))
    experiments = client.search_experiments()
    if experiment is not None:
        experiments = [e for e in experiments if e.name == experiment]
        if not experiments:
            raise ValueError(f"no MLflow experiment named {experiment!r} at {source}")
    out: list[ImportedRun] = []
    for exp in experiments:
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            for r in page:
                out.append(_one(client, exp.name, r, scratch / r.info.run_id, source))
            token = page.token
            if not token:
                break
    return out


def _one(client: Any, experiment: str, r: Any, scratch: Path, source: str) -> ImportedRun:
    points = []
    for key in r.data.metrics:
        type_, name = split_tag(key)
        for m in client.get_metric_history(r.info.run_id, key):
            points.append((type_, name, int(m.step), m.timestamp / 1000.0, float(m.value)))
    points.sort(key=lambda p: (p[3], p[2]))
    status, reason = STATUSES.get(r.info.status, ("Failed", f"{r.info.status} in MLflow when imported"))
    labels = [f"{k}={v}" for k, v in sorted(r.data.tags.items()) if not k.startswith("mlflow.")]
    scratch.mkdir(parents=True, exist_ok=True)
    files = Path(client.download_artifacts(r.info.run_id, "", str(scratch))) if client.list_artifacts(r.info.run_id) else None
    return ImportedRun(
        name=r.info.run_name or r.info.run_id, source=f"MLflow run {r.info.run_id} of experiment {experiment!r} at {source}",
        imported_from="mlflow", points={0: points}, hparams={k: _param(v) for k, v in r.data.params.items()},
        labels=labels, status=status, status_reason=reason, start=r.info.start_time / 1000.0,
        end=r.info.end_time / 1000.0 if r.info.end_time else None, files=files)
