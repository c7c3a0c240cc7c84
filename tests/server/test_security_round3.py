"""Issue 23, hostile but fair, round 3: no cross-user reads by case or wildcard, no id squatting,
no existence oracles, no 5xx on any input, secrets in every form. Owner alice, bob with a view
share, carol with nothing; every test reproduced its bug before the fix, on a real server over
HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from em_dist.limits import MAX_WORLD_SIZE
from em_dist.platform.redact import REDACTED
from tests.server.test_security import Api, _blob, _user


def _run(api: Api, *, folder: str, name: str = "r", hparams: dict | None = None, **extra) -> str:  # type: ignore[no-untyped-def]
    rid = str(uuid.uuid4())
    body = {"run": {"name": name}, "folder": folder, "make_folder": True, "hparams": hparams or {}, **extra}
    response = api("PUT", f"/runs/{rid}", json=body)
    assert response.status_code == 200, response.text
    return rid


def _folder_id(api: Api, path: str) -> str:
    response = api("POST", "/folders", json={"path": path})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _share(api: Api, folder_id: str, user: str, permission: str = "view") -> None:
    assert api("POST", f"/folders/{folder_id}/shares", json={"user": user, "permission": permission}).status_code == 201


# -- 1. a recursive listing reaches only the shared folder's own subtree ------------------------

def test_a_recursive_listing_never_matches_other_folders_by_case_or_wildcard(server) -> None:
    _, _, alice = _user(server)
    bob_name, _, bob = _user(server)
    shared = [_folder_id(alice, "proj"), _folder_id(alice, "proj_x")]
    for fid in shared:
        _share(alice, fid, bob_name)
    seen = {_run(alice, folder="proj/sub", name="visible-1"), _run(alice, folder="proj_x/sub", name="visible-2")}
    hidden = [_run(alice, folder=path, name="hidden", hparams={"secret_lr": 0.123})
              for path in ("PROJ/hidden", "Proj/hidden", "projax/hidden", "PROJ_X/hidden", "proj%/hidden")]
    assert len(hidden) == 5
    listed: set[str] = set()
    for fid in shared:
        response = bob("GET", "/runs", params={"folder_id": fid, "recursive": "true", "limit": 1000})
        assert response.status_code == 200, response.text
        assert "0.123" not in response.text and "hidden" not in response.text
        listed |= {r["id"] for r in response.json()["runs"]}
    assert listed == seen


# -- 2. nobody else can create the artifact a run names as its output ---------------------------

def test_an_artifact_id_named_as_a_runs_output_cannot_be_squatted(server) -> None:
    _, _, alice = _user(server)
    bob_name, _, bob = _user(server)
    fid = _folder_id(alice, "squat")
    _share(alice, fid, bob_name)
    out = str(uuid.uuid4())
    rid = _run(alice, folder="squat", artifacts=[{"id": out, "name": "weights", "role": "output"}])
    listed = bob("GET", f"/runs/{rid}/artifacts").json()
    assert [a["id"] for a in listed] == [out] and listed[0]["stored"] is False

    bob_bytes = _blob(bob, b"bob's bytes")
    squat = bob("PUT", f"/artifacts/{out}", json={"artifact": {"name": "evil"}, "folder": "bob-own", "make_folder": True,
                                                   "files": [{"path": "w.bin", "size": 11, "sha256": bob_bytes}]})
    assert squat.status_code == 403, squat.text
    assert bob("GET", f"/artifacts/{out}").status_code == 404  # nothing stored

    alice_bytes = _blob(alice, b"alice's weights")
    mine = alice("PUT", f"/artifacts/{out}", json={"artifact": {"name": "weights"}, "folder_id": fid,
                                                    "files": [{"path": "w.bin", "size": 15, "sha256": alice_bytes}]})
    assert mine.status_code == 200, mine.text
    (shown,) = alice("GET", f"/runs/{rid}/artifacts").json()
    assert shown["stored"] is True and shown["files"][0]["sha256"] == alice_bytes


# -- 3. the lineage of an id names nothing a stranger may not see --------------------------------

def test_lineage_of_an_unstored_input_leaks_no_name_to_a_stranger(server) -> None:
    _, _, alice = _user(server)
    _, _, carol = _user(server)
    art = str(uuid.uuid4())
    rid = _run(alice, folder="private-lineage", artifacts=[{"id": art, "name": "top-secret-dataset", "role": "input"}])
    unstored, nothing = carol("GET", f"/lineage/{art}"), carol("GET", f"/lineage/{uuid.uuid4()}")
    assert unstored.status_code == nothing.status_code == 404, unstored.text
    assert unstored.json()["detail"].replace(art, "<id>") == nothing.json()["detail"].split(" with id ")[0] + " with id <id>"
    stored = carol("GET", f"/lineage/{rid}")
    assert stored.status_code == 404  # a stored run by id: as if it did not exist, as on every id path
    for answer in (unstored, nothing, stored):
        assert "top-secret-dataset" not in answer.text and '"r"' not in answer.text
    graph = alice("GET", f"/lineage/{art}").json()
    assert {n["name"] for n in graph["nodes"]} == {"top-secret-dataset", "r"}


# -- 4. another user's folder paths: the same answer whether they exist or not ------------------

def test_a_stranger_gets_one_answer_for_existing_and_missing_folder_paths(server) -> None:
    alice_name, _, alice = _user(server)
    _, _, carol = _user(server)
    _folder_id(alice, "plans/secret-merger")
    answers = []
    for path in (f"/{alice_name}/plans/secret-merger", f"/{alice_name}/plans/nothing-here", f"/{alice_name}/plans",
                 f"/no-such-user-{uuid.uuid4().hex[:6]}/plans"):
        response = carol("GET", "/runs", params={"folder": path})
        answers.append((response.status_code, response.json()["detail"].replace(path, "<path>")))
    assert len(set(answers)) == 1 and answers[0][0] == 404, answers


# -- 5. no input is a 5xx ------------------------------------------------------------------------

def test_numbers_out_of_range_are_400_not_500(server) -> None:
    _, _, alice = _user(server)
    rid = _run(alice, folder="numbers", hparams={"lr": 0.001})
    fid = alice("GET", f"/runs/{rid}").json()["folder_id"]
    for text in ("hparams.lr < " + "9" * 310, "hparams.lr < 1e400", "hparams.lr < -" + "1" * 400):
        response = alice("GET", "/runs", params={"folder_id": fid, "filter": text})
        assert response.status_code == 400 and "position" in response.json()["detail"], (text, response.text)
    huge = alice("PUT", f"/runs/{uuid.uuid4()}", json={"run": {"name": "huge"}, "folder_id": fid, "hparams": {"lr": 10**400}})
    assert huge.status_code == 400, huge.text
    found = alice("GET", "/runs", params={"folder_id": fid, "filter": "hparams.lr < 0.01"})
    assert found.status_code == 200 and [r["id"] for r in found.json()["runs"]] == [rid]


def test_offsets_and_ids_past_64_bits_are_refused(server) -> None:
    _, _, alice = _user(server)
    rid = _run(alice, folder="offsets")
    line = b"2026-12-01T00:00:00.000000Z out x\n"
    metric = b'{"type": "train", "step": 0, "time": 1.0, "metrics": {"loss": 1.0}}\n'
    for path, data in ((f"/runs/{rid}/logs/0", line), (f"/runs/{rid}/metrics/0", metric)):
        for offset in (2**63 - 1, 2**63 - 2, 2**64):
            response = alice("POST", path, params={"offset": offset}, data=data)
            assert 400 <= response.status_code < 500, (path, offset, response.text)
    for after in ("1e20", str(10**20), str(2**63)):
        response = alice("GET", f"/runs/{rid}/logs", params={"after": after})
        assert 400 <= response.status_code < 500, (after, response.text)
    assert alice("POST", f"/runs/{rid}/logs/0", params={"offset": 0}, data=line).json()["offset"] == len(line)


def test_deeply_nested_json_is_400(server) -> None:
    _, _, alice = _user(server)
    rid = _run(alice, folder="deep")
    deep = '{"a":' * 5000 + "1" + "}" * 5000
    line = ('{"type": "train", "step": 0, "time": 1.0, "metrics": ' + deep + "}\n").encode()
    response = alice("POST", f"/runs/{rid}/metrics/0", params={"offset": 0}, data=line)
    assert response.status_code == 400, response.text
    body = ('{"run": {"name": "deep"}, "hparams": ' + deep + "}").encode()
    response = alice("PUT", f"/runs/{uuid.uuid4()}", data=body, headers={"Authorization": f"Bearer {alice.key}",
                                                                         "Content-Type": "application/json"})
    assert response.status_code == 400, response.text


def test_static_paths_with_nul_are_404(server) -> None:
    for path in ("/static/%00", "/static/a%00b.js", "/static/..%2f%00"):
        assert requests.get(server.url + path, timeout=30).status_code == 404, path


def test_values_past_a_columns_width_are_400_on_both_databases(server) -> None:
    _, _, alice = _user(server)
    rid = str(uuid.uuid4())
    for body in ({"run": {"name": "t", "start_timestamp": "2026-12-01T00:00:00" + "0" * 60}},
                 {"run": {"name": "t", "end_timestamp": "x" * 65}},
                 {"run": {"name": "t"}, "artifacts": [{"id": str(uuid.uuid4()), "name": "n" * 501, "role": "input"}]},
                 {"run": {"name": "t"}, "folder": "/".join(["f" * 100] * 12), "make_folder": True}):
        response = alice("PUT", f"/runs/{rid}", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
    assert alice("POST", "/folders", json={"path": "/".join(["f" * 100] * 12)}).status_code in (400, 422)
    assert alice("GET", "/runs", params={"folder": "/".join(["f" * 100] * 12)}).status_code in (400, 404)
    assert alice("GET", f"/runs/{rid}").status_code == 404


# -- 6. ranks: bounded by a job's size, linear work ------------------------------------------------

def test_a_run_with_fifty_thousand_ranks_is_quick_and_more_than_a_job_can_have_is_refused(server) -> None:
    _, _, alice = _user(server)
    rid = str(uuid.uuid4())
    body = {"run": {"name": "wide"}, "folder": "wide", "make_folder": True, "ranks": list(range(50_000))}
    started = time.monotonic()
    response = alice("PUT", f"/runs/{rid}", json=body)
    took = time.monotonic() - started
    assert response.status_code == 200 and len(response.json()["offsets"]) == 50_000
    assert took < 10, f"50,000 ranks took {took:.1f} s"  # 40 s (SQLite) and 62 s (PostgreSQL) before
    again = alice("PUT", f"/runs/{rid}", json={**body, "ranks": list(range(49_990, 50_010))})
    assert again.status_code == 200 and len(again.json()["offsets"]) == 50_010
    too_many = alice("PUT", f"/runs/{uuid.uuid4()}", json={**body, "ranks": list(range(MAX_WORLD_SIZE + 1))})
    assert too_many.status_code in (400, 413, 422)


# -- 7. filters: a position for every length ------------------------------------------------------

def test_long_filters_are_400_with_a_position(server) -> None:
    _, _, alice = _user(server)
    for length in (1_001, 3_999, 4_001, 1_000_000):
        text = ("name = " + '"' + "x" * length + '"')[:length]
        try:
            response = alice("GET", "/runs", params={"filter": text})
        except requests.ConnectionError as exc:
            pytest.fail(f"a {length}-character filter got no HTTP answer: {exc}")
        assert response.status_code == 400, (length, response.status_code)
        assert "position" in response.json()["detail"], (length, response.text[:200])


# -- 8. secrets in other forms ------------------------------------------------------------------------

SECRET_DOCS = {
    "hparams": {"db_url": "postgresql://user:s3cretpw@db.example/train", "auth": {"user": "u", "s3cretpw": 1},
                "hf_token": ["s3cretpw"], "nested": {"api_key": {"v": "s3cretpw"}}, "key_dim": 64},
    "platform": {"ranks": {"0": {"command": ["train.py", "--passwd", "-s3cretpw", "--db",
                                             "mysql://root:s3cretpw@h/db", "--lr", "0.1"]}}},
    "git": {"remote": "https://bob:s3cretpw@github.com/org/repo.git"},
}


def test_secrets_in_every_form_are_redacted_before_they_are_stored(server) -> None:
    _, _, alice = _user(server)
    bob_name, _, bob = _user(server)
    fid = _folder_id(alice, "secrets")
    _share(alice, fid, bob_name)
    rid = _run(alice, folder="secrets", hparams=SECRET_DOCS["hparams"], platform=SECRET_DOCS["platform"],
               git=SECRET_DOCS["git"], hparams_ranks={"1": {"password": {"x": "s3cretpw"}}})
    for api in (alice, bob):
        text = api("GET", f"/runs/{rid}").text
        assert "s3cretpw" not in text, text
    detail = alice("GET", f"/runs/{rid}").json()
    assert detail["hparams"]["db_url"] == f"postgresql://user:{REDACTED}@db.example/train"
    assert detail["hparams"]["auth"] == REDACTED and detail["hparams"]["hf_token"] == REDACTED
    assert detail["hparams"]["key_dim"] == 64
    assert detail["platform"]["ranks"]["0"]["command"] == ["train.py", "--passwd", REDACTED, "--db",
                                                           f"mysql://root:{REDACTED}@h/db", "--lr", "0.1"]
    listing = bob("GET", "/runs", params={"folder_id": fid}).text
    assert "s3cretpw" not in listing
    art = str(uuid.uuid4())
    stored = alice("PUT", f"/artifacts/{art}", json={"folder_id": fid, "artifact": {
        "name": "data", "description": "from https://me:s3cretpw@host/x", "references": [{"token": {"t": "s3cretpw"}}]}})
    assert stored.status_code == 200 and "s3cretpw" not in bob("GET", f"/artifacts/{art}").text


# -- 12. hparams with quotes or non-ASCII in their names are found -----------------------------------

def test_hparams_with_odd_names_are_found(server) -> None:
    _, _, alice = _user(server)
    names = ["ünï", 'q"uote', "it's", "dot.ted", "back\\slash", "sp ace"]
    rid = _run(alice, folder="odd", hparams={n: 0.5 for n in names} | {"outer": {"ünï": "x"}})
    fid = alice("GET", f"/runs/{rid}").json()["folder_id"]
    for name in names:
        text = "hparams.`" + name + "` = 0.5"
        response = alice("GET", "/runs", params={"folder_id": fid, "filter": text})
        assert response.status_code == 200 and [r["id"] for r in response.json()["runs"]] == [rid], (name, response.text)
    response = alice("GET", "/runs", params={"folder_id": fid, "filter": 'hparams.outer.`ünï` = "x"'})
    assert [r["id"] for r in response.json()["runs"]] == [rid], response.text


# -- 13. the server applies the SDK's name rules -------------------------------------------------------

def test_names_the_sdk_refuses_are_refused_by_the_server(server) -> None:
    _, _, alice = _user(server)
    for name in ("../../etc/passwd", "a/b", ".", "..", "a\\b", "   "):
        response = alice("PUT", f"/runs/{uuid.uuid4()}", json={"run": {"name": name}})
        assert response.status_code == 422, (name, response.text)
        response = alice("PUT", f"/artifacts/{uuid.uuid4()}", json={"artifact": {"name": name}})
        assert response.status_code == 422, (name, response.text)
    assert alice("GET", "/runs").json()["runs"] == []


def test_add_file_with_a_dot_object_path_is_a_value_error(tmp_path, monkeypatch) -> None:
    import em_dist as em

    monkeypatch.setenv("EM_ARTIFACT_PARENT_DIR", str(tmp_path / "artifacts"))
    src = tmp_path / "f.bin"
    src.write_bytes(b"x")
    artifact = em.create_artifact(name="dots")
    for bad in (".", "./", "a/..", "", "/abs"):
        with pytest.raises(ValueError):
            artifact.add_file(src, bad)
    artifact.add_file(src, "./sub/f.bin")
    assert [f["path"] for f in artifact.files] == ["sub/f.bin"]


# -- 9. every 4xx of validation matches the schema ------------------------------------------------------

def test_validation_errors_match_the_documented_schema(server) -> None:
    import jsonschema_rs  # schemathesis's validator

    _, _, alice = _user(server)
    schema = requests.get(f"{server.url}/api/v1/openapi.json", timeout=30).json()
    calls = [("PUT", "/runs/{run_id}", {"json": {"run": {"name": 5}}}),
             ("PUT", "/runs/{run_id}", {"json": {"run": {"name": "a/b"}}}),
             ("GET", "/runs", {"params": {"limit": "many"}}),
             ("GET", "/runs/{run_id}/logs", {"params": {"after": "1e20"}}),
             ("POST", "/folders", {"json": {}})]
    for method, template, kwargs in calls:
        response = alice(method, template.replace("{run_id}", str(uuid.uuid4())), **kwargs)
        assert response.status_code == 422, (template, response.text)
        documented = schema["paths"]["/api/v1" + template][method.lower()]["responses"]["422"]
        body_schema = {**documented["content"]["application/json"]["schema"], "components": schema["components"]}
        jsonschema_rs.validate(body_schema, response.json())
        assert isinstance(response.json()["detail"], str)


# -- 10. no API docs page loading scripts from elsewhere on the console's origin --------------------

def test_docs_pages_are_off_and_the_schema_stays(server) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        response = requests.get(server.url + path, timeout=30)
        assert response.status_code == 404, path
        assert "cdn" not in response.text.lower()
    assert requests.get(f"{server.url}/api/v1/openapi.json", timeout=30).status_code == 200
