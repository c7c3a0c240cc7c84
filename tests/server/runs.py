"""Real runs made with the public API, and comparison of a server's copy with the local folder."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from pathlib import Path

import requests

import em_dist as em
from em_dist.client.read import Client


def new_raw_run(server, name: str, ranks: list[int]) -> tuple[requests.Session, str, str]:  # type: ignore[no-untyped-def]
    """A new user and an empty run of ``ranks`` made over raw REST; returns (session with the key, API url, run id)."""
    import uuid

    _, key = server.add_user()
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    api = f"{server.url}/api/v1"
    run_id = str(uuid.uuid4())
    body = {"folder": name, "make_folder": True, "ranks": ranks, "run": {"name": name, "world": {"size": len(ranks)}}}
    assert http.put(f"{api}/runs/{run_id}", json=body, timeout=30).status_code == 200
    return http, api, run_id


def make_run(name: str = "run", steps: int = 50, *, artifact_bytes: bytes | None = b"weights", hparams: dict | None = None,
             folder: str = "default", **create_kwargs) -> em.Run:  # type: ignore[no-untyped-def]
    """A finished run with ``steps`` train points of loss/acc, val every 10 steps, one output artifact."""
    run = em.create_run(name=name, folder=folder, **create_kwargs)
    run.hparams.update(hparams or {"lr": 0.01, "batch_size": 32, "optimizer": "Adam"})
    for step in range(steps):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1), "acc": step / max(steps, 1)}, step=step, epoch=step // 10)
        if step % 10 == 9:
            run.log(type="val", metrics={"loss": 2.0 / (step + 1)}, step=step, epoch=step // 10)
    if artifact_bytes is not None:
        src = Path(run.path).parent.parent / f"{name}-{run.id[:8]}.bin"
        src.write_bytes(artifact_bytes)
        artifact = em.create_artifact(name=f"{name}-model")
        artifact.add_file(str(src), "model.bin")
        run.mark_output(artifact)
    run.finish()
    return run


def series(points: list[dict]) -> dict[tuple, list[tuple]]:
    """Points grouped by (type, name, rank) as (step, value, epoch) lists in logging order."""
    out: dict[tuple, list[tuple]] = defaultdict(list)
    for p in points:
        value = p["value"]
        value = "nan" if isinstance(value, float) and math.isnan(value) else float(value)
        out[(p["type"], p["name"], p["rank"])].append((p["step"], value, p["epoch"]))
    return dict(out)


def assert_same_run(client: Client, run_path: str | Path, server_id: str | None = None) -> None:
    """The server's copy of a run equals the local folder: metadata, every point, artifact bytes."""
    local = em.load_run(run_path)
    remote = client.run(server_id or local.id)
    assert remote.hparams == local.hparams
    assert remote.rank_hparams == local.rank_hparams
    assert remote.status == local.status
    assert remote.world == local.world
    assert remote.platform == local.platform
    assert series(remote.metrics()) == series(local.metrics())
    assert len(remote.metrics()) == len(local.metrics())
    local_arts = {a.id: a for a in local.artifacts}
    assert {a.id for a in remote.artifacts} == set(local_arts)
    for ref in remote.artifacts:
        assert {(f["path"], f["sha256"]) for f in ref.files} == {(f["path"], f["sha256"]) for f in local_arts[ref.id].files}
        art = client.artifact(ref.id)
        for f in art.files:
            assert hashlib.sha256(art.read(f["path"])).hexdigest() == f["sha256"]
