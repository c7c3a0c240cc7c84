"""Issue 9, hostile but fair: a second user, a script on the console's origin, secrets on a
command line, inputs a database can't hold, a rebinding page. Each test reproduced a bug
before the fix; all run against a real server over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import select
import socket
import stat
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.poll import wait_for
from tests.server.harness import em_cli
from tests.server.runs import make_run

ATTACK_HEADERS = ({"Authorization": "Basic eDp4"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer "}, {})


class Api:
    """Raw REST calls as one user (``key``), or with any headers and cookies given."""

    def __init__(self, server, key: str | None = None) -> None:  # type: ignore[no-untyped-def]
        self.url = f"{server.url}/api/v1"
        self.key = key

    def __call__(self, method: str, path: str, *, headers: dict | None = None, **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        sent = {"Authorization": f"Bearer {self.key}"} if self.key and headers is None else dict(headers or {})
        return requests.request(method, self.url + path, headers=sent, timeout=60, **kwargs)


def _user(server) -> tuple[str, str, Api]:  # type: ignore[no-untyped-def]
    name, key = server.add_user()
    return name, key, Api(server, key)


def _blob(api: Api, content: bytes) -> str:
    sha = hashlib.sha256(content).hexdigest()
    assert api("PUT", f"/blobs/{sha}", data=content).status_code == 201
    return sha


# -- 1. cross-user artifact reads -------------------------------------------------------------

def test_a_run_cannot_link_or_show_another_users_artifact(server) -> None:
    _, alice_key, alice = _user(server)
    _, _, bob = _user(server)
    run = make_run("alice-private", steps=2, artifact_bytes=b"alice weights")
    result = em.upload(run.path, folder="private", make_folder=True, host=server.url, api_key=alice_key)
    alice_artifact = result.artifacts[0]

    bob_run = str(uuid.uuid4())
    body = {"run": {"name": "bob"}, "artifacts": [{"id": alice_artifact, "role": "input"}]}
    response = bob("PUT", f"/runs/{bob_run}", json=body)
    assert response.status_code == 403 and "not yours" in response.json()["detail"]
    assert bob("GET", f"/runs/{bob_run}").status_code == 404  # nothing stored half

    # a link made before the artifact existed never shows its content once alice stores it
    later = str(uuid.uuid4())
    assert bob("PUT", f"/runs/{bob_run}", json={"run": {"name": "bob"}, "artifacts": [
        {"id": later, "name": "mine", "role": "input"}]}).status_code == 200
    sha = _blob(alice, b"alice's later bytes")
    assert alice("PUT", f"/artifacts/{later}", json={"artifact": {"name": "secret"}, "folder": "private",
                                                     "files": [{"path": "w.bin", "size": 19, "sha256": sha}]}).status_code == 200
    for path in (f"/runs/{bob_run}", f"/runs/{bob_run}/artifacts"):
        body = bob("GET", path).json()
        linked = body["artifacts"] if isinstance(body, dict) else body
        assert linked == [{"id": later, "name": "mine", "files": [], "role": "input", "stored": False,
                           "rank": None, "run_id": bob_run}], path
        assert sha not in json.dumps(body) and "secret" not in json.dumps(body)
    graph = bob("GET", f"/lineage/{bob_run}").json()
    assert all(n.get("name") != "secret" for n in graph["nodes"])


# -- 2. blobs by hash ----------------------------------------------------------------------------

def test_blobs_are_usable_only_by_who_uploaded_or_can_see_them(server) -> None:
    _, _, alice = _user(server)
    bob_name, _, bob = _user(server)
    content = b"alice's private model " * 1000
    sha = _blob(alice, content)
    art = str(uuid.uuid4())
    files = [{"path": "model.bin", "size": len(content), "sha256": sha}]
    response = alice("PUT", f"/artifacts/{art}", json={"artifact": {"name": "m"}, "folder": "own", "make_folder": True, "files": files})
    assert response.status_code == 200

    assert bob("POST", "/blobs/missing", json={"sha256": [sha]}).json() == {"missing": [sha]}
    stolen = str(uuid.uuid4())
    response = bob("PUT", f"/artifacts/{stolen}", json={"artifact": {"name": "x"}, "files": [dict(files[0], size=1)]})
    assert response.status_code == 409 and response.json()["missing"] == [sha]
    assert str(len(content)) not in response.text  # a wrong size reveals nothing
    assert bob("GET", f"/artifacts/{stolen}").status_code == 404

    # bob holding the same bytes: one hash check, no second copy, then he may use it
    assert bob("PUT", f"/blobs/{sha}", data=content).status_code == 201
    copies = [p for p in (server.data_dir / "blobs").rglob("*") if p.is_file() and (sha in p.name or p.name.startswith(".upload-"))]
    assert [p.name for p in copies] == [sha]
    assert bob("POST", "/blobs/missing", json={"sha256": [sha]}).json() == {"missing": []}
    assert bob("PUT", f"/artifacts/{stolen}", json={"artifact": {"name": "x"}, "files": files}).status_code == 200

    # a viewer of alice's folder may reference her blob
    carol_name, _, carol = _user(server)
    folder_id = alice("GET", f"/artifacts/{art}").json()["folder_id"]
    assert alice("POST", f"/folders/{folder_id}/shares", json={"user": carol_name, "permission": "view"}).status_code == 201
    assert carol("POST", "/blobs/missing", json={"sha256": [sha]}).json() == {"missing": []}
    assert bob_name != carol_name


# -- 3. the console session only reads, and ends ---------------------------------------------

def test_the_console_session_never_writes_and_ends_at_sign_out_and_revoke(server) -> None:
    name, key, alice = _user(server)
    run = make_run("keep-me", steps=2, artifact_bytes=None)
    em.upload(run.path, host=server.url, api_key=key)
    signin = alice("POST", "/session")
    assert signin.status_code == 200 and signin.json()["name"] == name
    token = signin.cookies["em_session"]
    assert token and key not in token and key not in signin.headers.get("set-cookie", "")
    cookie = {"em_session": token}
    assert alice("GET", "/folders", headers={}, cookies=cookie).status_code == 200

    replace = {"run": {"name": "keep-me"}, "conflict_strategy": "replace", "folder": "default"}
    for headers in ATTACK_HEADERS:
        for method, path, kwargs in (("PUT", f"/runs/{uuid.uuid4()}", {"json": replace}),
                                     ("POST", "/folders", {"json": {"path": "x"}})):
            response = alice(method, path, headers=headers, cookies=cookie, **kwargs)
            assert response.status_code in (401, 403), (headers, path, response.status_code)
    assert [r["name"] for r in em.Client(host=server.url, api_key=key).runs()] == ["keep-me"]

    assert alice("DELETE", "/session", headers={}, cookies=cookie).status_code == 204
    assert alice("GET", "/folders", headers={}, cookies=cookie).status_code == 401  # the old cookie is dead

    second = alice("POST", "/session").cookies["em_session"]
    assert alice("GET", "/me", headers={}, cookies={"em_session": second}).status_code == 200
    em_cli("server", "key", "revoke", key, *server.store_args())
    assert alice("GET", "/me", headers={}, cookies={"em_session": second}).status_code == 401


# -- 4. secrets on the command line ----------------------------------------------------------

SCRIPT = """
import argparse, sys
import em_dist as em
p = argparse.ArgumentParser()
p.add_argument("--api_key"); p.add_argument("--password"); p.add_argument("--lr", type=float); p.add_argument("--tokenizer")
args = p.parse_args()
run = em.create_run(name="secretive")
run.hparams.update(vars(args))
assert run.hparams["api_key"] == args.api_key  # the script still reads its own value
run.log(type="train", metrics={"loss": 1.0}, step=0)
run.finish()
print(run.path)
"""


def test_secrets_on_the_command_line_are_never_recorded(tmp_path, server) -> None:
    _, key = server.add_user()
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    env = python_env(EM_RUN_PARENT_DIR=str(tmp_path / "runs"), EM_FLUSH_INTERVAL="0.1")
    proc = subprocess.run([PYTHON, str(script), "--api_key", key, "--password=hunter2", "--lr", "0.1",
                           "--tokenizer", "bert", "--lr=0.2"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    run_dir = proc.stdout.strip().splitlines()[-1]
    on_disk = "".join(p.read_text() for p in Path(run_dir).glob("*.json"))
    assert key not in on_disk and "hunter2" not in on_disk
    record = em.load_run(run_dir)
    command = record.platform["ranks"]["0"]["command"]
    assert command[1:] == ["--api_key", "<redacted>", "--password=<redacted>", "--lr", "0.1", "--tokenizer", "bert", "--lr=0.2"]
    assert record.hparams["api_key"] == "<redacted>" and record.hparams["lr"] == 0.2 and record.hparams["tokenizer"] == "bert"
    em.upload(run_dir, host=server.url, api_key=key)
    assert key not in requests.get(f"{server.url}/api/v1/runs/{record.id}", headers={"Authorization": f"Bearer {key}"},
                                   timeout=30).text


# -- 5. one set of limits ----------------------------------------------------------------------

BAD_LINES = [
    ("metric name over 500 characters", {"metrics": {"n" * 501: 1.0}}),
    ("type over 200 characters", {"type": "t" * 201}),
    ("NUL in a name", {"metrics": {"lo\x00ss": 1.0}}),
    ("lone surrogate", {"metrics": {"\ud800": 1.0}}),
    ("step >= 2**63", {"step": 2**63}),
    ("integer >= 1e309", {"metrics": {"loss": 10**309}}),
    ("huge epoch", {"epoch": 10**309}),
]


def _line(**fields) -> bytes:  # type: ignore[no-untyped-def]
    rec = {"type": "train", "step": 1, "time": 1.0, "metrics": {"loss": 0.5}, **fields}
    return (json.dumps(rec) + "\n").encode()


@pytest.mark.parametrize("what,fields", BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_metric_lines_are_400_naming_the_line_and_store_nothing(server, what, fields) -> None:
    _, _, api = _user(server)
    rid = str(uuid.uuid4())
    assert api("PUT", f"/runs/{rid}", json={"run": {"name": "r"}}).status_code == 200
    good = _line(step=0)
    response = api("POST", f"/runs/{rid}/metrics/0", params={"offset": 0}, data=good + _line(**fields))
    assert response.status_code == 400, what
    assert response.json()["detail"].startswith("line 2:"), response.json()
    assert api("GET", f"/runs/{rid}/metrics/names").json() == []
    assert api("POST", f"/runs/{rid}/metrics/0", params={"offset": 0}, data=good).json()["points"] == 1


def test_log_refuses_at_the_call_what_the_server_refuses(tmp_path) -> None:
    run = em.create_run(name="limits")
    try:
        for kwargs in ({"metrics": {"n" * 501: 1.0}}, {"type": "t" * 201}, {"metrics": {"lo\x00ss": 1.0}},
                       {"metrics": {"\ud800": 1.0}}, {"step": 2**63}, {"metrics": {"loss": 10**309}}):
            call = {"type": "train", "metrics": {"loss": 1.0}, "step": 1, **kwargs}
            with pytest.raises(ValueError):
                run.log(**call)
        run.log(type="train", metrics={"n" * 500: 1.0, "big": 2**64, "nan": float("nan")}, step=2**63 - 1)
    finally:
        run.finish()


def test_documents_and_parameters_a_database_cant_hold_are_400(server) -> None:
    _, _, api = _user(server)
    rid = str(uuid.uuid4())
    for raw in (b'{"run": {"name": "r"}, "hparams": {"lr": NaN}}', b'{"run": {"name": "r"}, "hparams": {"x": Infinity}}',
                b'{"run": {"name": "r\\u0000"}}', b'{"run": {"name": "r"}, "platform": {"\\ud800": 1}}'):
        response = api("PUT", f"/runs/{rid}", data=raw, headers={"Authorization": f"Bearer {api.key}", "Content-Type": "application/json"})
        assert response.status_code == 400, (raw, response.text)
    assert api("GET", f"/runs/{rid}").status_code == 404
    assert api("POST", f"/runs/{rid}/metrics/{2**31}", params={"offset": 0}, data=_line()).status_code == 400
    assert api("GET", "/runs", params={"folder": "a\x00b"}).status_code == 400
    assert api("POST", "/folders", json={"path": "x\x00y"}).status_code == 400


# -- 6. shares can be revoked; a stranger learns no folder name ---------------------------------

def test_shares_are_revoked_and_strangers_learn_no_names(server) -> None:
    _, alice_key, alice = _user(server)
    bob_name, bob_key, bob = _user(server)
    folder = alice("POST", "/folders", json={"path": "projects/top-secret-name"}).json()
    # a stranger: the answer for a folder id that does not exist, so the id tells nothing
    stranger, missing = bob("GET", f"/folders/{folder['id']}/runs"), bob("GET", f"/folders/{uuid.uuid4()}/runs")
    assert stranger.status_code == missing.status_code == 404
    assert stranger.json()["detail"].replace(folder["id"], "<id>") == missing.json()["detail"].rsplit(" ", 1)[0] + " <id>"
    assert "top-secret-name" not in stranger.text
    client = em.Client(host=server.url, api_key=alice_key)
    client.share(folder["id"], bob_name, "view")
    assert client.shares(folder["id"]) == [{"user": bob_name, "permission": "view"}]
    assert bob("GET", f"/folders/{folder['id']}/runs").status_code == 200
    assert bob("GET", f"/folders/{folder['id']}/shares").status_code == 403  # only the owner sees who
    with pytest.raises(em.PermissionDeniedError):
        em.Client(host=server.url, api_key=bob_key).unshare(folder["id"], bob_name)
    client.unshare(folder["id"], bob_name)
    assert client.shares(folder["id"]) == []
    assert bob("GET", f"/folders/{folder['id']}/runs").status_code == 404  # a revoked share: a stranger again
    assert em.Client(host=server.url, api_key=bob_key).folders() == []
    with pytest.raises(em.NotFoundError):
        client.unshare(folder["id"], bob_name)


# -- 7. headers (the local console's Host check is in tests/console) ------------------------------

def test_pages_carry_security_headers(server) -> None:
    for path in ("/", "/api/v1/me", "/static/js/app.js"):
        response = requests.get(server.url + path, timeout=30)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path


# -- 8. small ones ------------------------------------------------------------------------------

def test_data_dir_and_database_are_private(server) -> None:
    if server.kind != "sqlite":
        pytest.skip("the file modes are those of the SQLite data dir")
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((server.data_dir / "em.db").stat().st_mode) == 0o600


def test_an_abandoned_blob_upload_leaves_no_temp_file(server) -> None:
    _, key, api = _user(server)
    sha = "ab" * 32
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall((f"PUT /api/v1/blobs/{sha} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nAuthorization: Bearer {key}\r\n"
                      f"Content-Length: {64 * 1024 * 1024}\r\n\r\n").encode())
        for _ in range(8):
            sock.sendall(b"x" * (1024 * 1024))
        temps = wait_for(lambda: list((server.data_dir / "blobs").rglob(".upload-*")), what="the upload's temp file")
    wait_for(lambda: not any(p.exists() for p in temps), what="the temp file to go when the client left")
    assert api("GET", "/me").status_code == 200
    log = bytearray()

    def logged() -> bool:  # the server's output so far: one line for the disconnect, no traceback
        while select.select([server.proc.stdout], [], [], 0)[0]:
            chunk = server.proc.stdout.read1(65536)
            if not chunk:
                break
            log.extend(chunk)
        return f"blob {sha}: the client disconnected".encode() in log

    wait_for(logged, what="the disconnect to be logged")
    assert b"Traceback" not in log, log.decode(errors="replace")


def test_files_named_with_url_characters_download(server) -> None:
    _, key, api = _user(server)
    content = b"odd name"
    sha = _blob(api, content)
    aid = str(uuid.uuid4())
    names = ["a#b.txt", "q?x=1.txt", "100%.txt", "sp ace/f.txt"]
    files = [{"path": n, "size": len(content), "sha256": sha} for n in names]
    assert api("PUT", f"/artifacts/{aid}", json={"artifact": {"name": "odd"}, "files": files}).status_code == 200
    artifact = em.Client(host=server.url, api_key=key).artifact(aid)
    for n in names:
        assert artifact.read(n) == content


# -- captured output (issue 11) ----------------------------------------------------------------
def test_a_runs_output_is_neither_readable_nor_writable_by_another_user(server) -> None:
    _, _, owner = _user(server)
    _, _, stranger = _user(server)
    rid = str(uuid.uuid4())
    assert owner("PUT", f"/runs/{rid}", json={"run": {"name": "r"}}).status_code == 200
    line = b"2026-12-01T00:00:00.000000Z out secret output\n"
    assert owner("POST", f"/runs/{rid}/logs/0", params={"offset": 0}, data=line).json()["offset"] == len(line)
    for path in (f"/runs/{rid}/logs", f"/runs/{rid}/logs/offsets"):
        answer = stranger("GET", path, params={"q": "secret"})
        assert answer.status_code in (403, 404) and "secret" not in answer.text
    assert stranger("POST", f"/runs/{rid}/logs/0", params={"offset": len(line)}, data=line).status_code in (403, 404)
    for headers in ATTACK_HEADERS:
        assert owner("GET", f"/runs/{rid}/logs", headers=headers).status_code == 401
    assert [x["text"] for x in owner("GET", f"/runs/{rid}/logs").json()["lines"]] == ["secret output"]


def test_bad_log_lines_are_400_and_store_nothing(server) -> None:
    _, _, api = _user(server)
    rid = str(uuid.uuid4())
    assert api("PUT", f"/runs/{rid}", json={"run": {"name": "r"}}).status_code == 200
    good = b"2026-12-01T00:00:00.000000Z out fine\n"
    for bad in (b"not a log line\n", b"2026-12-01T00:00:00.000000Z out nul \x00 here\n",
                b"2026-12-01T00:00:00.000000Z out \xff\n", good.rstrip(b"\n")):
        assert api("POST", f"/runs/{rid}/logs/0", params={"offset": 0}, data=good + bad).status_code == 400, bad
    assert api("GET", f"/runs/{rid}/logs").json()["lines"] == []
    assert api("POST", f"/runs/{rid}/logs/{2**31}", params={"offset": 0}, data=good).status_code in (400, 422)
