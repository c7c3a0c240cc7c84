"""The ``aimd`` command (login, trial upload, logout) over trials ``create_trial`` saved under ``.aimd/trials``."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path

import em_dist as em
from tests.conftest import PYTHON, REPO, python_env
from tests.server.harness import em_cli, fresh_server  # noqa: F401  (fixture)


def aimd_cli(*args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([PYTHON, "-m", "em_dist.cli.aimd", *args], capture_output=True, text=True, timeout=60, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"aimd {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


def test_console_script_maps_to_the_aimd_command() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"em": "em_dist.cli.main:main", "aimd": "em_dist.cli.aimd:main"}


def test_create_trial_saves_under_aimd_trials(tmp_path: Path) -> None:
    trial = em.create_trial(trial_name="cnn_keras")
    trial.log(metrics_type="train", metrics={"loss": 0.5}, step=1)
    trial.finish()
    parent = Path(os.environ["AIMD_TRIAL_PARENT_DIR"])
    assert trial.path.parent == parent.resolve() and trial.path.name.startswith("cnn_keras_")
    assert not (tmp_path / "em" / "runs").exists()  # runs made with create_run keep their own place
    run = em.create_run(name="plain")
    run.finish()
    assert run.path.parent == (tmp_path / "em" / "runs").resolve()
    listed = em_cli("run", "list", "-d", str(parent), "--json", env=python_env())
    assert [r["name"] for r in json.loads(listed.stdout)] == ["cnn_keras"]


def test_aimd_login_trial_upload_logout(fresh_server) -> None:  # noqa: F811
    _, key = fresh_server.add_user()
    env = python_env()  # HOME and AIMD_TRIAL_PARENT_DIR are per test (tests/conftest.py)
    for args in (["--help"], ["trial", "upload", "--help"], ["login", "--help"], ["logout", "--help"]):
        assert aimd_cli(*args, env=env).stdout.startswith("usage: aimd")
    bad = aimd_cli("login", "-H", fresh_server.url, "-k", "em_wrong", env=env, check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("aimd: ") and "invalid API key" in bad.stderr
    aimd_cli("login", "-H", fresh_server.url, "-k", key, env=env)

    first = em.create_trial(trial_name="mnist", folder_path="image_classification/mnist", make_folder=True)
    first.log(metrics_type="train", metrics={"loss": 0.5}, step=1)
    first.finish()
    other = em.create_trial(trial_name="other")
    other.finish()
    out = aimd_cli("trial", "upload", "-n", "mnist", "--folder", "image_classification/mnist", "--make-folder",
                   "--no-progress", env=env)
    assert f"run {first.run.id}" in out.stdout and "other" not in out.stdout
    out = aimd_cli("trial", "upload", "-p", str(other.path), "--no-progress", env=env)
    assert f"run {other.run.id}" in out.stdout
    client = em.Client(host=fresh_server.url, api_key=key)
    assert [r["id"] for r in client.runs("image_classification/mnist")] == [first.run.id]
    assert client.run(first.run.id).metrics(name="loss")[0]["value"] == 0.5

    aimd_cli("logout", env=env)
    after = aimd_cli("trial", "upload", "-n", "mnist", env=env, check=False)
    assert after.returncode == 1 and "login" in after.stderr
