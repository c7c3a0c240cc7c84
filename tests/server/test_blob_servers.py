"""Artifacts end to end on both blob stores (a directory and S3 via ``rclone serve s3``):
upload, download whole and in ranges, dedupe, an abandoned upload, and ``em server gc``."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid
from pathlib import Path

import pytest
import requests

import em_dist as em
from em_dist.server.blobs import BlobStore, open_blob_store
from tests.conftest import python_env
from tests.poll import wait_for
from tests.server.harness import ServerProcess, em_cli
from tests.server.runs import make_run
from tests.server.test_blob_store import leftovers

MiB = 1024 * 1024


@pytest.fixture(scope="module", params=["dir", "s3"])
def blob_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A server (SQLite) whose blobs live in a directory or an S3 bucket, and that store opened here too."""
    data_dir = tmp_path_factory.mktemp("server")
    if request.param == "dir":
        srv = ServerProcess(data_dir, None)
    else:
        s3 = request.getfixturevalue("s3_server")
        srv = ServerProcess(data_dir, None, blobs=f"s3://{s3.new_bucket()}/em/blobs", env=s3.env())
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def store(blob_server, monkeypatch: pytest.MonkeyPatch) -> BlobStore:  # type: ignore[no-untyped-def]
    for name, value in blob_server.env.items():
        monkeypatch.setenv(name, value)
    return open_blob_store(blob_server.blobs or blob_server.data_dir / "blobs")


def _api(server, key: str):  # type: ignore[no-untyped-def]
    def call(method: str, path: str, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{server.url}/api/v1{path}", headers=headers, timeout=60, **kwargs)
    return call


def _artifact(api, content: bytes, name: str = "model.bin") -> tuple[str, str]:  # type: ignore[no-untyped-def]
    sha = hashlib.sha256(content).hexdigest()
    assert api("PUT", f"/blobs/{sha}", data=content).status_code == 201
    aid = str(uuid.uuid4())
    files = [{"path": name, "size": len(content), "sha256": sha}]
    answer = api("PUT", f"/artifacts/{aid}", json={"artifact": {"name": "m"}, "files": files})
    assert answer.status_code == 200, answer.text
    return aid, sha


def test_a_run_and_a_multipart_artifact_round_trip(blob_server, store: BlobStore) -> None:
    _, key = blob_server.add_user()
    big = os.urandom(9 * MiB + 5)  # past one S3 part
    run = make_run("s3run", steps=20, artifact_bytes=big)
    em.upload(run.path, folder="s3", make_folder=True, host=blob_server.url, api_key=key)
    client = em.Client(host=blob_server.url, api_key=key)
    (link,) = client.run(run.id).artifacts
    assert client.artifact(link.id).read("model.bin") == big
    assert store.exists(hashlib.sha256(big).hexdigest())


def test_downloads_honour_one_byte_range(blob_server) -> None:
    _, key = blob_server.add_user()
    api = _api(blob_server, key)
    content = bytes(range(256)) * 4000
    aid, sha = _artifact(api, content)
    path = f"/artifacts/{aid}/files/model.bin"
    whole = api("GET", path)
    assert whole.status_code == 200 and whole.content == content and whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["x-content-sha256"] == sha
    for header, part in (("bytes=10-99", content[10:100]), ("bytes=1000-", content[1000:]), ("bytes=-5", content[-5:]),
                         ("bytes=0-99999999", content)):
        got = api("GET", path, headers={"Range": header})
        assert got.status_code == 206 and got.content == part, header
        first = len(content) - len(part) if header.startswith("bytes=-") else int(header[6:].split("-")[0])
        assert got.headers["content-range"] == f"bytes {first}-{first + len(part) - 1}/{len(content)}"
    past = api("GET", path, headers={"Range": f"bytes={len(content)}-"})
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(content)}"
    assert api("GET", path, headers={"Range": "bytes=0-1,5-6"}).content == content  # several ranges: the whole
    # the range answer checks who asks, like the whole file
    _, stranger = blob_server.add_user()
    refused = _api(blob_server, stranger)("GET", path, headers={"Range": "bytes=0-9"})
    assert refused.status_code == 404 and content[:10] not in refused.content  # as if there were no such artifact


