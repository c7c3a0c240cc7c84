"""Where a new Run lives: a fresh folder, or the folder of the run it continues (a restarted job).

A restarted job (torchrun ``--max-restarts``, a SLURM requeue, ``create_run(id=...,
resume="allow")``) finds the folder of the run with its id and appends to it: each
start is an *attempt* in ``run.json``'s ``attempts`` list (start, end, world size,
status and the reason it ended); ``restarts`` counts them after the first. Metric
lines written by a later attempt carry ``"attempt": n`` (docs/format.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunFormatError
from . import layout
from .files import read_json

RESUME_POLICIES = ("allow", "must", "never")
"""W&B's and MLflow users' words: continue a run if it exists / it must exist / it must not."""


@dataclass
class RunPlace:
    """A run's identity and folder, and the attempts recorded so far (this one last)."""

    id: str
    alternative_name: str
    path: Path
    start_timestamp: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    resumed: bool = False

    @property
    def attempt(self) -> int:
        """This attempt's index (0 for a run's first start)."""
        return len(self.attempts) - 1


def check_resume(resume: object) -> str | None:
    if resume is not None and resume not in RESUME_POLICIES:
        raise ValueError(f"resume must be one of {RESUME_POLICIES} or None, got {resume!r}")
    return resume


def new_place(name: str, run_id: str, started: float, world_size: int) -> RunPlace:
    """A fresh run folder (not created yet: the writer makes it)."""
    alt = layout.alternative_name(name, started)
    return RunPlace(run_id, alt, (layout.run_parent_dir() / alt).resolve(), layout.iso_time(started),
                    [_attempt(started, world_size)])


def place_run(name: str, run_id: str, resume: str | None, started: float, world_size: int,
              explicit: bool = False) -> RunPlace:
    """The place of rank 0's (or a single process's) run: continued when a run with ``run_id`` exists.

    ``resume``: ``"allow"`` (or None) continues an existing run, ``"must"`` raises when there is
    none, ``"never"`` raises when there is one, ``"fresh"`` (a job's first attempt, whose derived
    id an earlier job with the same launcher identity may have used) starts a new run under a
    new id.
    """
    found = layout.find_run_dir(run_id, name)
    if found is None and explicit:
        found = layout.find_run_dir(run_id)  # an id the user gave may belong to a run of another name
    if found is None:
        if resume == "must":
            raise ValueError(f"create_run(id={run_id!r}, resume='must'): no run with that id under "
                             f"{layout.run_parent_dir()}; check the id (run.json 'id') or EM_RUN_PARENT_DIR")
        return new_place(name, run_id, started, world_size)
    if resume == "fresh":
        return new_place(name, str(uuid.uuid4()), started, world_size)
    if resume == "never":
        raise ValueError(f"create_run(id={run_id!r}, resume='never'): a run with that id exists at {found}; "
                         "pass another id or resume='allow' to continue it")
    doc = read_json(found / layout.RUN_FILE, None)
    if not isinstance(doc, dict):
        raise RunFormatError(f"cannot continue the run at {found}: its {layout.RUN_FILE} is unreadable")
    attempts = [dict(a) for a in doc.get("attempts") or []] or [_first_attempt(doc)]
    last = attempts[-1]
    if last.get("end") is None:  # the previous attempt died without finishing (kill -9, node loss)
        beat = read_json(found / layout.HEARTBEAT_FILE, None) or {}
        when = beat.get("time") if isinstance(beat, dict) else None
        last.update(end=layout.iso_time(when) if when else None, status="Failed", reason=last.get("reason") or "crashed")
    attempts.append(_attempt(started, world_size))
    return RunPlace(run_id, found.name, found.resolve(), doc.get("start_timestamp") or layout.iso_time(started), attempts, True)


def end_attempt(attempts: list[dict[str, Any]], end: str, status: str, reason: str | None) -> None:
    """Close the current (last) attempt with how it ended."""
    if attempts:
        attempts[-1].update(end=end, status=status, reason=reason)


def _first_attempt(doc: dict[str, Any]) -> dict[str, Any]:
    """A run written before attempts were recorded: its one attempt, from its run.json."""
    return {"start": doc.get("start_timestamp"), "end": doc.get("end_timestamp"),
            "world_size": (doc.get("world") or {}).get("size", 1),
            "status": doc.get("status"), "reason": doc.get("status_reason")}


def _attempt(started: float, world_size: int) -> dict[str, Any]:
    return {"start": layout.iso_time(started), "end": None, "world_size": world_size, "status": "Running", "reason": None}
