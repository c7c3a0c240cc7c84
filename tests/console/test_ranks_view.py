"""The System and Ranks tabs in headless Chromium, on a real 4-rank torchrun job whose rank 2 is 150 ms slower per step
(far more than a loaded 2-core machine can delay a rank's start).

The Ranks screenshot (test-output/console/ranks.png) is the documentation's docs/img/console-ranks.png.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.ranks.test_system_metrics import STEPS
from tests.server.harness import ServerProcess

from .conftest import _check, job_env, shot
from .test_console import rank_lines, sign_in

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def straggler_server(tmp_path_factory: pytest.TempPathFactory):
    """A server holding the run of a 4-rank job (system metrics every 0.2 s), rank 2 the straggler; yields (server, key, run id)."""
    from em_dist.client.upload import upload_run

    root = tmp_path_factory.mktemp("straggler-job")
    env = dict(job_env(root), EM_SYSTEM_METRICS_INTERVAL="0.2")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4",
                           "--monitor-interval=0.1", str(STEPS), "--steps", "30", "--slow-rank", "2", "--slow-s", "0.15"],
                          env=env, capture_output=True, text=True, timeout=180, cwd=root)
    _check(proc, "torchrun job")
    (run_dir,) = (root / ".em" / "runs").iterdir()
    srv = ServerProcess(tmp_path_factory.mktemp("straggler-server"), None).start()
    try:
        _, key = srv.add_user("alice", via_cli=True)
        result = upload_run(run_dir, folder="jobs", make_folder=True, host=srv.url, api_key=key)
        yield srv, key, result.server_run_id
    finally:
        srv.stop()


def test_the_ranks_tab_flags_the_straggler_and_the_system_tab_charts_every_rank(page, straggler_server):
    srv, key, run_id = straggler_server
    sign_in(page, srv.url, key)
    page.goto(f"{srv.url}/#/run/{run_id}/ranks")
    page.wait_for_selector("#lag-strip[data-rendered]")
    assert page.get_attribute("#slowest-rank", "data-rank") == "2"
    assert "Slowest: rank 2" in page.inner_text("#slowest-rank")
    flagged = page.locator("#ranks-table tr.slowest")
    assert flagged.count() == 1 and flagged.get_attribute("data-rank") == "2"
    assert "slowest" in flagged.inner_text()
    strip_ranks = page.evaluate("document.querySelector('#lag-strip').data[0].y")
    assert strip_ranks == ["rank 0", "rank 1", "rank 2", "rank 3"]
    shot(page, "ranks")

    page.goto(f"{srv.url}/#/run/{run_id}/system")
    assert rank_lines(page, "system/rss_bytes") == [0, 1, 2, 3]
    assert rank_lines(page, "system/host_cpu_percent") == [0]  # once per host: local rank 0
    assert page.locator('.chart[data-metric="train/loss"]').count() == 0
    shot(page, "system")
    page.goto(f"{srv.url}/#/run/{run_id}/metrics")
    page.wait_for_selector('.chart[data-metric="train/loss"][data-rendered]')
    assert page.locator('.chart[data-metric="system/rss_bytes"]').count() == 0
