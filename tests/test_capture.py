"""Captured output (em_dist.capture): real processes print; their run folders hold what they printed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import em_dist as em
from em_dist.store.lines import dropped_bytes, parse_output_line
from em_dist.store.logs import log_file
from tests.poll import wait_for

PRINTER = Path(__file__).parent / "workers" / "printer.py"
REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "TORCHELASTIC", "EM_"))}
    env.update(EM_RUN_PARENT_DIR=str(tmp_path / "runs"), PYTHONPATH=str(REPO), **extra)
    return env


def _printer(tmp_path: Path, mode: str, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    result = tmp_path / "result"
    proc = subprocess.run([sys.executable, str(PRINTER), mode, str(result), *args], env=_env(tmp_path, **env),
                          capture_output=True, timeout=120)
    return proc, result


def _lines(run_dir: Path, rank: int = 0) -> list[dict]:
    return [parse_output_line(line) for line in log_file(run_dir, rank).read_text().splitlines(keepends=True)]


def test_prints_fd_writes_and_subprocesses_are_shown_and_recorded(tmp_path: Path) -> None:
    proc, result = _printer(tmp_path, "basic")
    assert proc.returncode == 0, proc.stderr
    # still shown as before
    assert b"hello from print\nraw write to fd 1\nfrom a C-level child\n" in proc.stdout
    assert b"stderr \xff\xfe not utf-8\n" in proc.stderr and b"after finish" in proc.stdout
    lines = _lines(Path(result.read_text()))
    assert all(line is not None for line in lines)
    got = [(line["stream"], line["text"]) for line in lines]
    assert got == [
        ("out", "hello from print"),
        ("out", "raw write to fd 1"),
        ("err", "stderr \\xff\\xfe not utf-8"),
        ("out", "from a C-level child"),
        ("err", "child stderr"),
        ("out", "tab\there"),
        ("out", "progress 100%"),
        ("out", "no newline yet"),
    ] or sorted(got) == sorted([  # stdout and stderr are two pipes: their order between them may differ
        ("out", "hello from print"), ("out", "raw write to fd 1"), ("err", "stderr \\xff\\xfe not utf-8"),
        ("out", "from a C-level child"), ("err", "child stderr"), ("out", "tab\there"),
        ("out", "progress 100%"), ("out", "no newline yet"),
    ])
    assert all(abs(line["time"] - time.time()) < 600 for line in lines)
    # the metrics file holds the metric only; a second run of the same process captures its own lines
    run = em.load_run(result.read_text())
    assert [p["name"] for p in run.metrics()] == ["loss"]
    assert [line["text"] for line in _lines(Path((tmp_path / "result.2").read_text()))] == ["second run line"]
    # read back through the run record
    assert [(x["rank"], x["text"]) for x in run.logs(rank=0, tail=1)] == [(0, "no newline yet")]  # a partial: last
    assert sorted(x["text"] for x in run.logs()) == sorted(line["text"] for line in lines)
    assert run.logs(rank=3) == []


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_capture_output_off(tmp_path: Path, how: str) -> None:
    if how == "argument":
        proc, result = _printer(tmp_path, "off")
    else:
        proc, result = _printer(tmp_path, "off", "env", EM_CAPTURE_OUTPUT="0")
    assert proc.returncode == 0, proc.stderr
    assert b"not recorded" in proc.stdout
    assert not log_file(Path(result.read_text()), 0).exists()


def test_lines_older_than_the_flush_interval_survive_kill_9(tmp_path: Path) -> None:
    result = tmp_path / "result"
    proc = subprocess.Popen([sys.executable, str(PRINTER), "kill", str(result)], env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = tmp_path / "result.times"
    try:
        def printed() -> list[tuple[int, float]]:
            try:
                rows = [line.split() for line in times.read_text().splitlines()]
            except FileNotFoundError:
                return []
            return [(int(i), float(t)) for i, t in rows if t]

        wait_for(lambda: len(printed()) > 1 and printed()[-1][1] - printed()[0][1] > 3.0, 60, "3 s of printing")
        killed_at = time.time()
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    old = [i for i, t in printed() if t < killed_at - 2.0]  # flush interval 0.2 s: ten of them, for a busy machine
    assert len(old) > 50
    text = log_file(Path(result.read_text()), 0).read_text()
    assert text.endswith("\n")
    kept = [line["text"] for line in _lines(Path(result.read_text()))]
    assert kept[:len(old)] == [f"line {i}" for i in old]


def test_what_was_printed_just_before_kill_9_is_still_shown(tmp_path: Path) -> None:
    proc, _ = _printer(tmp_path, "die")
    assert proc.returncode == -9
    assert proc.stdout == b"last words\n"  # the pass-through process outlived the script


def test_output_is_bounded_newest_kept_with_a_marker(tmp_path: Path) -> None:
    proc, result = _printer(tmp_path, "bound", EM_LOG_MAX_BYTES="4096")
    assert proc.returncode == 0, proc.stderr
    path = log_file(Path(result.read_text()), 0)
    raw = path.read_text()
    first, rest = raw.split("\n", 1)
    dropped = dropped_bytes(first + "\n")
    assert dropped is not None and len(raw.encode()) <= 4096 + len(first) + 1
    texts = [line["text"] for line in _lines(Path(result.read_text()))[1:]]
    assert texts[-1] == "line 0399 " + "x" * 40
    start = int(texts[0].split()[1])
    assert texts == [f"line {i:04d} " + "x" * 40 for i in range(start, 400)]  # newest, whole lines, none missing
    line_bytes = len(rest.encode()) // len(texts)
    assert dropped == start * line_bytes  # every line has the same length: the count is exact


def test_a_fork_child_gets_the_terminal_back_and_the_parent_keeps_capturing(tmp_path: Path) -> None:
    proc, result = _printer(tmp_path, "fork")
    assert proc.returncode == 0, proc.stderr
    assert b"from the fork child\n" in proc.stdout
    assert [line["text"] for line in _lines(Path(result.read_text()))] == ["before fork", "after fork"]


def test_two_live_runs_in_one_process_each_record_what_was_printed_while_they_lived(tmp_path: Path) -> None:
    proc, result = _printer(tmp_path, "nested")
    assert proc.returncode == 0, proc.stderr
    assert [line["text"] for line in _lines(Path(result.read_text()))] == ["first only", "both", "first again"]
    assert [line["text"] for line in _lines(Path((tmp_path / "result.2").read_text()))] == ["both"]


def test_a_crash_leaves_the_traceback_in_the_log(tmp_path: Path) -> None:
    proc, result = _printer(tmp_path, "crash")
    assert proc.returncode == 1 and b"RuntimeError: boom" in proc.stderr
    runs = list((tmp_path / "runs").iterdir())
    texts = [line["text"] for line in _lines(runs[0])]
    assert texts[0] == "about to fail" and texts[-1] == "RuntimeError: boom"
    assert em.load_run(runs[0]).status == "Failed"


def test_a_bad_log_limit_is_refused_at_create_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_LOG_MAX_BYTES", "lots")
    with pytest.raises(ValueError, match="EM_LOG_MAX_BYTES"):
        em.create_run(name="x", capture_output=True)  # asked for: pytest's own capture turns the default off
    with pytest.raises(TypeError, match="capture_output"):
        em.create_run(name="x", capture_output="yes")  # type: ignore[arg-type]


_FLOOD = """
import sys, em_dist as em
run = em.create_run(name="flood", max_pending=100, max_output=50, flush_interval=60)
for i in range(60):
    run.log("train", {"loss": i}, step=i)
