"""The run filter language over HTTP (SQLite and PostgreSQL): matches, pages, subfolders, grammar errors."""

from __future__ import annotations

import time

import pytest

import em_dist as em
from tests.poll import wait_for
from tests.server.harness import ServerProcess
from tests.server.seed import Api, put_run

LOST_AFTER_S = 2
RUNS = [
    # name, folder, status, labels, hparams, val/loss points
    ("base-a", "sweep", "Succeeded", ["baseline"], {"lr": 0.001, "optimizer": "Adam", "amp": True}, [0.5, 0.15]),
    ("base-b", "sweep", "Succeeded", ["baseline", "big"], {"lr": 0.1, "optimizer": "SGD", "amp": False}, [0.9, 0.4]),
    ("tuned", "sweep", "Failed", ["tuned"], {"lr": 0.005, "optimizer": "Adam", "model": {"depth": 12}}, [0.3, 0.1]),
    ("odd", "sweep", "Succeeded", [], {"lr": "0.001", "note": "lr as a string"}, []),
    ("deep", "sweep/sub", "Succeeded", ["baseline"], {"lr": 0.002, "optimizer": "Adam"}, [0.2, 0.05]),
]


def seed(api: Api, name: str, folder: str, status: str, labels: list, hparams: dict, losses: list) -> str:
    return put_run(api, name, folder, status, labels, hparams, {"val/loss": losses} if losses else None)


@pytest.fixture(scope="module")
def sweep(server):
    """A fresh user with the RUNS above on the module's server: (call, client, {name: id})."""
    _, key = server.add_user()
    call = Api(server.url, key)
    ids = {spec[0]: seed(call, *spec) for spec in RUNS}
    yield call, em.Client(host=server.url, api_key=key), ids
    call.close()


def names(call, filter: str, folder: str = "sweep") -> set[str]:  # type: ignore[no-untyped-def]
    response = call("GET", "/runs", params={"folder": folder, "filter": filter})
    assert response.status_code == 200, response.text
    return {r["name"] for r in response.json()["runs"]}


@pytest.mark.parametrize("filter, expected", [
    ('hparams.lr < 0.01 and metrics.val/loss < 0.2 and labels contains "baseline" and status = "Succeeded"', {"base-a"}),
    ("hparams.lr < 0.01", {"base-a", "tuned"}),  # "odd" holds lr as a string: no numeric match
    ('hparams.lr = "0.001"', {"odd"}),
    ('hparams.optimizer = "Adam" or hparams.optimizer = "SGD"', {"base-a", "base-b", "tuned"}),
    ('not hparams.optimizer = "Adam"', {"base-b", "odd"}),
    ("hparams.optimizer = null", {"odd"}),
    ("hparams.amp = true", {"base-a"}),
    ("hparams.amp != true", {"base-b"}),
    ("hparams.model.depth >= 12", {"tuned"}),
    ('hparams.`note` contains "STRING"', {"odd"}),
    ("metrics.val/loss <= 0.1", {"tuned"}),
    ("metrics.val/loss = null", {"odd"}),
    ("not metrics.val/loss > 0.2", {"base-a", "tuned", "odd"}),
    ('labels contains "big"', {"base-b"}),
    ('status = "failed"', {"tuned"}),
    ('name contains "BASE"', {"base-a", "base-b"}),
    ('name = "tuned" or (status != "Failed" and labels contains "big")', {"tuned", "base-b"}),
    ('started >= "2026-11-30" and ended < "2026-11-30T11:30"', {"base-a", "base-b", "tuned", "odd"}),
    ("created > now - 1h and updated <= now", {"base-a", "base-b", "tuned", "odd"}),
    ("created < now-1d", set()),
    ("", {"base-a", "base-b", "tuned", "odd"}),
])
def test_filters_match(sweep, filter: str, expected: set[str]) -> None:
    call, _, _ = sweep
    assert names(call, filter) == expected


