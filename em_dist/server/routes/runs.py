"""Runs: upsert from an upload, detail, artifacts, per-rank upload offsets, and the metadata
edits of the console's run page (rename, labels, description, archive/restore, delete)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, HTTPException, Response
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from em_dist.platform.redact import redact_record, redact_text
from em_dist.server import folders, numbered_records
from em_dist.server.deps import Config, CurrentUser, EditorUser, ReadSession, WriteSession
from em_dist.server.liveness import lost_before
from em_dist.server.lookup import folder_of, get_run, may_produce
from em_dist.server.models import Artifact, Folder, LineageEdge, RankOffset, Run, User
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from em_dist.server.schemas import RunEdit, RunMeta, RunUpload
from em_dist.server.views import run_artifacts, run_detail

router = APIRouter(tags=["runs"])


def _offsets(session: Session, run_id: str) -> dict[str, int]:
    rows = session.scalars(select(RankOffset).where(RankOffset.run_id == run_id).order_by(RankOffset.rank))
    return {str(r.rank): r.offset for r in rows}


def _resolve_name(session: Session, body: RunUpload, folder: Folder, run_id: str) -> tuple[str | None, bool]:
    """The name the new run takes in ``folder`` under the conflict strategy; (None, True) = skip."""
    name = body.run.name
    clash = session.scalars(select(Run).where(Run.folder_id == folder.id, Run.name == name, Run.id != run_id)).all()
    if not clash:
        return name, False
    strategy = body.conflict_strategy
    if strategy == "skip":
        return None, True
    if strategy == "error":
        raise HTTPException(409, f"folder {folder.path!r} already holds a run named {name!r} (conflict_strategy='error')")
    if strategy == "replace":
        session.execute(delete(Run).where(Run.id.in_([r.id for r in clash])))
        return name, False
    return body.run.alternative_name or f"{name}_{run_id[:8]}", False


def _add_ranks(session: Session, run_id: str, ranks: list[int]) -> None:
    """Give each of ``ranks`` an offset row (at 0) unless it has one: one read of the run's rows,
    then one batched insert that skips rows a concurrent upload of the run added meanwhile.

    Linear in the ranks: a 50,000-rank job took 40 s (SQLite) and 62 s (PostgreSQL) with a
    lookup and a savepoint per rank, holding SQLite's one write lock all along.
    """
    held = set(session.scalars(select(RankOffset.rank).where(RankOffset.run_id == run_id)))
    new = [{"run_id": run_id, "rank": r, "offset": 0, "lines": 0} for r in sorted(set(ranks) - held)]
    if not new:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(RankOffset).on_conflict_do_nothing(index_elements=["run_id", "rank"]), new)


def _check_links(session: Session, user: User, body: RunUpload, run_id: str) -> None:
    """403 when the upload links an artifact the server holds but the caller cannot see, or
    claims as its output an id another run already names as output and the caller may not edit.

    A link to an artifact the server does not hold (yet) is kept: it shows as not stored.
    """
    for link in body.artifacts:
        artifact = session.get(Artifact, link.id)
        if artifact is not None and not folders.can_see(session, user, artifact.folder_id):
            raise HTTPException(403, f"artifact {link.id} is not yours to link")
        if artifact is None and link.role == "output" and not may_produce(session, user, link.id, besides=run_id):
            raise HTTPException(403, f"artifact {link.id} is the output of a run you may not edit")


def _apply(run: Run, body: RunUpload) -> None:
    """Copy the upload into ``run``, secrets redacted by the SDK's rule (:mod:`em_dist.platform.redact`):
    a client that skipped it (an older SDK, raw REST) must not store them for shared users to read.

    Fields a user edited (``run.edited``: the console's run page, ``PATCH /runs/{id}``) keep the edit."""
    meta = body.run.model_dump()
    extra = redact_record({k: v for k, v in meta.items() if k not in RunMeta.model_fields})
    edited = set(run.edited or ())
    if "name" not in edited:
        run.local_name = body.run.name
    run.alternative_name = body.run.alternative_name
    run.status = body.run.status
    run.status_reason = redact_text(body.run.status_reason) if body.run.status_reason else body.run.status_reason
    if "labels" not in edited:
        run.labels = redact_record(body.run.labels)
    if "description" not in edited:
        run.description = redact_text(body.run.description)
    run.start_timestamp = body.run.start_timestamp
    run.end_timestamp = body.run.end_timestamp
    run.world = body.run.world
    run.lost_ranks = body.run.lost_ranks
    run.extra = extra
    run.hparams = redact_record(body.hparams)
    run.hparams_ranks = redact_record(body.hparams_ranks)
    run.platform = redact_record(body.platform)
    run.git = redact_record(body.git)
    run.updated = dt.datetime.now(dt.timezone.utc)


@router.put("/runs/{run_id}")
def upsert_run(run_id: str, body: RunUpload, user: CurrentUser, session: WriteSession) -> dict:
    """Create or update a run (metadata, hparams, platform, git, lineage edges).

    A run is identified by its id: a second upload updates it in place, in the folder
    it went to first. A *different* run with the same name in the folder is handled by
    ``conflict_strategy``. Returns the bytes held per rank so the client resumes metrics.
    """
    if not 1 <= len(run_id) <= 36:
        raise HTTPException(400, "a run id is a UUID")
    _check_links(session, user, body, run_id)
    # Row locks (PostgreSQL; SQLite has one writer anyway) order concurrent uploads whichever
    # server process takes them: updates of one run go one at a time, and runs are named in
    # a folder one at a time, so a twin (same name, or the same run sent twice) is seen.
    run = session.get(Run, run_id, with_for_update=True)
    if run is None:
        folder = folders.resolve(session, user, path=body.folder, folder_id=body.folder_id, make=body.make_folder)
        folders.lock(session, folder)
        run = session.get(Run, run_id, populate_existing=True, with_for_update=True)
    created = run is None
    if run is None:
        name, skipped = _resolve_name(session, body, folder, run_id)
        if skipped:
            session.rollback()
            return {"id": run_id, "folder_id": folder.id, "folder": folder.path, "name": body.run.name,
                    "skipped": True, "created": False, "offsets": {}}
        run = Run(id=run_id, folder_id=folder.id, owner_id=folder.owner_id, name=name)
        session.add(run)
    else:
        folder = folder_of(session, run.folder_id)
        folders.require(session, user, folder, "edit")
        if body.placeholder:  # a journal's host: the run is there, its metadata is rank 0's to give
            session.commit()
            return {"id": run.id, "folder_id": folder.id, "folder": folder.path, "name": run.name,
                    "skipped": False, "created": False, "offsets": _offsets(session, run_id)}
    _apply(run, body)
    session.flush()
    for link in body.artifacts:
        edge = session.get(LineageEdge, (run_id, link.id, link.role))
        if edge is None:
            session.add(LineageEdge(run_id=run_id, artifact_id=link.id, role=link.role, artifact_name=link.name,
                                    rank=link.rank))
        elif link.rank is not None and edge.rank != link.rank:
            edge.rank = link.rank
    _add_ranks(session, run_id, body.ranks)
    numbered_records.claim(session, run_id, body.delivery)
    session.commit()
    return {"id": run.id, "folder_id": folder.id, "folder": folder.path, "name": run.name,
            "skipped": False, "created": created, "offsets": _offsets(session, run_id)}


@router.get("/runs/{run_id}")
def read_run(run_id: str, user: CurrentUser, session: ReadSession, config: Config) -> dict:
    """Run detail: metadata, hparams (and per-rank differences), platform per rank, git, artifacts."""
    run, folder = get_run(session, user, run_id)
    detail = run_detail(session, user, run, folder, cutoff=lost_before(config.lost_after_s))
    owner = session.get(User, run.owner_id)
    detail["owner"] = owner.name if owner else None
    detail["permission"] = folders.permission(session, user, folder)  # "edit"/"owner": the console offers edits
    detail["offsets"] = _offsets(session, run_id)
    detail["delivery"] = numbered_records.completeness(session, run_id)
    return detail


@router.get("/runs/{run_id}/artifacts")
def read_run_artifacts(run_id: str, user: CurrentUser, session: ReadSession) -> list[dict]:
    """The run's input and output artifacts, with their files."""
    get_run(session, user, run_id)
    return run_artifacts(session, user, run_id)


@router.get("/runs/{run_id}/offsets")
def read_offsets(run_id: str, user: CurrentUser, session: ReadSession) -> dict[str, int]:
    """Bytes of each rank's ``metrics/rank-<r>.jsonl`` the server holds."""
    get_run(session, user, run_id)
    return _offsets(session, run_id)


def _editable_run(session: Session, user: User, run_id: str) -> tuple[Run, Folder]:
    """The run ``run_id`` locked for an edit by ``user``: 404 when it is missing *or* the caller
    cannot see it (a stranger never learns it exists), 403 when the caller may only view it."""
    run = session.get(Run, run_id, with_for_update=True)
    folder = folder_of(session, run.folder_id) if run is not None else None
    if run is None or folder is None or folders.permission(session, user, folder) is None:
        raise HTTPException(404, f"no run with id {run_id}")
    folders.require(session, user, folder, "edit")
    return run, folder


@router.patch("/runs/{run_id}")
def edit_run(run_id: str, body: RunEdit, user: EditorUser, session: WriteSession, config: Config) -> dict:
    """Edit a run's metadata: ``name`` (renames it in its folder; 409 when another run there has
    it), ``labels``, ``description``, ``archived`` (hidden from listings unless asked for).
    A later upload of the run's metadata (a live run's sync) keeps the edited fields.

    Needs edit permission on the run's folder (owner, or an ``edit`` share). Allowed to a
    console session (cookie) with its CSRF token from the same origin. Returns the run's detail.
    """
    run, folder = _editable_run(session, user, run_id)
    edited = set(run.edited or ())
    if body.name is not None and body.name != run.name:
        folders.lock(session, folder)
        clash = session.scalar(select(Run.id).where(Run.folder_id == folder.id, Run.name == body.name,
                                                     Run.id != run.id).limit(1))
        if clash is not None:
            raise HTTPException(409, f"folder {folder.path!r} already holds a run named {body.name!r}")
        run.name = body.name
        run.local_name = body.name
        edited.add("name")
    if body.labels is not None:
        run.labels = redact_record(list(dict.fromkeys(label.strip() for label in body.labels if label.strip())))
        edited.add("labels")
    if body.description is not None:
        run.description = redact_text(body.description)
        edited.add("description")
    run.edited = sorted(edited) or run.edited
    if body.archived is not None:
        run.archived = body.archived
    session.commit()
    detail = run_detail(session, user, run, folder, cutoff=lost_before(config.lost_after_s))
    detail["permission"] = folders.permission(session, user, folder)
    return detail


@router.delete("/runs/{run_id}", status_code=204)
def delete_run(run_id: str, user: EditorUser, session: WriteSession) -> Response:
    """Delete a run with its metrics, logs, offsets and lineage edges (the artifacts it made or
    used stay in their folder).

    Needs edit permission on the run's folder; allowed to a console session as ``PATCH`` is.
    """
    run, _ = _editable_run(session, user, run_id)
    session.execute(delete(Run).where(Run.id == run.id))
    session.commit()
    return Response(status_code=204)
