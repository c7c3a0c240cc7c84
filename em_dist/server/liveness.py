"""Honest run statuses: a live run that stopped sending is shown as lost, not ``Running`` forever.

A run reports ``Initializing``/``Running`` until its final upload says otherwise. When the
process died without that upload, the server would keep the live status for ever. Every
upload and metrics chunk touches ``runs.updated`` (the auto-uploader sends one every few
seconds), so ``updated`` is the run's last sign of life: a live run silent for longer than
``ServerConfig.lost_after_s`` shows as ``Failed`` with ``lost: true``, the time of its last
sign of life, and a duration that stops there. The stored status is never rewritten, so a
run that comes back simply shows its live status again.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case
from sqlalchemy.sql.elements import ColumnElement

from em_dist.server.models import Run

LIVE_STATUSES = ("Initializing", "Running")
LOST_STATUS = "Failed"


def utc(when: dt.datetime) -> dt.datetime:
    """``when`` as an aware UTC datetime (SQLite hands back naive ones)."""
    return when.replace(tzinfo=dt.timezone.utc) if when.tzinfo is None else when.astimezone(dt.timezone.utc)


def lost_before(lost_after_s: float, now: dt.datetime | None = None) -> dt.datetime:
    """The cutoff: a live run whose last sign of life is older than this is lost."""
    return (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(seconds=lost_after_s)


def is_lost(run: Run, cutoff: dt.datetime) -> bool:
    """Whether ``run`` reports a live status but has been silent since before ``cutoff``."""
    return run.status in LIVE_STATUSES and run.updated is not None and utc(run.updated) < cutoff


def status_expression(cutoff: dt.datetime) -> ColumnElement:
    """The honest status as SQL, for filters: the same rule as :func:`honest_status`."""
    return case(
        (Run.status.in_(LIVE_STATUSES) & (Run.updated < cutoff), LOST_STATUS),
        else_=Run.status,
    )


def honest_status(run: Run, cutoff: dt.datetime) -> dict[str, Any]:
    """The status fields of a run summary: ``status``, ``status_reason``, ``lost``, ``reported_status``,
    ``last_seen`` and ``end_timestamp`` (for a lost run, its last sign of life)."""
    last_seen = utc(run.updated).isoformat() if run.updated is not None else None
    fields: dict[str, Any] = {
        "status": run.status, "status_reason": run.status_reason, "reported_status": run.status,
        "lost": False, "last_seen": last_seen, "end_timestamp": run.end_timestamp,
    }
    if is_lost(run, cutoff):
        fields.update(
            status=LOST_STATUS,
            lost=True,
            status_reason=f"lost: reported {run.status} but sent nothing since {last_seen} "
                          f"(no upload or heartbeat within the server's limit)",
            end_timestamp=last_seen,
        )
    return fields
