"""Interrupted uploads resume: the client killed mid-upload, the server killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest
import requests

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.poll import wait_for
from tests.server.harness import ServerProcess
from tests.server.runs import assert_same_run

SLOW_UPLOADER = textwrap.dedent(
    """
    import sys
    import em_dist.client.upload as upload
    upload.CHUNK_BYTES = int(sys.argv[4])  # many small requests: the upload takes a while
    upload.upload_run(sys.argv[1], host=sys.argv[2], api_key=sys.argv[3], folder="resume", make_folder=True)
    print("DONE", flush=True)
    """
)


def _big_run(steps: int) -> em.Run:
    run = em.create_run(name="big")
    run.hparams.update({"lr": 0.1})
    for step in range(steps):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1), "acc": step / steps}, step=step, epoch=step // 1000)
    src = Path(run.path).parent / "weights.bin"
    src.write_bytes(os.urandom(256 * 1024))
    artifact = em.create_artifact(name="weights")
    artifact.add_file(str(src))
    run.mark_output(artifact)
    run.finish()
    return run


def _held(url: str, key: str, run_id: str) -> int:
    response = requests.get(f"{url}/api/v1/runs/{run_id}/offsets", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    return sum(response.json().values()) if response.status_code == 200 else 0


def _start_uploader(tmp_path: Path, run: em.Run, url: str, key: str, chunk: int) -> subprocess.Popen:
    script = tmp_path / "slow_upload.py"
    script.write_text(SLOW_UPLOADER)
    return subprocess.Popen([PYTHON, str(script), run.path, url, key, str(chunk)], env=python_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_client_killed_mid_upload_resumes(server, tmp_path: Path) -> None:
    _, key = server.add_user()
    run = _big_run(10_000)
    total = (Path(run.path) / "metrics" / "rank-0.jsonl").stat().st_size
    child = _start_uploader(tmp_path, run, server.url, key, 4096)
    try:
        wait_for(lambda: _held(server.url, key, run.id) > 0 or child.poll() is not None, timeout=60, what="first chunks")
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    held = _held(server.url, key, run.id)
    assert 0 < held < total, "the client was not killed mid-upload"
    result = em.upload(run.path, folder="resume", host=server.url, api_key=key)
    # the killed client's last request may still be committed after `held` was read
    assert total - held - 4096 <= result.metrics_sent <= total - held
    client = em.Client(host=server.url, api_key=key)
    assert_same_run(client, run.path)
    assert sum(s["count"] for s in client.metric_names(run.id)) == 20_000


@pytest.mark.parametrize("fresh_server", ["sqlite", "postgresql"], indirect=True)
def test_server_killed_and_restarted_mid_upload(fresh_server: ServerProcess, tmp_path: Path) -> None:
    _, key = fresh_server.add_user()
    run = _big_run(10_000)
    total = (Path(run.path) / "metrics" / "rank-0.jsonl").stat().st_size
    child = _start_uploader(tmp_path, run, fresh_server.url, key, 4096)
    try:
        wait_for(lambda: _held(fresh_server.url, key, run.id) > 0, timeout=60, what="first chunks")
        fresh_server.kill()
        fresh_server.start()  # same port, same data: the uploader's retries may reach it
        child.wait(90)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    held = _held(fresh_server.url, key, run.id)
    assert 0 < held <= total
    result = em.upload(run.path, folder="resume", host=fresh_server.url, api_key=key)
    assert result.metrics_sent == total - held
    client = em.Client(host=fresh_server.url, api_key=key)
    assert_same_run(client, run.path)
    assert sum(s["count"] for s in client.metric_names(run.id)) == 20_000