@pytest.mark.parametrize("filter, position, words", [
    ("hparams.lr <", 12, "expected a value"),
    ("hparams.lr 0.1", 11, "expected an operator"),
    ("(status = \"Failed\"", 18, "expected ')'"),
    ("status = \"Failed\" xor name = \"a\"", 18, "expected 'and', 'or'"),
    ("loss < 1", 0, "unknown field"),
    ("metrics.loss < 1", 0, "metrics.<type>/<name>"),
    ("metrics.val/loss < \"low\"", 19, "compare it with a number"),
    ("labels = \"x\"", 7, "labels takes 'contains'"),
    ("name = \"unterminated", 7, "unterminated string"),
    ("hparams.lr < 0.1 & x", 17, "unexpected character"),
    ("started > now - 2", 16, "expected a duration"),
    ("started > \"yesterday\"", 10, "not an ISO date"),
    ("hparams.lr < now", 13, "'now' compares only"),
    ("and", 0, "expected a field"),
    ('name = "a\\q"', 9, "unknown escape"),
    ("(" * 70 + 'name = "a"' + ")" * 70, 65, "nests deeper than 64"),
])
def test_grammar_errors_are_400_with_the_position(sweep, filter: str, position: int, words: str) -> None:
    call, _, _ = sweep
    response = call("GET", "/runs", params={"folder": "sweep", "filter": filter})
    assert response.status_code == 400, response.text
    detail = response.json()["detail"]
    assert f"position {position}:" in detail and words in detail, detail


def test_pages_with_a_cursor_and_subfolders(sweep) -> None:
    call, client, ids = sweep
    seen, cursor, pages = [], None, 0
    while True:
        body = call("GET", "/runs", params={"folder": "sweep", "recursive": "true", "limit": 2,
                                            **({"cursor": cursor} if cursor else {})}).json()
        assert body["total"] == 5
        seen += [r["name"] for r in body["runs"]]
        pages += 1
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert pages == 3 and sorted(seen) == sorted(ids)  # each run once, in upload order
    assert seen == [spec[0] for spec in RUNS]
    deep = call("GET", "/runs", params={"folder": "sweep", "recursive": "true", "filter": 'name = "deep"'}).json()
    assert deep["runs"][0]["folder"] == "sweep/sub"
    assert call("GET", "/runs", params={"folder": "sweep", "cursor": "nonsense"}).status_code == 400
    # the SDK walks the pages and takes the same language
    found = client.runs("sweep", filter='labels contains "baseline"', recursive=True, page_size=1)
    assert [r["name"] for r in found] == ["base-a", "base-b", "deep"]
    assert [r["name"] for r in client.runs("sweep", limit=3, page_size=2)] == ["base-a", "base-b", "tuned"]


def test_stats_give_latest_min_and_max(sweep) -> None:
    call, _, _ = sweep
    body = call("GET", "/runs", params={"folder": "sweep", "filter": 'name = "base-b"', "stats": "val/loss,train/nope"}).json()
    (run,) = body["runs"]
    assert run["stats"] == {"val/loss": {"last": 0.4, "min": 0.4, "max": 0.9}}
    assert run["latest"] == {"val/loss": 0.4}
    assert run["duration_s"] == 3600.0 and run["lost"] is False


def test_a_silent_live_run_is_lost_with_its_last_sign_of_life(tmp_path, monkeypatch) -> None:
    """A Running run that stops uploading shows as Failed/lost once the server's limit passes."""
    monkeypatch.setenv("EM_LOST_AFTER_S", str(LOST_AFTER_S))
    srv = ServerProcess(tmp_path / "srv", None).start()
    monkeypatch.delenv("EM_LOST_AFTER_S")
    try:
        _, key = srv.add_user()
        call = Api(srv.url, key)
        sent = time.monotonic()
        run_id = seed(call, "silent", "live", "Running", [], {}, [1.0])
        first = call("GET", f"/runs/{run_id}").json()
        if time.monotonic() - sent < LOST_AFTER_S:  # its last sign of life is younger than the limit
            assert first["status"] == "Running" and not first["lost"]
        lost = wait_for(lambda: (d := call("GET", f"/runs/{run_id}").json())["lost"] and d, timeout=20, what="lost")
        assert lost["status"] == "Failed" and lost["reported_status"] == "Running"
        assert lost["end_timestamp"] == lost["last_seen"] and "lost" in lost["status_reason"]
        assert names(call, 'status = "Failed"', "live") == {"silent"}
        assert names(call, 'status = "Running"', "live") == set()
        # a sign of life brings it back
        call("POST", f"/runs/{run_id}/metrics/0", params={"offset": 10_000})  # a gap (409) is no sign of life
        assert call("GET", f"/runs/{run_id}").json()["lost"]
        call.close()
    finally:
        srv.stop()
