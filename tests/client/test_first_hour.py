"""A new user's first uploads: they land in the folder the script asked for, say where the run is, and
fail the same clear way for a missing folder; live sync can be turned on without editing the script."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
import requests

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.server.harness import ServerProcess, em_cli, free_port


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """One SQLite server for this module; each test uses a fresh user."""
    srv = ServerProcess(tmp_path_factory.mktemp("server"), None).start()
    try:
        yield srv
    finally:
        srv.stop()


def _client(srv: ServerProcess, key: str) -> em.Client:
    return em.Client(host=srv.url, api_key=key)


def _runs_in(srv: ServerProcess, key: str, folder: str) -> list[str]:
    return [r["id"] for r in _client(srv, key).runs(folder)]


def test_aimd_trial_upload_of_a_saved_trial_lands_in_its_folder_path(live) -> None:
    _, key = live.add_user()
    trial = em.create_trial(trial_name="cnn_keras", folder_path="image_classification/mnist", make_folder=True)
    trial.log(metrics_type="train", metrics={"loss": 0.5}, step=1)
    trial.finish()
    out = subprocess.run([PYTHON, "-m", "em_dist.cli.aimd", "trial", "upload", "-p", str(trial.path), "--no-progress"],
                         capture_output=True, text=True, timeout=60,
                         env=python_env(EM_HOST=live.url, EM_API_KEY=key))
    assert out.returncode == 0, out.stderr
    assert _runs_in(live, key, "image_classification/mnist") == [trial.run.id]
    assert f"{live.url}/#/run/{trial.run.id}" in out.stdout  # the console address of the uploaded run
    other = em.create_trial(trial_name="cnn_keras", folder_path="image_classification/mnist", make_folder=True)
    other.finish()
    em_cli("run", "upload", "-p", str(other.path), "--folder", "elsewhere", "--make-folder", "--no-progress",
           env=python_env(EM_HOST=live.url, EM_API_KEY=key))  # told otherwise, it goes elsewhere
    assert _runs_in(live, key, "elsewhere") == [other.run.id]


def test_em_upload_of_a_run_folder_uses_the_folder_of_create_run(live) -> None:
    _, key = live.add_user()
    run = em.create_run(name="asked", folder="team/asked", make_folder=True)
    run.log(type="train", metrics={"loss": 1.0}, step=0)
    run.finish()
    result = em.upload(run.path, host=live.url, api_key=key)
    assert result.folder == "team/asked" and _runs_in(live, key, "team/asked") == [run.id]


def test_retry_command_of_a_failed_upload_sends_the_run_to_the_folder_it_asked_for(live) -> None:
    _, key = live.add_user()
    run = em.create_run(name="retry")
    run.log(type="train", metrics={"loss": 1.0}, step=0)
    run.finish()
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.warns(em.EMWarning, match="Retry with: ") as caught:
        assert run.upload(folder="em-examples", make_folder=True, host=down, api_key=key) is None
    [message] = [str(w.message) for w in caught if "Retry with: " in str(w.message)]
    command = re.search(r"Retry with: (.*)$", message).group(1)
    argv = shlex.split(command)
    assert argv[:3] == ["em", "run", "upload"]
    em_cli(*argv[1:], "--no-progress", env=python_env(EM_HOST=live.url, EM_API_KEY=key))
    assert _runs_in(live, key, "em-examples") == [run.id]


def test_upload_to_a_missing_folder_raises_not_found_from_run_upload_and_em_upload(live) -> None:
    _, key = live.add_user()
    em.login(host=live.url, api_key=key)
    try:
        run = em.create_run(name="nowhere", folder="does/not/exist")
        run.log(type="train", metrics={"loss": 1.0}, step=0)
        run.finish()
        with pytest.raises(em.NotFoundError, match="make_folder=True"):
            run.upload()
        with pytest.raises(em.NotFoundError, match="make_folder=True"):
            em.upload(run.path)
        assert run.uploads == [] and len(em.load_run(run.path).metrics()) == 1  # kept on disk, nothing sent
        assert run.upload(make_folder=True).folder == "does/not/exist"
    finally:
        em.logout()


def test_successful_upload_prints_the_runs_console_address(live, capfd: pytest.CaptureFixture[str]) -> None:
    _, key = live.add_user()
    run = em.create_run(name="linked", folder="links", make_folder=True)
    run.log(type="train", metrics={"loss": 1.0}, step=0)
    run.finish()
    capfd.readouterr()
    result = run.upload(host=live.url, api_key=key)
    url = f"{live.url}/#/run/{run.id}"
    assert result.url == url
    assert f"em_dist: run 'linked' uploaded to folder 'links': {url}\n" in capfd.readouterr().err
    page = requests.get(url.split("#")[0], timeout=10)
    assert page.status_code == 200 and "<html" in page.text.lower()  # the address serves the console


@pytest.mark.parametrize("how", ["env", "config"])
def test_live_sync_turned_on_without_editing_the_script(live, how: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capfd: pytest.CaptureFixture[str]) -> None:
    _, key = live.add_user()
    monkeypatch.setenv("EM_AUTO_UPLOAD_INTERVAL", "0.2")
    em.login(host=live.url, api_key=key)  # writes ~/.em/config.yaml (HOME is per test)
    try:
        if how == "env":
            monkeypatch.setenv("EM_AUTO_UPLOAD", "1")
        else:
            config = Path.home() / ".em" / "config.yaml"
            config.write_text(config.read_text() + "auto_upload: true\n")
        capfd.readouterr()
        run = em.create_run(name="synced", folder="live", make_folder=True)
        assert run.auto_upload
        assert f"em_dist: run 'synced' syncs live to {live.url}/#/run/{run.id}\n" in capfd.readouterr().err
        run.log(type="train", metrics={"loss": 1.0}, step=0)
        run.finish()  # the last pass runs inside finish()
        assert _runs_in(live, key, "live") == [run.id]
    finally:
        em.logout()


def test_live_sync_stays_off_by_default_and_a_script_that_says_false_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    with em.create_run(name="quiet") as run:
        assert not run.auto_upload
    monkeypatch.setenv("EM_AUTO_UPLOAD", "1")
    with em.create_run(name="said-no", auto_upload=False) as run:
        assert not run.auto_upload
    monkeypatch.setenv("EM_AUTO_UPLOAD", "maybe")
    with pytest.raises(ValueError, match="EM_AUTO_UPLOAD"):
        em.create_run(name="bad-setting")
