"""``create_run(auto_upload=True)``: the run reaches the server while it trains."""

from __future__ import annotations

import pytest
import requests

import em_dist as em
from tests.poll import wait_for
from tests.server.runs import assert_same_run


def _points_on_server(url: str, key: str, run_id: str) -> int:
    r = requests.get(f"{url}/api/v1/runs/{run_id}/metrics/names", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return sum(s["count"] for s in r.json()) if r.status_code == 200 else 0


def test_auto_upload_syncs_while_training(server, monkeypatch: pytest.MonkeyPatch) -> None:
    _, key = server.add_user()
    monkeypatch.setenv("EM_AUTO_UPLOAD_INTERVAL", "0.2")
    em.login(host=server.url, api_key=key)
    try:
        run = em.create_run(name="live", auto_upload=True, folder="live", make_folder=True)
        run.hparams["lr"] = 0.5
        for step in range(10):
            run.log(type="train", metrics={"loss": 1.0 / (step + 1)}, step=step)
        client = em.Client()
        # A pass reads run.json before the metric files (so a finished status never comes with half the
        # points): one that lands between the writer's metrics and its run.json brings the points with
        # the status before it, and the next pass the status. Wait for both, not for the points alone.
        wait_for(lambda: _points_on_server(server.url, key, run.id) >= 10 and client.run(run.id).status == "Running",
                 timeout=30, what="background sync of the points and the status")
        for step in range(10, 25):
            run.log(type="train", metrics={"loss": 1.0 / (step + 1)}, step=step)
        run.finish()  # the last pass runs inside finish()
        assert client.run(run.id).status == "Succeeded"
        assert_same_run(client, run.path)
    finally:
        em.logout()


def test_auto_upload_without_login_warns_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_AUTO_UPLOAD_INTERVAL", "0.05")
    from em_dist.client.sync import AutoUploader
    from em_dist.client.target import UploadTarget

    with pytest.warns(em.EMWarning, match="auto_upload stopped"):
        run = em.create_run(name="offline")
        uploader = AutoUploader(run.path, UploadTarget("default"), conflict_strategy="new")
        uploader.start()
        run.log(type="train", metrics={"loss": 1.0}, step=0)
        run.finish()
        uploader.stop(timeout=10)
    assert uploader.passes == 0


def test_upload_to_a_dead_server_warns_keeps_the_run_and_never_raises(fresh_server) -> None:
    """The server dies before the script's final ``run.upload()``: a warning with the retry command, no exception."""
    srv = fresh_server
    _, key = srv.add_user()
    em.login(host=srv.url, api_key=key)
    try:
        run = em.create_run(name="server_gone")
        for step in range(5):
            run.log(type="train", metrics={"loss": float(step)}, step=step)
        run.finish()
        srv.stop()
        with pytest.warns(em.EMWarning, match="em run upload -p"):
            assert run.upload(folder="x", make_folder=True) is None
        assert len(em.load_run(run.path).metrics()) == 5
    finally:
        em.logout()
