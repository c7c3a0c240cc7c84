"""Issue 23: isolation between users, searched for rather than listed.

* schemathesis's stateful mode follows the schema's links (an upload's ``id`` to reading the
  run, its lineage, its output; a new folder's ``id`` to listing and sharing it) as one user,
  and after each step a second user, given nothing, asks for what the first just made;
* Hypothesis builds random trees of folders (names that differ only by case or by LIKE
  wildcards) and random shares, and checks that a user lists, reads and learns of exactly the
  runs under what they were given.

Bounded and deterministic (derandomized, no example database), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid

import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

STATEFUL_SCENARIOS = 40
STATEFUL_STEPS = 6
TREES = 15
STRANGER_ANSWERS = (401, 403, 404)


def _session(key: str) -> requests.Session:
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    return http


def test_stateful_links_never_let_a_second_user_read_what_the_first_made(server) -> None:
    _, alice_key = server.add_user()
    _, bob_key = server.add_user()
    bob = _session(bob_key)
    api = f"{server.url}/api/v1"
    schema = schemathesis.openapi.from_url(f"{api}/openapi.json")
    schema.config.update(base_url=server.url, headers={"Authorization": f"Bearer {alice_key}"})
    made: list[str] = []

    class TwoUsers(schema.as_state_machine()):  # type: ignore[misc]
        def after_call(self, response, case) -> None:  # type: ignore[no-untyped-def]
            super().after_call(response, case)
            if case.method.upper() not in ("PUT", "POST") or response.status_code not in (200, 201):
                return
            try:
                body = response.json()
            except ValueError:
                return
            if not isinstance(body, dict) or not isinstance(body.get("id"), str):
                return
            made.append(body["id"])
            secret_names = {str(body[k]) for k in ("name", "path") if isinstance(body.get(k), str) and len(body[k]) > 3}
            for path in (f"/runs/{body['id']}", f"/artifacts/{body['id']}", f"/folders/{body['id']}",
                         f"/lineage/{body['id']}", f"/runs/{body['id']}/logs", f"/runs/{body['id']}/artifacts",
                         f"/folders/{body['id']}/runs"):
                answer = bob.get(api + path, timeout=30)
                assert answer.status_code in STRANGER_ANSWERS, (path, answer.status_code, answer.text[:300])
                assert not any(name in answer.text for name in secret_names), (path, answer.text[:300])
            listed = bob.get(f"{api}/folders", timeout=30).json()
            assert listed == [], listed

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:  # type: ignore[no-untyped-def]
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])

    TwoUsers.run(settings=settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, derandomize=True,
                                   database=None, deadline=None, suppress_health_check=list(HealthCheck),
                                   phases=[Phase.explicit, Phase.generate]))
    assert made, "the state machine never created anything: the links are not followed"


# -- random trees and shares --------------------------------------------------------------------

SEGMENTS = ["p", "P", "p_", "px", "p%", "q"]
"""Folder names that a case-insensitive or wildcard match would confuse."""


@st.composite
def trees(draw: st.DrawFn) -> tuple[list[str], dict[str, str]]:
    """Folder paths (1-3 levels) and a share of some of them with bob: ``{path: view|edit}``."""
    paths = draw(st.lists(st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map("/".join),
                          min_size=1, max_size=8, unique=True))
    shared = draw(st.dictionaries(st.sampled_from(paths), st.sampled_from(["view", "edit"]), max_size=3))
    return paths, shared


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def test_random_trees_and_shares_never_let_a_user_see_outside_what_they_were_given(server) -> None:
    @given(tree=trees())
    @settings(max_examples=TREES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    def check(tree: tuple[list[str], dict[str, str]]) -> None:
        paths, shared = tree
        alice_name, alice_key = server.add_user()
        bob_name, bob_key = server.add_user()
        _, carol_key = server.add_user()
        api = f"{server.url}/api/v1"
        alice, bob, carol = _session(alice_key), _session(bob_key), _session(carol_key)
        folder_of: dict[str, str] = {}
        run_of: dict[str, str] = {}
        for path in paths:  # every level gets a folder; each named path one run with a marker
            rid = str(uuid.uuid4())
            marker = f"m{uuid.uuid4().hex[:10]}"
            answer = alice.put(f"{api}/runs/{rid}", json={"run": {"name": marker}, "folder": path, "make_folder": True,
                                                         "hparams": {"marker": marker}}, timeout=30)
            assert answer.status_code == 200, answer.text
            folder_of[path] = answer.json()["folder_id"]
            run_of[path] = rid
        for folder in alice.get(f"{api}/folders", timeout=30).json():
            folder_of.setdefault(folder["path"], folder["id"])
        for path, permission in shared.items():
            assert alice.post(f"{api}/folders/{folder_of[path]}/shares", json={"user": bob_name, "permission": permission},
                              timeout=30).status_code == 201
        markers = {path: alice.get(f"{api}/runs/{rid}", timeout=30).json()["name"] for path, rid in run_of.items()}

        def visible(path: str) -> bool:
            return any(_under(path, top) for top in shared)

        listed = {f["path"] for f in bob.get(f"{api}/folders", timeout=30).json()}
        assert listed == {p for p in folder_of if visible(p)}
        assert carol.get(f"{api}/folders", timeout=30).json() == []
        for path, fid in folder_of.items():
            expect = {run_of[p] for p in run_of if _under(p, path)} if visible(path) else None
            for who, user_sees in ((bob, expect), (carol, None)):
                answer = who.get(f"{api}/runs", params={"folder_id": fid, "recursive": "true", "limit": 1000}, timeout=30)
                by_path = who.get(f"{api}/runs", params={"folder": f"/{alice_name}/{path}", "recursive": "true",
                                                         "limit": 1000}, timeout=30)
                if user_sees is None:
                    assert answer.status_code in STRANGER_ANSWERS and by_path.status_code == 404, path
                    assert not any(m in answer.text + by_path.text for m in markers.values()), path
                else:
                    assert {r["id"] for r in answer.json()["runs"]} == user_sees, path
                    assert {r["id"] for r in by_path.json()["runs"]} == user_sees, path
        for path, rid in run_of.items():
            for who, allowed in ((bob, visible(path)), (carol, False)):
                for endpoint in (f"/runs/{rid}", f"/lineage/{rid}", f"/runs/{rid}/logs"):
                    answer = who.get(api + endpoint, timeout=30)
                    if allowed:
                        assert answer.status_code == 200, (endpoint, answer.text)
                    else:
                        assert answer.status_code in STRANGER_ANSWERS and markers[path] not in answer.text, endpoint

    check()
