"""Login, logout and where credentials come from."""

from __future__ import annotations

import stat

import pytest
import yaml

import em_dist as em
from em_dist.client import auth
from tests.server.harness import free_port


@pytest.fixture(autouse=True)
def _no_process_login():
    auth.logout()
    yield
    auth.logout()


def test_login_checks_key_and_writes_private_config(server) -> None:
    name, key = server.add_user()
    em.login(host=server.url, api_key=key)
    path = auth.config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert yaml.safe_load(path.read_text()) == {"host": server.url, "api_key": key}
    assert em.Client().me()["name"] == name  # from the process login
    auth._current = None
    assert em.Client().me()["name"] == name  # from the config file
    em.logout()
    assert not path.exists()
    with pytest.raises(em.NotLoggedInError, match="em login"):
        em.Client()


def test_login_refuses_wrong_key_and_unreachable_host(server) -> None:
    with pytest.raises(em.AuthenticationError, match="invalid API key"):
        em.login(host=server.url, api_key="em_wrong")
    assert not auth.config_path().exists()
    with pytest.raises(em.ServerUnreachableError, match="cannot reach"):
        em.login(host=f"127.0.0.1:{free_port()}", api_key="em_x", timeout=2)


def test_env_and_ais_host_alias(server, monkeypatch: pytest.MonkeyPatch) -> None:
    name, key = server.add_user()
    monkeypatch.setenv("EM_HOST", server.url)
    monkeypatch.setenv("EM_API_KEY", key)
    assert em.Client().me()["name"] == name
    monkeypatch.delenv("EM_HOST")
    em.login(ais_host=server.url)  # key from the environment, host from the SDK's old spelling
    assert yaml.safe_load(auth.config_path().read_text())["host"] == server.url


def test_every_rank_may_log_in_at_once(server) -> None:
    """All ranks of a job run the script's ``em.login``: concurrent writes of the config file must not fail."""
    import subprocess

    from tests.conftest import PYTHON, python_env

    _, key = server.add_user()
    code = f"import em_dist as em\nfor _ in range(20): em.login(host={server.url!r}, api_key={key!r})\n"
    procs = [subprocess.Popen([PYTHON, "-c", code], env=python_env(), stderr=subprocess.PIPE, text=True) for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    from em_dist.client.auth import config_path

    assert config_path().stat().st_mode & 0o777 == 0o600
    assert key in config_path().read_text()
