"""The lineage graph around a run or an artifact."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server import folders
from em_dist.server.deps import CurrentUser, ReadSession
from em_dist.server.models import Artifact, LineageEdge, Run, User

router = APIRouter(tags=["lineage"])


def _visible_runs_naming(session: Session, user: User, artifact_id: str) -> list[LineageEdge]:
    """The lineage edges to ``artifact_id`` whose run ``user`` may see."""
    out = []
    for edge in session.scalars(select(LineageEdge).where(LineageEdge.artifact_id == artifact_id)):
        run = session.get(Run, edge.run_id)
        if run is not None and folders.can_see(session, user, run.folder_id):
            out.append(edge)
    return out


@router.get("/lineage/{node_id}")
def lineage(node_id: str, user: CurrentUser, session: ReadSession, depth: int = Query(default=3, ge=1, le=20)) -> dict:
    """Nodes (runs, artifacts) and edges (run -> artifact for outputs, artifact -> run for
    inputs) within ``depth`` hops of ``node_id``. Runs the caller cannot see are left out.

    A stored run or artifact the caller cannot see is a 404, as on every path that takes an id:
    the answer for an id nothing names. An artifact the server does not hold is known only
    through the runs that name it, so only those the caller may see name it or reveal it.
    """
    start_run, start_artifact = session.get(Run, node_id), session.get(Artifact, node_id)
    start = start_run or start_artifact
    if (start is not None and not folders.can_see(session, user, start.folder_id)) or (
            start is None and not _visible_runs_naming(session, user, node_id)):
        raise HTTPException(404, f"no run or artifact with id {node_id}")
    nodes: dict[str, dict] = {}
    edges: set[tuple[str, str, str]] = set()
    frontier = [("run" if start_run else "artifact", node_id)]
    for _ in range(depth):
        nxt = []
        for kind, nid in frontier:
            if nid in nodes:
                continue
            if kind == "run":
                run = session.get(Run, nid)
                if run is None or not folders.can_see(session, user, run.folder_id):
                    continue
                nodes[nid] = {"id": nid, "kind": "run", "name": run.name, "local_name": run.local_name,
                              "alternative_name": run.alternative_name, "status": run.status}
                for e in session.scalars(select(LineageEdge).where(LineageEdge.run_id == nid)):
                    edges.add((nid, e.artifact_id, "output") if e.role == "output" else (e.artifact_id, nid, "input"))
                    nxt.append(("artifact", e.artifact_id))
            else:
                art = session.get(Artifact, nid)
                if art is not None and not folders.can_see(session, user, art.folder_id):
                    continue
                name = art.name if art else ""
                for e in _visible_runs_naming(session, user, nid):
                    name = name or e.artifact_name
                    nxt.append(("run", e.run_id))
                nodes[nid] = {"id": nid, "kind": "artifact", "name": name, "stored": art is not None}
        frontier = nxt
    for kind, nid in frontier:  # the outer ring: named, not expanded
        if nid not in nodes and kind == "artifact":
            art = session.get(Artifact, nid)
            if art is None or folders.can_see(session, user, art.folder_id):
                nodes[nid] = {"id": nid, "kind": "artifact", "name": art.name if art else "", "stored": art is not None}
    kept = [{"source": s, "target": t, "role": r} for s, t, r in sorted(edges) if s in nodes and t in nodes]
    return {"root": node_id, "nodes": list(nodes.values()), "edges": kept}
