"""A server under a path prefix (``em server start --root-path``), as the seed's deployments put it at
``https://host/t9k/experiment/server``: the client with that host URL and the console in Chromium."""

from __future__ import annotations

import pytest
import requests

import em_dist as em
from tests.server.harness import ServerProcess

PREFIX = "/t9k/experiment/server"


@pytest.fixture(scope="module")
def prefixed(tmp_path_factory: pytest.TempPathFactory):
    srv = ServerProcess(tmp_path_factory.mktemp("prefixed"), None, env={"EM_ROOT_PATH": PREFIX.strip("/") + "/"}).start()
    try:
        yield srv
    finally:
        srv.stop()


def _uploaded_run(srv: ServerProcess, key: str) -> em.Run:
    run = em.create_run(name="under-prefix", folder="prefixed", make_folder=True)
    for step in range(5):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1)}, step=step)
    run.finish()
    em.login(host=srv.url + PREFIX, api_key=key)
    try:
        result = run.upload()
    finally:
        em.logout()
    assert result.url == f"{srv.url}{PREFIX}/#/run/{run.id}"
    return run


def test_the_client_logs_in_uploads_and_reads_through_a_host_url_with_a_base_path(prefixed) -> None:
    _, key = prefixed.add_user()
    run = _uploaded_run(prefixed, key)
    client = em.Client(host=prefixed.url + PREFIX + "/", api_key=key)
    assert len(client.run(run.id).metrics()) == 5
    bare = requests.get(prefixed.url + PREFIX, allow_redirects=False, timeout=10)
    assert bare.status_code == 307 and bare.headers["location"] == PREFIX + "/"
    index = requests.get(prefixed.url + PREFIX + "/", timeout=10)
    assert index.status_code == 200 and 'src="static/js/app.js"' in index.text  # relative: resolves under the prefix
    assert requests.get(prefixed.url + PREFIX + "/static/js/app.js", timeout=10).status_code == 200
    assert requests.get(prefixed.url + "/elsewhere/api/v1/me", timeout=10).status_code == 404


def test_the_console_under_a_base_path_signs_in_and_draws_a_run(page, prefixed) -> None:
    _, key = prefixed.add_user()
    run = _uploaded_run(prefixed, key)
    base = prefixed.url + PREFIX
    answer = page.request.post(f"{base}/api/v1/session", headers={"Authorization": f"Bearer {key}"})
    assert answer.ok, answer.text()
    page.goto(f"{base}/#/run/{run.id}/metrics")
    page.wait_for_selector('.chart[data-metric="train/loss"][data-rendered]')
    assert page.problems == []
