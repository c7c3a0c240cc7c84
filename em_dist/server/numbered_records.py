"""A rank's numbered records on the server: each lands once, by the run folder or by the rank's journal.

A non-zero rank numbers its records 1, 2, ... (per attempt) and journals them on its own host
until rank 0 has them (:mod:`em_dist.store.journal`). Rank 0's run folder holds a prefix of
them (its metric lines carry ``"n"``, its ``delivery`` says how many); the rest may only be in
the rank's journal, on another host, uploaded from there. Both paths reach the same server run
(the run id is the same on every rank) in either order, any number of times; the server keeps,
per (run, rank, attempt), two high-water marks (:class:`~em_dist.server.models.RankRecords`)
and takes a record only past both:

- the run folder's metric stream skips numbered lines a journal upload already merged, and
  raises ``held`` to the newest it stored; its ``delivery`` claim raises ``held`` too, and
  journal output lines up to it are deleted (the folder's log carries them, unnumbered);
- a journal upload takes what is past ``held`` and ``merged``, and raises ``merged``.

Records of a rank travel in number order (a rebuilt link re-sends from rank 0's
acknowledgement), so the marks stand for the sets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from em_dist.limits import text_problem
from em_dist.server import media_store, metric_store
from em_dist.server.blobs import BlobStore
from em_dist.server.models import LogLine, RankRecords
from em_dist.store.lines import MEDIA_MARK, OUTPUT_MARK, parse_output_line


def row(session: Session, run_id: str, rank: int, attempt: int) -> RankRecords:
    """The (run, rank, attempt) row, made when missing, locked to the end of the transaction."""
    key = (run_id, rank, attempt)
    found = session.get(RankRecords, key, with_for_update=True, populate_existing=True)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            found = RankRecords(run_id=run_id, rank=rank, attempt=attempt, held=0, merged=0, folder_complete=False)
            session.add(found)
    except IntegrityError:  # a concurrent upload made it first
        found = session.get(RankRecords, key, with_for_update=True, populate_existing=True)
    assert found is not None
    return found


def from_folder(session: Session, run_id: str, rank: int, records: list[dict]) -> list[dict]:
    """The run folder's metric lines of ``rank`` less the numbered ones a journal upload merged;
    ``held`` rises to the newest number kept. Unnumbered lines (rank 0's own) pass as they are."""
    if not any("n" in r for r in records if isinstance(r, dict)):
        return records
    rows: dict[int, RankRecords] = {}
    kept = []
    for rec in records:
        n = rec.get("n") if isinstance(rec, dict) else None
        if type(n) is not int:
            kept.append(rec)
            continue
        attempt = rec.get("attempt", 0)
        attempt = attempt if type(attempt) is int else 0
        r = rows.get(attempt)
        if r is None:
            r = rows[attempt] = row(session, run_id, rank, attempt)
        if n <= r.merged:
            continue
        kept.append(rec)
        if n > r.held:
            r.held = n
    return kept


def claim(session: Session, run_id: str, delivery: dict[str, dict[str, Any]]) -> None:
    """Rank 0's ``delivery`` (run.json): per rank how many records its folder holds, whether that is
    all, and where the rest is. Journal output lines the folder holds too are deleted.

    A few statements whatever the rank count (one read of the run's rows, locked; one batched
    insert of the missing ones): a 50,000-rank job's delivery must not cost a query per rank."""
    claims: dict[tuple[int, int], dict[str, Any]] = {}
    for key, entry in delivery.items():
        if key.isdigit() and isinstance(entry, dict):
            claims[(int(key), _int(entry.get("attempt")))] = entry
    if not claims:
        return
    rows = _locked_rows(session, run_id)
    missing = [{"run_id": run_id, "rank": rank, "attempt": attempt, "held": 0, "merged": 0, "folder_complete": False}
               for rank, attempt in claims if (rank, attempt) not in rows]
    if missing:
        dialect = session.get_bind().dialect.name
        insert_ = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert_(RankRecords).on_conflict_do_nothing(index_elements=["run_id", "rank", "attempt"]), missing)
        rows = _locked_rows(session, run_id)
    journal_lines = session.scalar(select(LogLine.id).where(LogLine.run_id == run_id, LogLine.n.is_not(None)).limit(1))
    for (rank, attempt), entry in claims.items():
        r = rows[(rank, attempt)]
        held = _int(entry.get("records"))
        if held > r.held:
            r.held = held
        complete = bool(entry.get("complete"))
        if r.folder_complete != complete:
            r.folder_complete = complete
        where = entry.get("journal")
        if not complete and isinstance(where, str) and r.journal_last is None and r.journal != where[:1024]:
            r.journal = where[:1024]
        if held and journal_lines is not None:
            session.execute(delete(LogLine).where(LogLine.run_id == run_id, LogLine.rank == rank,
                                                  LogLine.n.is_not(None), LogLine.n <= held))


