"""``em.Client``: read runs, metrics, artifacts and lineage back from a server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from em_dist.client.auth import client_for
from em_dist.client.http import HttpClient
from em_dist.store.lines import decode_number
from em_dist.store.records import ArtifactRef, MediaEntry, MetricPoint, RunRecord



@dataclass
class RemoteArtifact:
    """An artifact on the server: metadata and files; ``read``/``download`` fetch content."""

    id: str
    name: str
    alternative_name: str
    labels: list[str]
    description: str
    created_timestamp: str | None
    files: list[dict[str, Any]]
    references: list[dict[str, Any]]
    folder_id: str | None = None
    _client: Client | None = field(default=None, repr=False, compare=False)

    def read(self, path: str) -> bytes:
        """The bytes of one file (whole, in memory: use ``download`` for big files)."""
        return self._http().request("GET", self._file_path(path)).content

    def _http(self) -> HttpClient:
        """The connection of the :class:`Client` that read this artifact."""
        if self._client is None:
            raise ValueError(f"artifact {self.id} was not read through an em.Client: it has no server to fetch from")
        return self._client._http

    def _file_path(self, path: str) -> str:
        """The API path of one file, percent-encoded: names may hold ``#``, ``?``, ``%`` or spaces."""
        return f"/artifacts/{quote(self.id, safe='')}/files/{quote(path, safe='/')}"

    def download(self, dest: str | os.PathLike[str]) -> Path:
        """Write every file under ``dest`` (streamed); returns ``dest``."""
        root = Path(dest)
        for f in self.files:
            target = root / f["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            response = self._http().request("GET", self._file_path(f["path"]), stream=True)
            with open(target, "wb") as fh:
                for block in response.iter_content(1024 * 1024):
                    fh.write(block)
        return root


class RunList(list[dict[str, Any]]):
    """Run summaries as :meth:`Client.runs` lists them (a plain list), with :meth:`dataframe`."""

    def dataframe(self) -> Any:
        """A ``pandas.DataFrame``, one row per run: id, name, status, timings, world size, then
        ``hparams.<key>`` and ``metrics.<type>/<name>`` (latest value) columns, named as the run
        filter names them. pandas is the optional extra ``em_dist[dataframe]``."""
        from ..frames import runs_frame

        return runs_frame(self)


class Client:
    """Read access to an em server (host and key as for upload: arguments, login, env, config)."""

    def __init__(self, host: str | None = None, api_key: str | None = None, timeout: float = 60.0) -> None:
        self._http = client_for(host, api_key, timeout=timeout)

    def me(self) -> dict[str, Any]:
        """The user behind the API key."""
        return self._http.get_object("/me")

    def folders(self) -> list[dict[str, Any]]:
        """Folders the key can see: ``{id, name, path, parent_id, owner, permission}``."""
        return self._http.get_list("/folders")

    def runs(self, folder: str | None = "default", *, folder_id: str | None = None, filter: str | None = None,
             recursive: bool = False, limit: int | None = None, page_size: int = 500) -> RunList:
        """Run summaries in a folder (by path or id), oldest upload first; ``.dataframe()`` makes them a
        pandas DataFrame with a column per hparam and per metric's latest value.

        ``filter`` is the server's run filter language, e.g.
        ``'hparams.lr < 0.01 and metrics.val/loss < 0.2 and labels contains "baseline"'``
        (a bad filter raises the server's 400, which names the position). ``recursive``
        adds the runs of subfolders. Pages of ``page_size`` are fetched until ``limit``
        runs (default all) are in hand.
        """
        out = RunList()
        cursor: str | None = None
        while limit is None or len(out) < limit:
            size = page_size if limit is None else min(page_size, limit - len(out))
            page = self._http.get_object("/runs", folder=folder, folder_id=folder_id, filter=filter or None,
                                       recursive="true" if recursive else None, limit=size, cursor=cursor)
            out.extend(page["runs"])
            cursor = page["next_cursor"]
            if not cursor:
                break
        return out

    def run(self, run_id: str) -> RunRecord:
        """A run with every metric point, as the same ``RunRecord`` that ``em.load_run`` gives."""
        d = self._http.get_object(f"/runs/{run_id}")
        return RunRecord(
            id=d["id"],
            name=d["name"],
            alternative_name=d["alternative_name"],
            path=None,
            status=d["status"],
            status_reason=d["status_reason"],
            labels=d["labels"],
            description=d["description"],
            start_timestamp=d["start_timestamp"],
            end_timestamp=d["end_timestamp"],
            hparams=d["hparams"],
            rank_hparams={int(k): v for k, v in (d.get("hparams_ranks") or {}).items()},
            platform=d["platform"],
            git=d["git"],
            world=d["world"],
            lost_ranks=d["lost_ranks"],
            artifacts=[ArtifactRef(id=a["id"], name=a["name"], path=None, role=a["role"], files=a["files"]) for a in d["artifacts"]],
            points=self._points(run_id),
            output=lambda rank, tail: self.logs(run_id, rank=rank, tail=tail),
            media_reader=lambda rank: self.media(run_id, rank=rank),
        )

    def metrics(self, run_id: str, *, type: str | None = None, name: str | None = None, rank: int | None = None,
                points: int | None = None, x: str = "step") -> dict[str, Any]:
        """Raw series columns (``points=N`` downsamples keeping min/max per bucket; ``x`` adds epochs or times)."""
        return self._http.get_object(f"/runs/{run_id}/metrics", type=type, name=name, rank=rank, points=points, x=x)

    def logs(self, run_id: str, *, rank: int | None = None, tail: int | None = None,
             search: str | None = None) -> list[dict[str, Any]]:
        """What the run's ranks printed: lines ``{rank, time, stream, text}`` of one rank (in order) or of
        all (by time), the last ``tail`` ones, or those containing ``search``. A rank whose oldest output
        was dropped under the limit starts with an ``em`` line saying how much."""
        d = self._http.get_object(f"/runs/{run_id}/logs", rank=rank, tail=tail, q=search)
        out = [{"rank": x["rank"], "time": x["time"], "stream": x["stream"], "text": x["text"]} for x in d["lines"]]
        for r, n in sorted(d.get("dropped", {}).items(), key=lambda kv: int(kv[0])):
            if rank is None or int(r) == rank:
                first = min((x["time"] for x in out if x["rank"] == int(r)), default=0.0)
                out.insert(0, {"rank": int(r), "time": first, "stream": "em",
                               "text": f"[em_dist] dropped {n} bytes of earlier output"})
        return out

    def media(self, run_id: str, *, type: str | None = None, name: str | None = None,
              rank: int | None = None) -> list[MediaEntry]:
        """A run's media values as :meth:`RunRecord.media` lists them (``path`` None: an image's
        :meth:`MediaEntry.image_bytes` fetches its PNG, :meth:`image` by hash)."""
        out: list[MediaEntry] = []
        after: int | None = None
        while True:
            page = self._http.get_object(f"/runs/{run_id}/media", type=type, name=name, rank=rank, after=after)
            out.extend(self._media_entry(run_id, d) for d in page["records"])
            after = page.get("next_after")
            if after is None:
                return sorted(out, key=lambda m: m.rank)  # rank by rank, each in the order stored (a stable sort)

    def image(self, run_id: str, sha256: str) -> bytes:
        """The PNG of an image a run logged, by its ``sha256``."""
        return self._http.request("GET", f"/runs/{quote(run_id, safe='')}/media/images/{quote(sha256, safe='')}").content

    def _media_entry(self, run_id: str, d: dict[str, Any]) -> MediaEntry:
        sha = d.get("sha256") if d["kind"] == "image" else None
        return MediaEntry(
            kind=d["kind"], type=d["type"], name=d["name"], step=d["step"], epoch=d.get("epoch"), rank=d["rank"],
            time=d.get("time"), sha256=sha, caption=d.get("caption"), width=d.get("width"), height=d.get("height"),
            bins=d.get("bins"), counts=d.get("counts"), nonfinite=d.get("nonfinite"), columns=d.get("columns"),
            rows=d.get("rows"), text=d.get("text"),
            fetch=(lambda: self.image(run_id, sha)) if isinstance(sha, str) else None,
        )

    def metric_names(self, run_id: str) -> list[dict[str, Any]]:
        """Every series of a run with count and last value."""
        return self._http.get_list(f"/runs/{run_id}/metrics/names")

    def aggregate(self, run_id: str, type: str, name: str, points: int | None = None) -> dict[str, Any]:
        """Cross-rank mean/min/max per step of one metric."""
        return self._http.get_object(f"/runs/{run_id}/metrics/aggregate", type=type, name=name, points=points)

    def _points(self, run_id: str) -> list[MetricPoint]:
        out: list[MetricPoint] = []
        for s in self.metrics(run_id)["series"]:
            for step, value, when, epoch in zip(s["steps"], s["values"], s["times"], s["epochs"]):
                out.append({"type": s["type"], "name": s["name"], "value": decode_number(value), "step": step,
                            "epoch": epoch, "rank": s["rank"], "time": when})
        return out

    def artifact(self, artifact_id: str) -> RemoteArtifact:
        """An artifact's metadata and file list."""
        d = self._http.get_object(f"/artifacts/{artifact_id}")
        return RemoteArtifact(d["id"], d["name"], d["alternative_name"], d["labels"], d["description"],
                              d["created_timestamp"], d["files"], d["references"], d.get("folder_id"), self)

    def lineage(self, node_id: str, depth: int = 3) -> dict[str, Any]:
        """The graph around a run or artifact: ``{root, nodes: [...], edges: [{source, target, role}]}``."""
        return self._http.get_object(f"/lineage/{node_id}", depth=depth)

    def shares(self, folder_id: str) -> list[dict[str, Any]]:
        """Who a folder you own is shared with: ``[{user, permission}]``."""
        return self._http.get_list(f"/folders/{quote(folder_id, safe='')}/shares")

    def share(self, folder_id: str, user: str, permission: str = "view") -> dict[str, Any]:
        """Share a folder you own (and everything below it) with ``user``: ``view`` or ``edit``."""
        answer: dict[str, Any] = self._http.request("POST", f"/folders/{quote(folder_id, safe='')}/shares",
                                                    json={"user": user, "permission": permission}).json()
        return answer

    def unshare(self, folder_id: str, user: str) -> None:
        """Revoke ``user``'s share of a folder you own; they lose access at once."""
        self._http.request("DELETE", f"/folders/{quote(folder_id, safe='')}/shares/{quote(user, safe='')}")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
