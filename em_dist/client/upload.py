"""Upload runs and artifacts: idempotent, resumable, never sending a byte the server has.

A run upload is: ``PUT /runs/{id}`` (metadata; the answer says how many bytes of each
rank's metrics the server holds), then each marked artifact (only the blobs the server
lacks, streamed, then ``PUT /artifacts/{id}``), then the metric lines past the server's
offset per rank in chunks of complete lines, then captured output and media records (images as
blobs the server lacks). Running it again sends only what is new.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from requests import Response

from em_dist._notice import console_url
from em_dist._warn import warn_once
from em_dist.client.http import HttpClient, raise_for_status
from em_dist.client.upload_logs import upload_logs
from em_dist.client.upload_media import upload_media
from em_dist.client.snapshot import RunSnapshot, record_upload, resolve_artifact_path, take
from em_dist.client.target import UploadTarget
from em_dist.errors import RunFormatError, ServerError
from em_dist.store import layout
from em_dist.store.reader import load_artifact, repair_chunk

CHUNK_BYTES = 4 * 1024 * 1024
_BLOB_READ = 1024 * 1024


@dataclass
class UploadResult:
    """What one run upload did."""

    run_id: str
    server_run_id: str
    folder: str
    skipped: bool = False
    metrics_sent: int = 0
    logs_sent: int = 0
    media_sent: int = 0
    """Bytes of media records (``media/rank-<r>.jsonl``) sent."""
    images_sent: int = 0
    """Bytes of images (PNG blobs the server lacked) sent."""
    bytes_sent: int = 0
    folder_id: str | None = None
    name: str | None = None
    artifacts: list[str] = field(default_factory=list)
    url: str | None = None
    """The run's page in the server's console."""


@dataclass
class ArtifactUploadResult:
    """What one artifact upload did: files listed, blobs and bytes actually sent."""

    artifact_id: str
    folder: str
    folder_id: str | None
    files: int
    blobs_sent: int
    bytes_sent: int


class _Progress:
    """A tqdm bar when asked for and installed; otherwise nothing."""

    def __init__(self, enabled: bool, total: int, desc: str, unit: str) -> None:
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, leave=False)
            except ImportError:
                self.bar = None

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _CountingFile:
    """A read-only file wrapper that reports bytes read (requests streams from ``read``)."""

    def __init__(self, path: Path, on_read: Callable[[int], None]) -> None:
        self._fh = open(path, "rb")
        self.len = os.fstat(self._fh.fileno()).st_size
        self._on_read = on_read

    def read(self, n: int = -1) -> bytes:
        data = self._fh.read(_BLOB_READ)  # bigger than http.client asks: fewer, larger sends
        self._on_read(len(data))
        return data

    def close(self) -> None:
        self._fh.close()


def requested_folder(run_dir: Path, folder: str | None, folder_id: str | None,
                     make_folder: bool | None) -> tuple[str, str | None, bool]:
    """The server folder an upload of ``run_dir`` goes to: the one named here, else the one the script
    asked for at ``create_run(folder=...)``/``create_trial(folder_path=...)`` (kept in ``run.json``).

    So ``em run upload -p PATH`` of a run made with ``folder='team/mnist'`` lands in ``team/mnist``,
    not in ``default``; ``make_folder`` left at None is the run's too when its folder is used.
    """
    target = UploadTarget(folder, folder_id, make_folder).for_run(run_dir)
    return target.folder or "default", target.folder_id, bool(target.make_folder)


def _send_artifact(
    http: HttpClient, art_dir: Path, spec: dict[str, Any], progress: bool
) -> ArtifactUploadResult:
    record = load_artifact(art_dir)
    files = [{"path": f["path"], "size": int(f["size"]), "sha256": f["sha256"]} for f in record.files]
    content = art_dir / layout.ARTIFACT_CONTENT_DIR
    by_hash = {f["sha256"]: f for f in files}
    missing = http.request("POST", "/blobs/missing", json={"sha256": list(by_hash)}).json()["missing"]
    total = sum(by_hash[h]["size"] for h in missing)
    bar = _Progress(progress, total, f"artifact {record.name}", "B")
    sent = 0
    try:
        for sha in missing:
            path = content / by_hash[sha]["path"]
            counted: list[int] = []

            def body(path: Path = path, counted: list[int] = counted) -> _CountingFile:
                counted.clear()

                def on_read(n: int) -> None:
                    counted.append(n)
                    bar.update(n)

                return _CountingFile(path, on_read)

            http.request("PUT", f"/blobs/{sha}", data=body, headers={"Content-Type": "application/octet-stream"})
            sent += sum(counted)
    finally:
        bar.close()
    meta = {
        "name": record.name,
        "alternative_name": record.alternative_name,
        "labels": record.labels,
        "description": record.description,
        "created_timestamp": record.created_timestamp,
        "references": record.references,
    }
    answer = http.request("PUT", f"/artifacts/{record.id}", json={**spec, "artifact": meta, "files": files}).json()
    return ArtifactUploadResult(record.id, spec.get("folder") or "", answer.get("folder_id"), len(files), len(missing), sent)


def _send_rank(http: HttpClient, run_id: str, rank_file: Path, rank: int, start: int, end: int, bar: _Progress) -> tuple[int, int]:
    """Send complete lines of ``rank_file`` in [start, end); returns (new offset, bytes sent)."""
    offset, sent = start, 0
    with open(rank_file, "rb") as fh:
        while offset < end:
            fh.seek(offset)
            data = fh.read(min(CHUNK_BYTES, end - offset))
            cut = data.rfind(b"\n")
            while cut < 0 and offset + len(data) < end:  # one line longer than a chunk
                more = fh.read(min(CHUNK_BYTES, end - offset - len(data)))
                if not more:
                    break
                data += more
                cut = data.rfind(b"\n")
            if cut < 0:
                break  # only a partial last line remains: it is sent once it is complete
            data = data[: cut + 1]
            response = _post_lines(http, run_id, rank, offset, data, rank_file)
            answer = response.json()
            if response.status_code == 409:
                if "offset" not in answer:
                    raise ServerError(str(answer.get("detail")), 409)
                if answer["offset"] > end or answer["offset"] == offset:
                    raise ServerError(f"rank {rank}: server holds {answer['offset']} bytes of metrics; local file has {end}", 409)
                offset = answer["offset"]
                continue
            sent += len(data)
            bar.update(1)
            offset = answer["offset"]
    return offset, sent


def _post_lines(http: HttpClient, run_id: str, rank: int, offset: int, data: bytes, rank_file: Path) -> Response:
    """POST one chunk of lines. A chunk the server finds malformed (400: a torn line an older
    writer left after a full disk) is sent once more with its damaged lines blanked out (same
    length, so offsets hold) after one warning."""
    def post(body: bytes) -> Response:
        return http.request(
            "POST", f"/runs/{run_id}/metrics/{rank}", params={"offset": offset}, data=body,
            headers={"Content-Type": "application/x-ndjson"}, accept=(400, 409),
        )

    response = post(data)
    if response.status_code == 400:
        repaired = repair_chunk(data)
        if repaired == data:
            raise_for_status(response)
        warn_once(f"torn-upload:{rank_file}", f"em_dist: {rank_file} holds a damaged line (a write cut short "
                  "by a full disk or a crash); it is skipped in the upload", 4)
        response = post(repaired)
        if response.status_code == 400:
            raise_for_status(response)
    return response


def _run_body(snap: RunSnapshot, spec: dict[str, Any], strategy: str) -> dict[str, Any]:
    r = snap.record
    run_meta = {
        "name": r.name,
        "alternative_name": r.alternative_name,
        "status": r.status,
        "status_reason": r.status_reason,
        "labels": r.labels,
        "description": r.description,
        "start_timestamp": r.start_timestamp,
        "end_timestamp": r.end_timestamp,
        "world": r.world,
        "lost_ranks": r.lost_ranks,
        "host": snap.raw.get("host"),
        "pid": snap.raw.get("pid"),
    }
    return {
        **spec,
        "conflict_strategy": strategy,
        "run": run_meta,
        "hparams": r.hparams,
        "hparams_ranks": {str(k): v for k, v in r.rank_hparams.items()},
        "platform": r.platform,
        "git": r.git,
        "artifacts": [{"id": a["id"], "name": a.get("name", ""), "role": a["role"],
                       **({"rank": a["rank"]} if isinstance(a.get("rank"), int) else {})} for a in snap.artifacts],
        "ranks": list(snap.metric_sizes),
        "delivery": r.delivery,
    }


def upload_run(
    path: str | os.PathLike[str],
    *,
    folder: str | None = None,
    folder_id: str | None = None,
    make_folder: bool | None = None,
    conflict_strategy: str = "new",
    host: str | None = None,
    api_key: str | None = None,
    progress: bool = False,
    http: HttpClient | None = None,
    record: bool = True,
) -> UploadResult:
    """Upload one run folder with its marked artifacts; safe to repeat and to resume.

    With no ``folder``/``folder_id`` it goes to the folder the run asked for (:func:`requested_folder`).
    ``record=False`` leaves the run folder's ``uploads.json`` alone (the local console's
    private server must not appear in the user's upload history).
    """
    target = UploadTarget(folder, folder_id, make_folder, host, api_key)
    return send_run(path, target, conflict_strategy=conflict_strategy, progress=progress, http=http, record=record)


def send_run(path: str | os.PathLike[str], target: UploadTarget, *, conflict_strategy: str = "new",
             progress: bool = False, http: HttpClient | None = None, record: bool = True) -> UploadResult:
    """:func:`upload_run` to ``target`` (what :func:`upload` and the auto-uploader call with the target
    they made once)."""
    layout.check_conflict_strategy(conflict_strategy)
    run_dir = Path(path)
    if not (run_dir / layout.RUN_FILE).is_file():
        raise RunFormatError(f"{run_dir} is not a run folder (no {layout.RUN_FILE})")
    own = http is None
    http = http or target.client()
    try:
        snap = take(run_dir)
        spec = target.for_run(run_dir).folder_spec()
        answer = http.request("PUT", f"/runs/{snap.record.id}", json=_run_body(snap, spec, conflict_strategy)).json()
        result = UploadResult(snap.record.id, answer["id"], answer["folder"], bool(answer["skipped"]),
                              folder_id=answer.get("folder_id"), name=answer.get("name"),
                              url=console_url(http.host, answer["id"]))
        if result.skipped:
            return result
        art_spec = {"folder": None, "folder_id": answer["folder_id"], "make_folder": False}
        for item in snap.artifacts:
            art_dir = resolve_artifact_path(run_dir, item.get("path"))
            if art_dir is None:
                continue  # an input artifact from elsewhere: the lineage edge names it
            art = _send_artifact(http, art_dir, art_spec, progress)
            result.bytes_sent += art.bytes_sent
            result.artifacts.append(art.artifact_id)
        offsets = {int(k): v for k, v in answer.get("offsets", {}).items()}
        chunks = sum(max(0, size - offsets.get(rank, 0)) // CHUNK_BYTES + 1 for rank, size in snap.metric_sizes.items())
        bar = _Progress(progress, chunks, f"metrics {snap.record.name}", "chunk")
        try:
            for rank, size in snap.metric_sizes.items():
                start = offsets.get(rank, 0)
                if size > start:
                    offsets[rank], sent = _send_rank(http, snap.record.id, layout.metrics_file(run_dir, rank), rank, start, size, bar)
                    result.metrics_sent += sent
                    result.bytes_sent += sent
        finally:
            bar.close()
        log_offsets, result.logs_sent = upload_logs(http, run_dir, snap.record.id)  # captured output
        result.bytes_sent += result.logs_sent
        media_offsets, result.media_sent, result.images_sent = upload_media(http, run_dir, snap.record.id)
        result.bytes_sent += result.media_sent + result.images_sent
        if record:
            record_upload(run_dir, {
                "host": http.host, "server_run_id": result.server_run_id, "folder": result.folder,
                "folder_id": result.folder_id, "name": result.name, "status": snap.record.status,
                "offsets": {str(k): v for k, v in offsets.items()},
                "log_offsets": {str(k): v for k, v in log_offsets.items()},
                "media_offsets": {str(k): v for k, v in media_offsets.items()},
            })
        return result
    finally:
        if own:
            http.close()


def upload_artifact(
    path: str | os.PathLike[str],
    *,
    folder: str | None = "default",
    folder_id: str | None = None,
    make_folder: bool = False,
    host: str | None = None,
    api_key: str | None = None,
    progress: bool = False,
) -> ArtifactUploadResult:
    """Upload one artifact folder; blobs the server already holds are not sent again."""
    target = UploadTarget(folder, folder_id, make_folder, host, api_key)
    art_dir = Path(path)
    if not (art_dir / layout.ARTIFACT_FILE).is_file():
        raise RunFormatError(f"{art_dir} is not an artifact folder (no {layout.ARTIFACT_FILE})")
    http = target.client()
    try:
        return _send_artifact(http, art_dir, target.folder_spec(), progress)
    finally:
        http.close()


def upload(
    path: str | os.PathLike[str],
    *,
    folder: str | None = None,
    folder_id: str | None = None,
    make_folder: bool | None = None,
    conflict_strategy: str = "new",
    host: str | None = None,
    api_key: str | None = None,
    progress: bool = False,
) -> UploadResult | list[UploadResult]:
    """Upload a run folder, or every run folder directly under ``path`` (a list then).

    With no ``folder``/``folder_id`` each run goes to the folder its script asked for (else ``default``).
    """
    layout.check_conflict_strategy(conflict_strategy)
    root = Path(path)
    target = UploadTarget(folder, folder_id, make_folder, host, api_key)
    if (root / layout.RUN_FILE).is_file():
        return send_run(root, target, conflict_strategy=conflict_strategy, progress=progress)
    if not root.is_dir():
        raise FileNotFoundError(f"no run folder at {root}")
    runs = sorted(p for p in root.iterdir() if (p / layout.RUN_FILE).is_file())
    if not runs:
        raise RunFormatError(f"{root} holds no run folders")
    http = target.client()  # one session for every run
    try:
        return [send_run(p, target, conflict_strategy=conflict_strategy, progress=progress, http=http) for p in runs]
    finally:
        http.close()

