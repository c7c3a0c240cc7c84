"""Browser fixtures: headless Debian Chromium through Playwright, a real server, runs from a real torchrun job."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, python_env
from tests.server.harness import ServerProcess

CHROMIUM = os.environ.get("EM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = REPO / "test-output" / "console"
WORKERS = Path(__file__).parent / "workers"


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}, and CI is set: install chromium and playwright (make test does)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (skipped locally without it; a failure under CI)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        _missing(f"no Chromium at {CHROMIUM} (apt install chromium)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


CSP_PROBE = ("document.addEventListener('securitypolicyviolation', (e) => console.error("
             "`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`));")
"""Reports every Content-Security-Policy violation as a console error (an init script is not bound by the CSP)."""


def watch(context, pg) -> list[str]:
    """What fails a console test: page errors, CSP violations and the console errors of a chart that
    could not draw (WebGL missing). Tests run under the server's real CSP: none may bypass it."""
    problems: list[str] = []
    context.add_init_script(CSP_PROBE)
    pg.on("pageerror", lambda exc: problems.append(str(exc)))
    pg.on("console", lambda msg: problems.append(msg.text) if any(
        s in msg.text for s in ("CSP violation", "Content Security Policy", "WebGL is not supported")) else None)
    return problems


@pytest.fixture
def page(browser):
    """A fresh browser context (no cookies) and page under the server's real Content-Security-Policy;
    a JavaScript error or a CSP violation fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    problems = watch(context, pg)
    pg.problems = problems  # a test may check them where it stands, not only at teardown
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not problems, f"JavaScript errors or CSP violations in the console: {problems}"


def shot(page, name: str) -> Path:
    """Save a full-page screenshot under test-output/console/."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Job:
    """A finished torchrun job's runs folder and the runs the server got from it."""

    em_dir: Path
    ddp_run: Path
    eval_run: Path


def job_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in python_env().items()
           if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "TORCHELASTIC"))}
    out = root / "out"
    out.mkdir(parents=True, exist_ok=True)
    env.update(EM_RUN_PARENT_DIR=str(root / ".em" / "runs"), EM_ARTIFACT_PARENT_DIR=str(root / ".em" / "artifacts"),
               EM_TEST_OUT=str(out), OMP_NUM_THREADS="1")
    return env


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 0, f"{what} failed: {proc.stdout[-2000:]}{proc.stderr[-4000:]}"


@pytest.fixture(scope="session")
def ddp_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """A 2-rank torchrun job (gloo) that outputs a model, and a run that consumes it."""
    root = tmp_path_factory.mktemp("console-job")
    env = job_env(root)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "--monitor-interval=0.1", str(WORKERS / "ddp_job.py")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=root)
    _check(proc, "torchrun job")
    runs = root / ".em" / "runs"
    (ddp,) = [p for p in runs.iterdir() if p.name.startswith("ddp-mnist_")]
    proc = subprocess.run([sys.executable, str(WORKERS / "eval_job.py"), str(ddp)], env=env, capture_output=True,
                          text=True, timeout=60, cwd=root)
    _check(proc, "eval job")
    (ev,) = [p for p in runs.iterdir() if p.name.startswith("eval-model_")]
    return Job(root / ".em", ddp, ev)


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory, ddp_job: Job):
    """A real server (SQLite) holding the job's two runs, uploaded by the real client; yields (server, key)."""
    from em_dist.client.upload import upload_run

    srv = ServerProcess(tmp_path_factory.mktemp("console-server"), None).start()
    try:
        _, key = srv.add_user("alice", via_cli=True)
        for run in (ddp_job.ddp_run, ddp_job.eval_run):
            upload_run(run, folder="mnist/ddp", make_folder=True, host=srv.url, api_key=key)
        yield srv, key
    finally:
        srv.stop()
