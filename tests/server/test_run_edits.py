"""Issue 24 item 8: run metadata edits (rename, labels, description, archive/restore, delete)
over real HTTP, on SQLite and PostgreSQL: who may edit (owner, edit share) and who may not
(view share: 403; a stranger: 404, as for a run that does not exist), and the console
session's write path (same origin + the session's CSRF token; nothing else writes)."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.server.test_security import Api, _user
from tests.server.test_security_round3 import _folder_id


def _run(api: Api, *, folder: str, name: str = "r", labels: list[str] | None = None) -> str:
    rid = str(uuid.uuid4())
    body = {"run": {"name": name, "labels": labels or []}, "folder": folder, "make_folder": True}
    response = api("PUT", f"/runs/{rid}", json=body)
    assert response.status_code == 200, response.text
    return rid


def _share(api: Api, folder_id: str, user: str, permission: str) -> None:
    assert api("POST", f"/folders/{folder_id}/shares", json={"user": user, "permission": permission}).status_code == 201


class Console:
    """A signed-in console session: the cookie, its CSRF token, and the server's origin."""

    def __init__(self, server, key: str) -> None:  # type: ignore[no-untyped-def]
        self.url = f"{server.url}/api/v1"
        self.origin = server.url
        self.http = requests.Session()
        response = self.http.post(f"{self.url}/session", headers={"Authorization": f"Bearer {key}"}, timeout=60)
        assert response.status_code == 200, response.text
        self.csrf = response.json()["csrf"]
        assert self.http.get(f"{self.url}/session", timeout=60).json()["csrf"] == self.csrf

    def __call__(self, method: str, path: str, *, csrf: str | None = "", origin: str | None = "",
                 site: str | None = "same-origin", **kwargs) -> requests.Response:  # type: ignore[no-untyped-def]
        headers = {}
        if csrf is not None:
            headers["X-CSRF-Token"] = csrf or self.csrf
        if origin is not None:
            headers["Origin"] = origin or self.origin
        if site is not None:
            headers["Sec-Fetch-Site"] = site
        return self.http.request(method, self.url + path, headers=headers, timeout=60, **kwargs)


@pytest.fixture
def team(server):  # type: ignore[no-untyped-def]
    """alice owns folder "proj"; bob has an edit share, carol a view share, dave nothing."""
    _, alice_key, alice = _user(server)
    bob, bob_key, _ = _user(server)
    carol, carol_key, _ = _user(server)
    _, dave_key, _ = _user(server)
    fid = _folder_id(alice, "proj")
    _share(alice, fid, bob, "edit")
    _share(alice, fid, carol, "view")
    return {"alice": alice, "alice_key": alice_key, "bob_key": bob_key, "carol_key": carol_key,
            "dave_key": dave_key, "folder_id": fid}


