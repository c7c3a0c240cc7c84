"""The Logs tab and a failed run's last output, in headless Chromium against a real server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import em_dist as em
from em_dist.store.logs import log_file
from tests.poll import wait_for
from tests.server.harness import ServerProcess

from .conftest import job_env, shot
from .test_console import sign_in
from .test_console_security import MARKUP, strict_page  # noqa: F401  (a fixture)

pytestmark = pytest.mark.timeout(240)
PRINTING = Path(__file__).parents[1] / "ranks" / "workers" / "printing.py"


@pytest.fixture(scope="module")
def logs_server(tmp_path_factory: pytest.TempPathFactory):
    """A server holding a failed 2-rank torchrun job whose ranks printed (rank 1 raised)."""
    root = tmp_path_factory.mktemp("logs-job")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "--monitor-interval=0.1", str(PRINTING), "--fail-rank", "1"],
                          env=job_env(root), capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode != 0 and "rank 1 gives up" in proc.stderr, proc.stderr[-4000:]
    (run_dir,) = (root / ".em" / "runs").iterdir()
    srv = ServerProcess(tmp_path_factory.mktemp("logs-server"), None).start()
    try:
        _, key = srv.add_user("carol")
        em.upload(run_dir, folder="jobs", make_folder=True, host=srv.url, api_key=key)
        yield srv, key, em.load_run(run_dir)
    finally:
        srv.stop()


def test_a_failed_runs_overview_shows_each_ranks_last_lines(page, logs_server):
    srv, key, run = logs_server
    assert run.status == "Failed"
    sign_in(page, srv.url, key)
    page.goto(f"{srv.url}/#/run/{run.id}/overview")
    page.wait_for_selector("#last-output .lastlines[data-rank='1']")
    rank1 = page.inner_text("#last-output .lastlines[data-rank='1']")
    assert "rank 1 child" in rank1 and "RuntimeError: rank 1 gives up" in rank1
    assert "rank 0 child" in page.inner_text("#last-output .lastlines[data-rank='0']")
    shot(page, "run-failed-last-output")


def test_logs_tab_selects_a_rank_and_searches(page, logs_server):
    srv, key, run = logs_server
    sign_in(page, srv.url, key)
    page.goto(f"{srv.url}/#/run/{run.id}/logs")
    page.wait_for_selector("#log-view .logline")
    texts = page.locator("#log-view .logtext").all_inner_texts()
    assert "rank 0 step 0" in texts and "rank 1 step 15" in texts
    page.select_option("#log-rank", "1")
    page.wait_for_function("() => [...document.querySelectorAll('#log-view .logline')].every((e) => e.dataset.rank === '1')")
    page.fill("#log-search", "step 1")
    page.wait_for_function("() => document.querySelectorAll('#log-view .logline').length === 2")
    assert page.locator("#log-view .logtext").all_inner_texts() == ["rank 1 step 10", "rank 1 step 15"]
    assert "rank=1" in page.url and "q=step" in page.url
    shot(page, "run-logs")


def test_follow_mode_shows_new_lines_of_a_live_run(page, logs_server, tmp_path, monkeypatch):
    srv, key, _ = logs_server
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    live = em.create_run(name="live", capture_output=True)  # asked for: pytest captures too
    try:
        os.write(1, b"live line one\n")
        wait_for(lambda: log_file(Path(live.path), 0).exists() and "one" in log_file(Path(live.path), 0).read_text(),
                 30, "the first line on disk")
        em.upload(live.path, folder="jobs", host=srv.url, api_key=key)
        sign_in(page, srv.url, key)
        page.goto(f"{srv.url}/#/run/{live.id}/logs")
        page.wait_for_selector("#log-view .logline")
        assert page.is_checked("#log-follow")
        os.write(1, b"live line two\n")
        wait_for(lambda: "two" in log_file(Path(live.path), 0).read_text(), 30, "the second line on disk")
        em.upload(live.path, folder="jobs", host=srv.url, api_key=key)
        page.wait_for_selector("#log-view .logtext:has-text('live line two')")
    finally:
        live.finish()


def test_printed_markup_is_drawn_as_text_under_the_real_policy(strict_page, logs_server, tmp_path, monkeypatch):
    page = strict_page
    srv, key, _ = logs_server
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    with pytest.raises(RuntimeError), em.create_run(name="markup", capture_output=True) as run:  # Failed: the Overview shows its output
        os.write(1, f"{MARKUP}</b><img src=x onerror=alert(1)>\n".encode())
        raise RuntimeError("for the overview")
    em.upload(run.path, folder="jobs", host=srv.url, api_key=key)
    sign_in(page, srv.url, key)
    for tab in ("logs", "overview"):
        page.goto(f"{srv.url}/#/run/{run.id}/{tab}")
        page.wait_for_selector(".logview .logtext:has-text('pwned')")
        assert page.locator(".logview b, .logview img").count() == 0
        assert MARKUP in page.inner_text(".logview")
