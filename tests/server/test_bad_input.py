"""Bad payloads get a clear 4xx with a JSON message, and nothing is stored half."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
import requests

import em_dist as em
from tests.server.runs import make_run


@pytest.fixture
def api(server):
    """(call, key, client) for a fresh user on the module's server."""
    _, key = server.add_user()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"

    def call(method: str, path: str, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        return session.request(method, f"{server.url}/api/v1{path}", timeout=60, **kwargs)

    yield call, key, em.Client(host=server.url, api_key=key)
    session.close()


def _run_body(**run) -> dict:  # type: ignore[no-untyped-def]
    return {"run": {"name": "r", **run}, "folder": "default"}


def test_malformed_json_is_400(api) -> None:
    call, _, _ = api
    response = call("PUT", f"/runs/{uuid.uuid4()}", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"] == "malformed JSON body"


def test_wrong_types_are_422(api) -> None:
    call, _, client = api
    rid = str(uuid.uuid4())
    for body in (_run_body(labels="not-a-list"), {"run": {"name": 5}}, {"run": {"name": "r"}, "hparams": [1, 2]},
                 {"run": {"name": "r"}, "conflict_strategy": "merge"}, {}):
        response = call("PUT", f"/runs/{rid}", json=body)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], str) and response.json()["detail"]
    assert client.runs() == []


def test_bad_metric_lines_store_nothing(api) -> None:
    call, _, client = api
    rid = str(uuid.uuid4())
    assert call("PUT", f"/runs/{rid}", json=_run_body()).status_code == 200
    good = b'{"type": "train", "step": 0, "time": 1.0, "metrics": {"loss": 1.5}}\n'
    for bad in (b"{oops}\n", b'{"type": "train", "step": -1, "time": 1.0, "metrics": {}}\n',
                b'{"type": "train", "step": 1, "time": 1.0, "metrics": {"loss": "high"}}\n',
                b'{"type": "train", "step": 1, "time": 1.0, "metrics": {"loss": 1}}'):  # no final newline
        response = call("POST", f"/runs/{rid}/metrics/0", params={"offset": 0}, data=good + bad)
        assert response.status_code == 400, bad
        assert response.json()["detail"]
    assert call("GET", f"/runs/{rid}/offsets").json() == {}
    assert client.metric_names(rid) == []
    # a gap is a 409 carrying the server's offset
    response = call("POST", f"/runs/{rid}/metrics/0", params={"offset": 10}, data=good)
    assert response.status_code == 409 and response.json()["offset"] == 0
    # a re-sent chunk is acknowledged, not stored twice
    for _ in range(2):
        assert call("POST", f"/runs/{rid}/metrics/0", params={"offset": 0}, data=good).json()["offset"] == len(good)
    assert [s["count"] for s in client.metric_names(rid)] == [1]


@pytest.mark.parametrize("path", ["../escape.bin", "/etc/passwd", "a/../../b", "a//b", "C:/x", "a\\b", "./a"])
def test_artifact_paths_outside_are_refused(api, path: str) -> None:
    call, _, _ = api
    content = b"payload"
    sha = hashlib.sha256(content).hexdigest()
    assert call("PUT", f"/blobs/{sha}", data=content).status_code == 201
    aid = str(uuid.uuid4())
    response = call("PUT", f"/artifacts/{aid}", json={"artifact": {"name": "a"}, "files": [{"path": path, "size": 7, "sha256": sha}]})
    assert response.status_code == 400
    assert "invalid artifact file path" in response.json()["detail"]
    assert call("GET", f"/artifacts/{aid}").status_code == 404


def test_blob_hash_mismatch_and_missing_blobs(api, server) -> None:
    call, _, _ = api
    content = b"real bytes"
    wrong = hashlib.sha256(b"other").hexdigest()
    response = call("PUT", f"/blobs/{wrong}", data=content)
    assert response.status_code == 400 and "hashes to" in response.json()["detail"]
    assert call("POST", "/blobs/missing", json={"sha256": [wrong]}).json() == {"missing": [wrong]}
    assert not list((server.data_dir / "blobs").rglob(f"*{wrong}*"))
    aid = str(uuid.uuid4())
    response = call("PUT", f"/artifacts/{aid}", json={"artifact": {"name": "a"}, "files": [{"path": "x", "size": 10, "sha256": wrong}]})
    assert response.status_code == 409 and response.json()["missing"] == [wrong]
    assert call("PUT", "/blobs/not-a-hash", data=b"x").status_code == 400


def test_oversize_body_is_413(api) -> None:
    call, _, client = api
    rid = str(uuid.uuid4())
    huge = {"run": {"name": "big"}, "hparams": {"blob": "x" * (9 * 1024 * 1024)}}
    response = call("PUT", f"/runs/{rid}", data=json.dumps(huge), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "over" in response.json()["detail"]

    def chunked():  # no Content-Length: the limit applies while reading
        yield b'{"run": {"name": "big"}, "hparams": {"b": "'
        for _ in range(9):
            yield b"x" * (1024 * 1024)
        yield b'"}}'

    response = call("PUT", f"/runs/{rid}", data=chunked(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert call("GET", f"/runs/{rid}").status_code == 404
    assert client.runs() == []


def test_unknown_ids_are_404(api) -> None:
    call, _, client = api
    unknown = str(uuid.uuid4())
    for path in (f"/runs/{unknown}", f"/runs/{unknown}/metrics", f"/artifacts/{unknown}", f"/lineage/{unknown}",
                 f"/folders/{unknown}/runs"):
        response = call("GET", path)
        assert response.status_code == 404, path
        assert unknown in response.json()["detail"]
    assert call("POST", f"/runs/{unknown}/metrics/0", params={"offset": 0}, data=b"{}\n").status_code == 404
    with pytest.raises(em.NotFoundError, match="pass make_folder=True"):
        em.upload(make_run("nofolder", steps=1, artifact_bytes=None).path, folder="missing/folder",
                  host=client._http.host, api_key=client._http.session.headers["Authorization"][7:])
    assert client.runs() == []