for i in range(200):
    print(f"flood {i:03d}", flush=True)
for i in range(60, 100):
    run.log("train", {"loss": i}, step=i)
run.finish()
print(run.path, file=sys.stderr)
"""


def test_captured_output_has_its_own_bound_counted_and_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A flood of prints while 50 records wait (``max_output=50``) drops lines past that bound, counts
    them in run.json's ``dropped`` with one warning and ``em run show``, and never evicts a metric
    record (they used to share ``max_pending``: 200 lines pushed out the oldest metrics)."""
    from em_dist.cli.main import main as cli_main

    proc = subprocess.run([sys.executable, "-c", _FLOOD], env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("flood ") == 200  # the terminal showed every line
    run_dir = Path(proc.stderr.strip().splitlines()[-1])
    rec = em.load_run(run_dir)
    assert [p["step"] for p in rec.metrics(name="loss")] == list(range(100))  # no metric evicted by output
    logged = _lines(run_dir) if log_file(run_dir, 0).exists() else []  # none at all when every line dropped
    kept = [line["text"] for line in logged if line["text"].startswith("flood ")]
    dropped = rec.dropped["0"]["output_lines"]
    assert dropped > 0 and rec.dropped["0"]["records"] == 0
    assert len(kept) + dropped == 200, (len(kept), dropped)
    assert "further captured output lines are dropped" in proc.stderr
    assert cli_main(["run", "show", str(run_dir)]) == 0
    assert f"dropped    rank 0: 0 records, {dropped} output lines" in capsys.readouterr().out


def test_a_bad_max_output_is_refused_at_create_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_output"):
        em.create_run(name="x", max_output=0)
    with pytest.raises(TypeError, match="max_output"):
        em.create_run(name="x", max_output="5")  # type: ignore[arg-type]


@pytest.mark.parametrize("asked", [None, "1"])
def test_a_repl_session_keeps_its_prompts_out_of_the_runs_logs(tmp_path: Path, asked: str | None) -> None:
    """``python -i``: the REPL writes its prompts to stderr; they are the terminal's, not the run's output.
    Capture is off in an interactive session unless asked for (``EM_CAPTURE_OUTPUT=1``)."""
    session = ("import em_dist as em\n"
               "run = em.create_run(name='repl')\n"
               "print('from the user')\n"
               "run.finish()\n"
               "print('PATH=' + str(run.path))\n")
    extra = {"EM_CAPTURE_OUTPUT": asked} if asked else {}
    proc = subprocess.run([sys.executable, "-i"], input=session.encode(), env=_env(tmp_path, **extra),
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert b">>> " in proc.stderr  # the prompts were shown
    run_dir = Path(proc.stdout.decode().split("PATH=")[1].split()[0])
    if asked is None:
        assert not log_file(run_dir, 0).exists()
    else:
        assert "from the user" in [line["text"] for line in _lines(run_dir)]
