"""Runs written straight through the REST API (PUT /runs, POST metrics): fast seeding for search and console tests."""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests


class Api:
    """A requests session signed with one user's key against ``server_url``'s ``/api/v1``."""

    def __init__(self, server_url: str, key: str) -> None:
        self.base = f"{server_url}/api/v1"
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {key}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.http.request(method, self.base + path, timeout=60, **kwargs)

    def close(self) -> None:
        self.http.close()


def put_run(api: Api, name: str, folder: str, status: str = "Succeeded", labels: list | None = None,
            hparams: dict | None = None, metrics: dict[str, list[float]] | None = None, *, ranks: int = 1,
            artifacts: list[dict] | None = None) -> str:
    """A run with ``metrics`` (``{"val/loss": [values per step]}``, the same on every rank, rank r adding r/10)
    and lineage ``artifacts`` (``[{"id", "name", "role", "rank"}]``, not uploaded)."""
    run_id = str(uuid.uuid4())
    body = {"folder": folder, "make_folder": True, "ranks": list(range(ranks)), "hparams": hparams or {},
            "artifacts": artifacts or [],
            "run": {"name": name, "status": status, "labels": labels or [], "world": {"size": ranks},
                    "start_timestamp": "2026-11-30T10:00:00+00:00",
                    "end_timestamp": None if status in ("Running", "Initializing") else "2026-11-30T11:00:00+00:00"}}
    response = api("PUT", f"/runs/{run_id}", json=body)
    assert response.status_code == 200, response.text
    for rank in range(ranks):
        lines = []
        for key, values in (metrics or {}).items():
            mtype, mname = key.split("/", 1)
            lines += [json.dumps({"type": mtype, "step": i, "epoch": i // 100, "time": 1_800_000_000.0 + i,
                                  "metrics": {mname: v + rank / 10}}) for i, v in enumerate(values)]
        if lines:
            data = ("\n".join(lines) + "\n").encode()
            response = api("POST", f"/runs/{run_id}/metrics/{rank}", params={"offset": 0}, data=data)
            assert response.status_code == 200, response.text
    return run_id