def test_the_owner_edits_labels_description_and_name_with_a_key(server, team) -> None:  # type: ignore[no-untyped-def]
    alice = team["alice"]
    rid = _run(alice, folder="proj", name="first", labels=["old"])
    response = alice("PATCH", f"/runs/{rid}", json={"labels": ["baseline", " lr-sweep ", "baseline"],
                                                    "description": "the good one", "name": "renamed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == ["baseline", "lr-sweep"] and body["description"] == "the good one"
    assert body["name"] == "renamed" and body["local_name"] == "renamed" and body["permission"] == "owner"
    got = alice("GET", f"/runs/{rid}").json()
    assert (got["labels"], got["description"], got["name"]) == (["baseline", "lr-sweep"], "the good one", "renamed")
    # a name another run in the folder holds is a 409; a name that is no run name is a 422
    other = _run(alice, folder="proj", name="taken")
    assert alice("PATCH", f"/runs/{rid}", json={"name": "taken"}).status_code == 409
    assert alice("PATCH", f"/runs/{rid}", json={"name": "a/b"}).status_code == 422
    assert alice("PATCH", f"/runs/{rid}", json={"owner_id": "x"}).status_code == 422  # only the four fields
    assert alice("GET", f"/runs/{other}").json()["name"] == "taken"


def test_an_edit_share_edits_through_the_console_session(server, team) -> None:  # type: ignore[no-untyped-def]
    rid = _run(team["alice"], folder="proj", name="shared")
    bob = Console(server, team["bob_key"])
    response = bob("PATCH", f"/runs/{rid}", json={"labels": ["seen-by-bob"], "description": "bob's note", "name": "bobs"})
    assert response.status_code == 200, response.text
    assert response.json()["permission"] == "edit"
    got = team["alice"]("GET", f"/runs/{rid}").json()
    assert (got["labels"], got["description"], got["name"]) == (["seen-by-bob"], "bob's note", "bobs")


def test_a_view_share_gets_403_and_a_stranger_404_like_a_missing_run(server, team) -> None:  # type: ignore[no-untyped-def]
    rid = _run(team["alice"], folder="proj", name="guarded", labels=["keep"])
    carol_key, dave_key = team["carol_key"], team["dave_key"]
    for method, kwargs in (("PATCH", {"json": {"labels": ["x"]}}), ("DELETE", {})):
        assert Api(server, carol_key)(method, f"/runs/{rid}", **kwargs).status_code == 403
        assert Console(server, carol_key)(method, f"/runs/{rid}", **kwargs).status_code == 403
        stranger = Api(server, dave_key)(method, f"/runs/{rid}", **kwargs)
        missing = Api(server, dave_key)(method, f"/runs/{uuid.uuid4()}", **kwargs)
        assert stranger.status_code == missing.status_code == 404
        assert stranger.json()["detail"].replace(rid, "ID") == missing.json()["detail"].split(" id ")[0] + " id ID"
        assert Console(server, dave_key)(method, f"/runs/{rid}", **kwargs).status_code == 404
    assert team["alice"]("GET", f"/runs/{rid}").json()["labels"] == ["keep"]


@pytest.mark.parametrize("case", ["no-token", "wrong-token", "cross-origin", "cross-site", "null-origin",
                                  "no-origin-headers", "token-of-another-session"])
def test_a_console_write_needs_its_csrf_token_and_the_same_origin(server, team, case) -> None:  # type: ignore[no-untyped-def]
    rid = _run(team["alice"], folder="proj", name=f"csrf-{case}", labels=["keep"])
    console = Console(server, team["alice_key"])
    args = {
        "no-token": {"csrf": None},
        "wrong-token": {"csrf": "0" * 64},
        "cross-origin": {"origin": "http://evil.example", "site": None},
        "cross-site": {"site": "cross-site"},
        "null-origin": {"origin": "null", "site": None},
        "no-origin-headers": {"origin": None, "site": None},
        "token-of-another-session": {"csrf": Console(server, team["alice_key"]).csrf},
    }[case]
    for method, kwargs in (("PATCH", {"json": {"labels": ["forged"]}}), ("DELETE", {})):
        response = console(method, f"/runs/{rid}", **args, **kwargs)
        assert response.status_code == 403, (case, method, response.text)
    assert team["alice"]("GET", f"/runs/{rid}").json()["labels"] == ["keep"]
    assert console("PATCH", f"/runs/{rid}", json={"labels": ["fine"]}).status_code == 200  # the same, done right


def test_a_console_session_writes_nothing_but_run_edits(server, team) -> None:  # type: ignore[no-untyped-def]
    console = Console(server, team["alice_key"])
    rid = str(uuid.uuid4())
    assert console("PUT", f"/runs/{rid}", json={"run": {"name": "x"}, "folder": "proj"}).status_code == 403
    assert console("PUT", f"/blobs/{'0' * 64}", data=b"x").status_code == 403
    assert console("POST", "/folders", json={"path": "made-by-cookie"}).status_code == 403
    assert console("POST", f"/folders/{team['folder_id']}/shares", json={"user": "x", "permission": "edit"}).status_code == 403
    # API-key requests need neither the token nor an Origin
    assert Api(server, team["alice_key"])("PATCH", f"/runs/{_run(team['alice'], folder='proj', name='k')}",
                                          json={"description": "by key"}).status_code == 200


def test_archived_runs_leave_the_listings_until_asked_for_and_come_back(server, team) -> None:  # type: ignore[no-untyped-def]
    alice, fid = team["alice"], team["folder_id"]
    kept = _run(alice, folder="proj", name="kept")
    gone = _run(alice, folder="proj", name="archived-one")
    console = Console(server, team["bob_key"])
    assert console("PATCH", f"/runs/{gone}", json={"archived": True}).json()["archived"] is True

    def listed(**params: str) -> set[str]:
        search = alice("GET", "/runs", params={"folder_id": fid, **params})
        folder = alice("GET", f"/folders/{fid}/runs", params=params)
        assert search.status_code == folder.status_code == 200, (search.text, folder.text)
        ids = {r["id"] for r in search.json()["runs"]}
        assert ids == {r["id"] for r in folder.json()}
        return ids

    assert kept in listed() and gone not in listed()
    assert {kept, gone} <= listed(archived="include")
    assert gone in listed(archived="only") and kept not in listed(archived="only")
    assert alice("GET", "/runs", params={"folder_id": fid, "archived": "bogus"}).status_code == 422
    assert alice("GET", f"/runs/{gone}").json()["archived"] is True  # the run itself stays readable
    assert console("PATCH", f"/runs/{gone}", json={"archived": False}).json()["archived"] is False
    assert gone in listed()


def test_delete_removes_the_run_for_everyone(server, team) -> None:  # type: ignore[no-untyped-def]
    alice = team["alice"]
    rid = _run(alice, folder="proj", name="doomed")
    response = alice("POST", f"/runs/{rid}/metrics/0", params={"offset": 0}, data=b'{"type": "train", "step": 1, "time": 1.0, "metrics": {"loss": 0.5}}\n')
    assert response.status_code == 200, response.text
    console = Console(server, team["bob_key"])
    response = console("DELETE", f"/runs/{rid}")
    assert response.status_code == 204, response.text
    assert alice("GET", f"/runs/{rid}").status_code == 404
    assert alice("GET", f"/runs/{rid}/metrics/names").status_code == 404
    assert console("DELETE", f"/runs/{rid}").status_code == 404
    assert rid not in {r["id"] for r in alice("GET", "/runs", params={"folder_id": team["folder_id"],
                                                                     "archived": "include"}).json()["runs"]}


def test_a_later_upload_of_the_run_keeps_what_was_edited(server, team) -> None:  # type: ignore[no-untyped-def]
    """A live run re-sends its metadata every sync: an edit made meanwhile must survive it."""
    alice = team["alice"]
    rid = _run(alice, folder="proj", name="live", labels=["from-script"])
    assert alice("PATCH", f"/runs/{rid}", json={"labels": ["edited"], "name": "live-renamed"}).status_code == 200
    body = {"run": {"name": "live", "labels": ["from-script"], "description": "from the script", "status": "Running"},
            "folder": "proj"}
    assert alice("PUT", f"/runs/{rid}", json=body).status_code == 200
    got = alice("GET", f"/runs/{rid}").json()
    assert (got["name"], got["local_name"], got["labels"]) == ("live-renamed", "live-renamed", ["edited"])
    assert got["description"] == "from the script" and got["status"] == "Running"  # never edited: the upload's
