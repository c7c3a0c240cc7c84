"""Issue 9 in the browser: sign-out ends the session, sharing and unsharing from the console,
names that look like markup are drawn as text, and the local console answers only its own host."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

import em_dist as em
from tests.console.test_console import sign_in
from tests.console.test_local_console import start_console, stop

from .conftest import shot, watch

MARKUP = '<b style="color:red">pwned'  # no "/": a run name is a folder name too


@pytest.fixture
def strict_page(browser):
    """A page under the console's real Content-Security-Policy; a violation or a JS error fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    problems = watch(context, pg)
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not problems, f"errors or CSP violations in the console: {problems}"


def test_sign_out_ends_the_session_on_the_server(page, console_server):
    srv, key = console_server
    sign_in(page, srv.url, key)
    (cookie,) = page.context.cookies()
    assert cookie["value"] != key  # the cookie holds a session token, never the key
    jar = {"em_session": cookie["value"]}
    assert requests.get(f"{srv.url}/api/v1/me", cookies=jar, timeout=30).status_code == 200
    page.click("#signout")
    page.wait_for_selector("#signin-form")
    assert requests.get(f"{srv.url}/api/v1/me", cookies=jar, timeout=30).status_code == 401


def test_share_and_unshare_a_folder_from_the_console(page, console_server):
    srv, key = console_server
    bob, _ = srv.add_user()
    client = em.Client(host=srv.url, api_key=key)
    (folder,) = [f for f in client.folders() if f["path"] == "mnist/ddp"]
    sign_in(page, srv.url, key)
    page.click(f'#folder-tree a[href="#/sharing/{folder["id"]}"]')
    page.wait_for_selector("#share-form")
    page.fill("#share-user", bob)
    page.click("#share-add")  # without the key: refused in the page, nothing sent
    page.wait_for_selector("#sharing-error:has-text('API key')")
    page.fill("#sharing-key", key)
    page.click("#share-add")
    page.wait_for_selector(f'#shares-table tr[data-user="{bob}"]')
    assert client.shares(folder["id"]) == [{"user": bob, "permission": "view"}]
    shot(page, "sharing")
    page.click(f'#shares-table tr[data-user="{bob}"] button.unshare')
    page.wait_for_selector(f'#shares-table tr[data-user="{bob}"]', state="detached")
    assert client.shares(folder["id"]) == []


def test_metric_and_run_names_are_drawn_as_text_under_the_real_policy(strict_page, console_server):
    page = strict_page
    srv, key = console_server
    run = em.create_run(name=MARKUP)
    for step in range(3):
        run.log(type="train", metrics={MARKUP: float(step)}, step=step)
    run.finish()
    result = em.upload(run.path, folder="markup", make_folder=True, host=srv.url, api_key=key)
    sign_in(page, srv.url, key)
    page.goto(f"{srv.url}/#/run/{result.server_run_id}/metrics")
    page.wait_for_selector(".chart[data-rendered]")
    titles = page.evaluate("[...document.querySelectorAll('.chart .gtitle')].map((t) => t.textContent)")
    assert f"train/{MARKUP}" in titles
    assert page.locator(".chart .gtitle tspan[style*='red']").count() == 0
    shot(page, "markup-names")


def test_the_local_console_answers_only_its_own_host(tmp_path):
    (tmp_path / "em" / "runs").mkdir(parents=True)
    proc, url = start_console(tmp_path / "em")
    try:
        port = url.rsplit(":", 1)[1]
        evil = requests.get(url + "/", headers={"Host": f"rebind.example:{port}"}, timeout=30)
        assert evil.status_code == 421 and "em_session" not in evil.cookies
        assert requests.get(url + "/api/v1/session", headers={"Host": f"rebind.example:{port}"}, timeout=30).status_code == 421
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            ok = requests.get(url + "/", headers={"Host": host}, timeout=30)
            assert ok.status_code == 200 and "em_session" in ok.cookies, host
            assert "frame-ancestors 'none'" in ok.headers["content-security-policy"]
    finally:
        stop(proc)


# -- issue 23 ----------------------------------------------------------------------------------------

def _local_runs(url: str) -> tuple[requests.Session, list[dict]]:
    http = requests.Session()
    assert http.get(url + "/", timeout=30).status_code == 200  # the local console signs the visitor in
    return http, http.get(url + "/api/v1/runs", params={"limit": 1000}, timeout=30).json()["runs"]


def test_the_local_console_never_follows_a_link_out_of_a_run_folder(tmp_path, monkeypatch):
    em_dir = tmp_path / "em"
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(em_dir / "runs"))
    outside = tmp_path / "outside.json"
    outside.write_text('{"ssh_config": "Host prod IdentityFile PRIVATE-OUTSIDE-TEXT"}')
    for name in ("plain", "linked"):
        run = em.create_run(name=name)
        run.hparams["lr"] = 0.1
        run.finish()
        if name == "linked":
            (Path(run.path) / "hparams.json").unlink()
            (Path(run.path) / "hparams.json").symlink_to(outside)
    proc, url = start_console(em_dir)
    try:
        http, runs = _local_runs(url)  # the console prints its address after the first sync pass
        assert "plain" in [r["name"] for r in runs]
        texts = [http.get(f"{url}/api/v1/runs", timeout=30).text]
        texts += [http.get(f"{url}/api/v1/runs/{r['id']}", timeout=30).text for r in runs]
        assert not any("PRIVATE-OUTSIDE-TEXT" in t for t in texts)
        for path in ("/static/%00", "/static/a%00b.js"):
            assert http.get(url + path, timeout=30).status_code == 404, path
    finally:
        stop(proc)
