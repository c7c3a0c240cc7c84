"""Artifacts interrupted mid-copy: a SIGTERM the program handles (an exception out of add_file) or
one that ends the process; no partial copy stays in the artifact folder either way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import em_dist as em
from em_dist.store import layout
from tests.poll import wait_for
from tests.ranks._launch import job_env

BIG = 2 << 30  # 2 GB of zeros (sparse): a copy that is still running when the signal comes


def _sparse(path: Path, size: int = BIG) -> Path:
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def _copying(art_dir: Path) -> list[Path]:
    content = art_dir / layout.ARTIFACT_CONTENT_DIR
    return [p for p in content.rglob("*") if p.is_file() and p.stat().st_size > 0] if content.is_dir() else []


def _files(art_dir: Path) -> list[Path]:
    return [p for p in (art_dir / layout.ARTIFACT_CONTENT_DIR).rglob("*") if not p.is_dir()]


class Stop(Exception):
    """What a program's SIGTERM handler raises (Lightning's SIGTERMException is one)."""


def test_sigterm_the_program_handles_mid_copy_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("EM_ARTIFACT_PARENT_DIR", str(tmp_path / "artifacts"))
    big = _sparse(tmp_path / "weights.bin")
    run = em.create_run(name="interrupted")

    def handler(signum, frame):
        raise Stop()

    previous = signal.signal(signal.SIGTERM, handler)  # after create_run: the program's, in front
    try:
        art = em.create_artifact("weights")
        killer = threading.Thread(target=lambda: (wait_for(lambda: _copying(art.path), what="the copy to start"),
                                                  os.kill(os.getpid(), signal.SIGTERM)))
        killer.start()
        try:
            art.add_file(big)
        except Stop:
            stopped = True
        else:
            stopped = False
        killer.join(30)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert stopped, "the copy ended before the signal came: make BIG larger"
    assert _files(art.path) == []  # removed at once
    assert em.load_artifact(art.path).files == []
    with pytest.warns(em.EMWarning, match="weights.bin"):
        run.mark_output(art)
    run.finish()
    rec = em.load_run(run.path)
    assert rec.status == "Succeeded" and [f["path"] for f in rec.artifacts[0].failed] == ["weights.bin"]


_SCRIPT = """
import sys
import em_dist as em
run = em.create_run(name="killed")
run.log("train", {"loss": 1.0}, step=0)
art = em.create_artifact("weights")
print(art.path, flush=True)
art.add_dir(sys.argv[1])
print("copied everything", flush=True)
"""


def test_sigterm_that_ends_the_process_mid_copy_leaves_no_partial_file(tmp_path) -> None:
    src = tmp_path / "ckpt"
    src.mkdir()
    _sparse(src / "a.bin")
    script = tmp_path / "copy_job.py"
    script.write_text(_SCRIPT)
    env = job_env(tmp_path)
    proc = subprocess.Popen([sys.executable, str(script), str(src)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        art_dir = Path(proc.stdout.readline().strip())
        wait_for(lambda: _copying(art_dir), what="the copy to start")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, err[-3000:]
    assert "copied everything" not in out
    assert _files(art_dir) == [], err[-3000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    assert em.load_run(run_dir).status == "Failed"


_DAEMON_SCRIPT = """
import sys, threading, time
from pathlib import Path
import em_dist as em
run = em.create_run(name="exits")
art = em.create_artifact("weights")
print(art.path, flush=True)
threading.Thread(target=art.add_file, args=(sys.argv[1],), daemon=True).start()
content = art.path / "files"
while not any(p.stat().st_size for p in content.glob(".*")):  # the copy is under way
    time.sleep(0.01)
"""


def test_an_exit_during_a_daemon_threads_copy_leaves_no_partial_file(tmp_path) -> None:
    big = _sparse(tmp_path / "weights.bin")
    script = tmp_path / "exits.py"
    script.write_text(_DAEMON_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(big)], env=job_env(tmp_path), capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    art_dir = Path(proc.stdout.splitlines()[0].strip())
    assert _files(art_dir) == [], proc.stderr[-3000:]
