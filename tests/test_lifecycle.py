"""A run ends with the status its process deserves: finished, atexit, uncaught exception, or SIGKILL."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.poll import wait_for


def _run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run([PYTHON, str(script)], env=python_env(), capture_output=True, text=True, timeout=60, cwd=tmp_path)


def test_unfinished_run_is_finished_at_exit_as_succeeded(tmp_path, run_parent) -> None:
    proc = _run_script(tmp_path, """
        import em_dist as em
        run = em.create_run(name="atexit")
        for i in range(100):
            run.log(type="train", metrics={"loss": i}, step=i)
        """)
    assert proc.returncode == 0, proc.stderr
    [rec] = em.list_runs(run_parent)
    assert rec.status == "Succeeded" and len(rec.metrics()) == 100


def test_uncaught_exception_marks_the_run_failed(tmp_path, run_parent) -> None:
    proc = _run_script(tmp_path, """
        import em_dist as em
        run = em.create_run(name="boom")
        run.log(type="train", metrics={"loss": 1.0}, step=0)
        raise ValueError("diverged")
        """)
    assert proc.returncode == 1 and "diverged" in proc.stderr  # the user's traceback is still printed
    [rec] = em.list_runs(run_parent)
    assert rec.status == "Failed" and "ValueError: diverged" in rec.status_reason
    assert len(rec.metrics()) == 1


def test_sigkill_leaves_a_readable_failed_run_with_every_point_older_than_1s(tmp_path, run_parent) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        import em_dist as em
        run = em.create_run(name="killed")
        run.hparams["lr"] = 0.1
        for i in range(1000):
            run.log(type="train", metrics={"loss": 1.0 / (i + 1)}, step=i)
        t0 = time.monotonic()
        step, said = 1000, False
        while True:  # keep training (and logging) until killed
            run.log(type="train", metrics={"loss": 0.0}, step=step)
            step += 1
            if not said and time.monotonic() - t0 >= 1.2:
                print("READY", flush=True)
                said = True
            time.sleep(0.001)
        """))
    proc = subprocess.Popen([PYTHON, str(script)], env=python_env(), stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == "READY"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    [rec] = em.list_runs(run_parent)
    assert rec.status == "Failed" and rec.status_reason == "crashed"
    assert rec.hparams == {"lr": 0.1}
    steps = [p["step"] for p in rec.metrics()]
    assert steps[:1000] == list(range(1000))  # everything logged >= 1.2 s before the kill
    assert steps == list(range(len(steps)))  # nothing torn, nothing duplicated


def test_stale_heartbeat_of_a_live_status_reads_as_crashed(tmp_path) -> None:
    import json
    import os

    run = em.create_run(name="stale")
    run.log(type="train", metrics={"loss": 1.0}, step=0)
    run.finish()
    meta_path = run.path / "run.json"
    meta = json.loads(meta_path.read_text())
    meta.update(status="Running", host="another-host")
    meta_path.write_text(json.dumps(meta))
    beat = run.path / "heartbeat"
    beat.write_text(json.dumps({"pid": 1, "host": "another-host", "time": time.time()}))
    assert em.load_run(run.path).status == "Running"  # fresh heartbeat from elsewhere: believed
    beat.write_text(json.dumps({"pid": 1, "host": "another-host", "time": time.time() - 3600}))
    rec = em.load_run(run.path)
    assert (rec.status, rec.status_reason) == ("Failed", "crashed")
    assert json.loads(meta_path.read_text())["status"] == "Running"  # readers never rewrite
    del os


def test_sys_exit_with_an_error_code_marks_the_run_failed(tmp_path, run_parent) -> None:
    proc = _run_script(tmp_path, """
        import sys
        import em_dist as em
        run = em.create_run(name="exit1")
        run.log(type="train", metrics={"loss": 1.0}, step=0)
        sys.exit(1)
        """)
    assert proc.returncode == 1
    [rec] = em.list_runs(run_parent)
    assert (rec.status, rec.status_reason) == ("Failed", "exit code: 1")
    assert rec.end_timestamp is not None and len(rec.metrics()) == 1


def test_sys_exit_zero_is_a_success(tmp_path, run_parent) -> None:
    proc = _run_script(tmp_path, """
        import sys
        import em_dist as em
        run = em.create_run(name="exit0")
        sys.exit(0)
        """)
    assert proc.returncode == 0
    [rec] = em.list_runs(run_parent)
    assert rec.status == "Succeeded"


def test_fork_children_that_leave_by_os_exit_finish_their_runs(tmp_path, run_parent) -> None:
    # torch.multiprocessing.start_processes(start_method="fork") and Lightning's ddp_fork end each
    # child with os._exit: no atexit there. The parent's own run is not the children's to finish.
    proc = _run_script(tmp_path, """
        import multiprocessing as mp
        import em_dist as em

        def child(i):
            run = em.create_run(name=f"child{i}")
            run.log(type="train", metrics={"loss": 1.0}, step=0)
            if i == 1:
                raise RuntimeError("child failed")

        if __name__ == "__main__":
            parent = em.create_run(name="parent")
            parent.flush()
            ctx = mp.get_context("fork")
            procs = [ctx.Process(target=child, args=(i,)) for i in range(2)]
            for p in procs:
                p.start()
            for p in procs:
                p.join(60)
            assert [p.exitcode for p in procs] == [0, 1], [p.exitcode for p in procs]
            assert em.load_run(parent.path).status in ("Initializing", "Running")  # untouched by the children
            parent.finish()
        """)
    assert proc.returncode == 0, proc.stderr
    status = {r.name: (r.status, r.status_reason) for r in em.list_runs(run_parent)}
    assert status == {
        "parent": ("Succeeded", None),
        "child0": ("Succeeded", None),
        "child1": ("Failed", "exception: RuntimeError: child failed"),
    }


def test_a_fast_loop_never_has_more_than_flush_interval_unwritten(tmp_path, run_parent) -> None:
    # issue 8, item 6: the writer fell up to 1.2 s behind a fast loop (20,000-record chunks, a
    # 50,000-record backlog before log() helped), so a kill -9 could lose more than flush_interval.
    # The loop itself samples how old the newest record on disk is (what a kill -9 at that moment
    # would keep), then dies of SIGKILL.
    proc = _run_script(tmp_path, """
        import json, os, signal, time
        import em_dist as em
        from em_dist.store import layout
        run = em.create_run(name="fast")
        path = layout.metrics_file(run.path, 0)
        t0 = time.monotonic()
        step, lags = 0, []
        while time.monotonic() - t0 < 3.0:
            run.log(type="train", metrics={"loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
            step += 1
            if not step & 0x3fff and time.monotonic() - t0 > 0.6:
                with open(path, "rb") as f:  # the newest complete line (a write may be under way)
                    f.seek(max(0, os.fstat(f.fileno()).st_size - 1000))
                    data = f.read()
                    lags.append(time.time() - json.loads(data[: data.rfind(b"\\n")].splitlines()[-1])["time"])
        print(json.dumps({"steps": step, "lags": lags}), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    doc = json.loads(proc.stdout)
    assert len(doc["lags"]) >= 5, doc
    assert max(doc["lags"]) <= 0.5, f"the newest record on disk fell {max(doc['lags']):.3f} s behind ({doc})"
    [rec] = em.list_runs(run_parent)
    steps = [p["step"] for p in rec.metrics(name="loss")]
    assert steps == list(range(len(steps)))  # nothing torn, nothing twice
