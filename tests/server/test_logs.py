"""Captured output over a real server (SQLite and PostgreSQL): upload by logical offset, resumable,
bounded, read back with ``Client().logs``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import em_dist as em
from em_dist.store.logs import log_file
from tests.poll import wait_for
from tests.test_capture import PRINTER, _env


def _logged(run: em.Run, text: str) -> bool:
    try:
        return text in log_file(Path(run.path), 0).read_text()
    except FileNotFoundError:
        return False


def test_output_uploads_incrementally_and_reads_back(server) -> None:
    _, key = server.add_user()
    run = em.create_run(name="printing", capture_output=True)  # asked for: pytest captures too
    os.write(1, b"first line\n")
    os.write(2, b"a warning\n")
    wait_for(lambda: _logged(run, "a warning"), 30, "the first lines on disk")
    first = em.upload(run.path, host=server.url, api_key=key)
    assert first.logs_sent == log_file(Path(run.path), 0).stat().st_size
    client = em.Client(host=server.url, api_key=key)
    assert [(x["stream"], x["text"]) for x in client.logs(run.id)] == [("out", "first line"), ("err", "a warning")]
    for i in range(5):
        os.write(1, f"more {i}\n".encode())
    run.finish()
    second = em.upload(run.path, host=server.url, api_key=key)
    assert second.logs_sent == log_file(Path(run.path), 0).stat().st_size - first.logs_sent  # only what is new
    assert em.upload(run.path, host=server.url, api_key=key).logs_sent == 0
    local = em.load_run(run.path).logs()
    remote = client.logs(run.id)
    assert [(x["rank"], x["stream"], x["text"]) for x in remote] == [(x["rank"], x["stream"], x["text"]) for x in local]
    assert [x["text"] for x in client.logs(run.id, rank=0, tail=2)] == ["more 3", "more 4"]
    assert [x["text"] for x in client.logs(run.id, search="MORE 1")] == ["more 1"]
    assert client.logs(run.id, rank=1) == []
    assert [x["text"] for x in client.run(run.id).logs(tail=1)] == ["more 4"]


def test_a_bounded_log_uploads_its_newest_lines_and_the_drop(server, tmp_path: Path) -> None:
    _, key = server.add_user()
    result = tmp_path / "result"
    proc = subprocess.run([sys.executable, str(PRINTER), "bound", str(result)],
                          env=_env(tmp_path, EM_LOG_MAX_BYTES="4096"), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path = result.read_text()
    sent = em.upload(path, host=server.url, api_key=key)
    assert sent.logs_sent > 0
    local = em.load_run(path)
    remote = em.Client(host=server.url, api_key=key).logs(local.id)
    assert [x["text"] for x in remote[1:]] == [x["text"] for x in local.logs()[1:]]
    assert remote[0]["stream"] == local.logs()[0]["stream"] == "em"
    dropped = local.logs()[0]["text"].split()[2]
    assert remote[0]["text"].split()[2] == dropped  # the same count on both sides