def _locked_rows(session: Session, run_id: str) -> dict[tuple[int, int], RankRecords]:
    """The run's rows by (rank, attempt), locked to the end of the transaction (PostgreSQL)."""
    found = session.scalars(select(RankRecords).where(RankRecords.run_id == run_id)
                            .with_for_update().execution_options(populate_existing=True))
    return {(r.rank, r.attempt): r for r in found}


@dataclass
class JournalMerge:
    """What one journal upload did."""

    added: int
    """Records taken now (metric lines and output lines)."""
    merged: int
    """The newest number the server now holds from the rank's journal or folder."""


def merge_journal(session: Session, run_id: str, rank: int, attempt: int, data: bytes, *,
                  last: int | None, where: str | None, blobs: BlobStore, user_id: str) -> JournalMerge:
    """Take the journal lines ``<n>\\t<record>`` of ``data`` past what the server holds of the rank.
    ``last``: the journal's newest number when it is closed (the rank logged nothing more). An image's
    PNG becomes a blob of ``blobs`` owned by ``user_id``.
    Raises :class:`~em_dist.server.metric_store.IngestError` (nothing stored: the caller rolls back)."""
    r = row(session, run_id, rank, attempt)
    base = max(r.held, r.merged)
    metrics: list[dict] = []
    output: list[dict] = []
    media: list[dict] = []
    newest = base
    for number, raw in enumerate(data.split(b"\n")[:-1], 1):
        head, sep, record = raw.partition(b"\t")
        if not sep or not head.isdigit():
            raise metric_store.IngestError(f"journal line {number} is not '<n>\\t<record>'")
        n = int(head)
        if n <= base:
            continue
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError:
            raise metric_store.IngestError(f"journal line {number} is not UTF-8") from None
        if text[:1] == MEDIA_MARK:
            doc = media_store.journal_doc(session, blobs, user_id, text[1:], f"journal line {number}")
            media.append(media_store.row_for(run_id, rank, {**doc, "n": n, "attempt": attempt}))
        elif text[:1] == OUTPUT_MARK:
            parsed = parse_output_line(text[1:] + "\n")
            if parsed is None or text_problem(parsed["text"]):
                raise metric_store.IngestError(f"journal line {number} is not a captured output line")
            output.append({"run_id": run_id, "rank": rank, "size": len(text), "n": n, **parsed})
        else:
            try:
                metrics.append(json.loads(text))
            except (ValueError, RecursionError):
                raise metric_store.IngestError(f"journal line {number} is not a JSON metric line") from None
        newest = max(newest, n)
    if metrics:
        metric_store.store_points(session, run_id, rank, metrics)
    if output:
        session.execute(insert(LogLine), output)
    media_store.insert_rows(session, media)
    r.merged = max(r.merged, newest)
    if last is not None:
        r.journal_last = max(r.journal_last or 0, last)
    if where:
        r.journal = where[:1024]
    if metrics or output or media:
        metric_store.touch_run(session, run_id)
    return JournalMerge(len(metrics) + len(output) + len(media), max(r.held, r.merged))


def completeness(session: Session, run_id: str) -> dict[str, dict[str, Any]]:
    """Per rank (the newest attempt): how many numbered records the server holds, whether that is
    all the rank logged, and where the rest is (``host:path`` of its journal) when it is not."""
    out: dict[str, dict[str, Any]] = {}
    for r in session.scalars(select(RankRecords).where(RankRecords.run_id == run_id)
                             .order_by(RankRecords.rank, RankRecords.attempt)):
        have = max(r.held, r.merged)
        complete = r.folder_complete or (r.journal_last is not None and have >= r.journal_last)
        entry: dict[str, Any] = {"records": have, "complete": complete}
        if r.attempt:
            entry["attempt"] = r.attempt
        if not complete and r.journal:
            entry["journal"] = r.journal
        out[str(r.rank)] = entry
    return out


def _int(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0
