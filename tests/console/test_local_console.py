"""``em console -d .em``: the same console over local run folders, no account, live runs update."""

from __future__ import annotations

import select
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env

from .conftest import shot

pytestmark = pytest.mark.timeout(150)
READY_TIMEOUT_S = 60.0


def start_console(em_dir: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([PYTHON, "-m", "em_dist.cli.main", "console", "-d", str(em_dir), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=python_env())
    deadline, seen = time.monotonic() + READY_TIMEOUT_S, b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            seen += line
            if line.startswith(b"em console at http://127.0.0.1:"):
                return proc, line.split()[-1].decode().rstrip("/")
            if not line and proc.poll() is not None:
                break
    proc.kill()
    raise AssertionError(f"em console did not start: {seen.decode(errors='replace')}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
    proc.stdout.close()


def test_local_console_shows_local_runs_and_follows_a_live_one(page, tmp_path, ddp_job, monkeypatch):
    em_dir = tmp_path / "em"
    shutil.copytree(ddp_job.ddp_run, em_dir / "runs" / ddp_job.ddp_run.name)
    monkeypatch.setenv("EM_FLUSH_INTERVAL", "0.1")
    live = em.create_run(name="live-run")
    for step in range(20):
        live.log(type="train", metrics={"loss": 1 / (step + 1)}, step=step)
    assert live.flush()
    proc, url = start_console(em_dir)
    try:
        page.goto(url + "/")  # no sign-in: the local console signs visitors in
        page.wait_for_selector('#runs-table tr[data-run-name="live-run"]')
        assert "local console" in page.inner_text("#whoami")
        assert page.is_hidden("#signout")
        page.wait_for_selector('#runs-table tr[data-run-name="ddp-mnist"]')
        shot(page, "local-runs")
        page.click('#runs-table tr[data-run-name="ddp-mnist"] a')
        page.click(".tabs a[data-tab=metrics]")
        page.wait_for_selector('.chart[data-metric="train/loss"][data-ranks="0,1"]')

        page.goto(f"{url}/#/run/{live.id}/metrics")
        page.wait_for_selector("h1:has-text('live-run')")
        page.wait_for_selector('.chart[data-metric="train/loss"][data-points="20"]')
        assert page.locator(".status.Running").count() == 1
        for step in range(20, 50):
            live.log(type="train", metrics={"loss": 1 / (step + 1)}, step=step)
        assert live.flush()
        # resync (2 s) + page poll (3 s): the chart grows without a reload
        page.wait_for_function("() => Number(document.querySelector('.chart[data-metric=\"train/loss\"]').dataset.points) === 50",
                               timeout=30_000)
        live.finish()
        page.wait_for_selector(".status.Succeeded", timeout=30_000)
        shot(page, "local-live-run")
        # read-only: the session cookie cannot write
        status = page.evaluate("fetch('/api/v1/folders', {method: 'POST', headers: {'Content-Type': 'application/json'},"
                               " body: JSON.stringify({path: 'x'})}).then((r) => r.status)")
        assert status == 403
        # no run edits either: they would change only the console's temporary copy of the folders
        assert page.locator("#run-edit").count() == 0
        edit = page.evaluate(f"""fetch('/api/v1/session').then((r) => r.json()).then((s) => fetch('/api/v1/runs/{live.id}',
            {{method: 'PATCH', headers: {{'Content-Type': 'application/json', 'X-CSRF-Token': s.csrf}},
              body: JSON.stringify({{name: 'renamed'}})}})).then(async (r) => [r.status, await r.text()])""")
        assert edit[0] == 403 and "read-only" in edit[1]
    finally:
        page.goto("about:blank")  # leave the console before its server stops
        stop(proc)


def test_live_poll_survives_the_server_going_away(page, tmp_path, monkeypatch):
    """A live run's Metrics tab whose server stops: the poll says so and raises nothing unhandled."""
    monkeypatch.setenv("EM_FLUSH_INTERVAL", "0.1")
    live = em.create_run(name="live-run")
    try:
        live.log(type="train", metrics={"loss": 1.0}, step=0)
        assert live.flush()
        proc, url = start_console(tmp_path / "em")
        try:
            page.goto(f"{url}/#/run/{live.id}/metrics")
            page.wait_for_selector('.metric-value[data-metric="train/loss"]')  # one point: a value, not a chart
        finally:
            stop(proc)
        page.wait_for_function("() => document.querySelector('#poll-note').textContent.includes('paused')", timeout=15_000)
    finally:
        live.finish()