def test_the_same_bytes_from_two_users_are_stored_once(blob_server, store: BlobStore) -> None:
    content = os.urandom(20_000)
    sha = hashlib.sha256(content).hexdigest()
    for _ in range(2):
        _, key = blob_server.add_user()
        assert _api(blob_server, key)("PUT", f"/blobs/{sha}", data=content).status_code == 201
    assert [b.sha256 for b in store.iter_blobs()].count(sha) == 1 and store.stat(sha).size == len(content)


def test_an_abandoned_upload_leaves_no_temporary_upload(blob_server, store: BlobStore) -> None:
    _, key = blob_server.add_user()
    sha = "cd" * 32
    with socket.create_connection(("127.0.0.1", blob_server.port), timeout=30) as sock:
        sock.sendall((f"PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: 127.0.0.1:{blob_server.port}\r\n"
                      f"Authorization: Bearer {key}\r\nContent-Length: {64 * MiB}\r\n\r\n").encode())
        for _ in range(12):  # past one S3 part: a multipart upload is open
            sock.sendall(b"x" * MiB)
        wait_for(lambda: leftovers(store), what="the upload's temporary file or multipart upload")
    wait_for(lambda: not leftovers(store), what="the temporary upload to go when the client left")
    assert not store.exists(sha)


def test_gc_takes_only_unreferenced_blobs_past_the_grace_period(blob_server, store: BlobStore) -> None:
    _, key = blob_server.add_user()
    api = _api(blob_server, key)
    kept_content, loose_content = os.urandom(5000), os.urandom(6000)
    aid, kept = _artifact(api, kept_content)
    loose = hashlib.sha256(loose_content).hexdigest()
    assert api("PUT", f"/blobs/{loose}", data=loose_content).status_code == 201  # its artifact is not registered yet
    gc = ["server", "gc", *blob_server.store_args()]
    env = python_env(**blob_server.env)
    out = em_cli(*gc, env=env).stdout  # default grace: an upload in flight
    assert out.startswith("removed 0 blob(s)") and store.exists(loose)
    out = em_cli(*gc, "--grace-s", "0", "--dry-run", env=env).stdout
    assert out.startswith("would remove") and store.exists(loose)
    out = em_cli(*gc, "--grace-s", "0", env=env).stdout
    assert not store.exists(loose) and store.exists(kept), out
    assert api("GET", f"/artifacts/{aid}/files/model.bin").content == kept_content
    # the late registration is told to send the bytes again, never left pointing at nothing
    files = [{"path": "late.bin", "size": len(loose_content), "sha256": loose}]
    late = str(uuid.uuid4())
    answer = api("PUT", f"/artifacts/{late}", json={"artifact": {"name": "late"}, "files": files})
    assert answer.status_code == 409 and answer.json()["missing"] == [loose]
    assert api("POST", "/blobs/missing", json={"sha256": [loose]}).json() == {"missing": [loose]}
    assert api("PUT", f"/blobs/{loose}", data=loose_content).status_code == 201
    assert api("PUT", f"/artifacts/{late}", json={"artifact": {"name": "late"}, "files": files}).status_code == 200
    assert api("GET", f"/artifacts/{late}/files/late.bin").content == loose_content


def test_a_missing_bucket_stops_the_server_with_a_clear_message(s3_server, tmp_path: Path) -> None:
    proc = em_cli("server", "start", "--data-dir", str(tmp_path / "d"), "--blobs", "s3://no-such-bucket/x",
                  env=python_env(**s3_server.env()), check=False)
    assert proc.returncode != 0 and "cannot use S3 bucket 'no-such-bucket'" in proc.stderr
    assert "Traceback" not in proc.stderr
