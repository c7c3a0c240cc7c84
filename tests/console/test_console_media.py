"""The Media tab in headless Chromium against a real server: a chosen step and rank shows that
rank's image, histograms draw, a table sorts and searches."""

from __future__ import annotations

import pytest

import em_dist as em
from tests.server.harness import ServerProcess
from tests.server.test_media import _run_with_two_ranks

from .conftest import shot
from .test_console import sign_in

pytestmark = pytest.mark.timeout(240)


def test_media_tab_shows_the_chosen_ranks_image_at_the_chosen_step(page, tmp_path, monkeypatch):
    path = _run_with_two_ranks(tmp_path, monkeypatch)
    local = em.load_run(path)
    srv = ServerProcess(tmp_path / "server", None).start()
    try:
        _, key = srv.add_user("dana")
        em.upload(path, folder="media", make_folder=True, host=srv.url, api_key=key)
        sign_in(page, srv.url, key)
        page.goto(f"{srv.url}/#/run/{local.id}/media")
        panel = '.media-panel[data-kind="image"][data-name="val/img"]'
        page.wait_for_selector(f"{panel} .media-image img")
        page.select_option(f"{panel} .media-rank", "1")
        page.fill(f"{panel} .media-step", "1")  # the slider's second step: step 1
        want = [m for m in local.media(name="img", rank=1) if m.step == 1][-1]
        page.wait_for_function(f"() => [...document.querySelectorAll('{panel} .media-image')]"
                               f".map((f) => f.dataset.rank + ':' + f.dataset.step).join() === '1:1'")
        figure = page.locator(f"{panel} .media-image")
        assert figure.get_attribute("data-sha256") == want.sha256
        page.wait_for_function(f"() => document.querySelector('{panel} .media-image img').naturalWidth === 5")
        page.select_option(f"{panel} .media-rank", "")  # every rank side by side
        page.wait_for_function(f"() => document.querySelectorAll('{panel} .media-image').length === 2")
        assert page.locator('.media-panel[data-kind="histogram"] canvas').count() == 2  # val/h of ranks 0 and 1
        table = '.media-panel[data-kind="table"]'
        page.fill(f"{table} .media-table-search", "zzz")
        page.wait_for_function(f"() => document.querySelectorAll('{table} tbody tr').length === 0")
        shot(page, "run-media")
    finally:
        srv.stop()
