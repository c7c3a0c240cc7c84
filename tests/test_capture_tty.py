"""Captured output on a real terminal: a program under em_dist can't tell its output is captured.

Each test runs a script (tests/workers/terminal_program.py) on a real pseudo-terminal that is
its controlling terminal (``setsid -c``), as a user at a terminal would, and reads what the
terminal shows from the pseudo-terminal's master side.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

import em_dist as em
from tests.poll import wait_for

PROGRAM = Path(__file__).parent / "workers" / "terminal_program.py"
REPO = Path(__file__).resolve().parents[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_", "TORCHELASTIC", "EM_", "PYTEST_"))
           and k not in ("NO_COLOR", "COLUMNS", "LINES", "PYTHONUNBUFFERED")}
    env.update(EM_RUN_PARENT_DIR=str(tmp_path / "runs"), PYTHONPATH=str(REPO), TERM="xterm-256color", **extra)
    for name in ("NO_COLOR", "COLUMNS", "LINES"):
        env.pop(name, None)
    return env


class Terminal:
    """A pseudo-terminal with one program on it (its controlling terminal, its foreground job)."""

    def __init__(self, tmp_path: Path, mode: str, rows: int = 40, cols: int = 132, **env: str) -> None:
        self.master, slave = os.openpty()
        self.resize(rows, cols)
        self.result = tmp_path / f"{mode}.json"
        self.proc = subprocess.Popen(["setsid", "-c", sys.executable, str(PROGRAM), mode, str(self.result)],
                                     stdin=slave, stdout=slave, stderr=slave, env=_env(tmp_path, **env))
        os.close(slave)
        self.shown = bytearray()

    def resize(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(self, timeout: float) -> bool:
        """Read what the terminal shows for up to ``timeout`` s; False once the program side closed."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self.master, 1 << 16)
        except OSError:  # EIO: nobody holds the terminal's other side any more
            data = b""
        self.shown += data
        return bool(data)

    def wait_shown(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.shown:
            assert time.monotonic() < deadline, f"{text!r} not shown; the terminal shows {bytes(self.shown)!r}"
            assert self.read(0.1) or text in self.shown, f"{text!r} never shown: {bytes(self.shown)!r}"

    def finish(self, timeout: float = 120) -> dict:
        """Read until every holder of the terminal closed it; the program's result."""
        deadline = time.monotonic() + timeout
        while self.read(1.0):
            assert time.monotonic() < deadline, f"still open; shown {bytes(self.shown)[-2000:]!r}"
        assert self.proc.wait(timeout) == 0, bytes(self.shown).decode(errors="replace")
        os.close(self.master)
        return json.loads(self.result.read_text())


def _texts(facts: dict) -> list[str]:
    return [line["text"] for line in em.load_run(facts["run"]).logs(rank=0)]


def test_a_program_on_a_terminal_still_sees_its_terminal_its_size_and_its_resize(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "terminal", rows=40, cols=132)
    term.wait_shown(b"resize me")
    term.resize(50, 100)  # the kernel sends SIGWINCH to the program's process group
    facts = term.finish()
    assert facts["isatty"] == [True, True, True, True]
    assert facts["shutil_size"] == [132, 40] and facts["os_size"] == [132, 40]
    assert facts["rich_terminal"] is True
    assert facts["resized"] == [100, 50]
    shown = bytes(term.shown)
    assert b"\x1b[32mgreen\x1b[0m" in shown  # colours reach the terminal as written
    bar = [part for part in shown.split(b"\r") if b"bar: 100%" in part][-1]
    assert len(bar.rstrip(b"\n")) > 100  # tqdm draws across the terminal's 132 columns (10 on a pipe)
    texts = _texts(facts)
    assert "green" in texts and "resize me" in texts  # recorded without the colour codes
    assert any(t.startswith("bar: 100%") for t in texts)
    assert not _alive(facts["passthrough"])


def test_input_keeps_line_editing(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "input")
    term.wait_shown(b"type> ")
    os.write(term.master, b"abc\x1b[DX\r")  # left arrow, then X: readline puts it before the c
    facts = term.finish()
    assert facts["typed"] == "abXc"


def test_pdb_keeps_its_history(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "pdb")
    term.wait_shown(b"(Pdb) ")
    os.write(term.master, b'!SEEN["x"] = 1\r')
    wait_for(lambda: term.read(0.1) and term.shown.count(b"(Pdb) ") >= 2, 60, "the second prompt")
    os.write(term.master, b"\x1b[A\x7f2\r")  # up arrow: the last command again; its 1 becomes 2
    wait_for(lambda: term.read(0.1) and term.shown.count(b"(Pdb) ") >= 3, 60, "the third prompt")
    os.write(term.master, b"c\r")
    facts = term.finish()
    assert facts["pdb"] == 2, bytes(term.shown)
    assert b"SyntaxError" not in term.shown


@pytest.mark.parametrize("where", ["terminal", "one pipe"])
def test_stdout_and_stderr_on_one_target_keep_their_order_and_no_line_is_torn(tmp_path: Path, where: str) -> None:
    if where == "terminal":
        term = Terminal(tmp_path, "order", PYTHONUNBUFFERED="1")
        facts = term.finish()
        shown = bytes(term.shown).decode().replace("\r\n", "\n").splitlines()
    else:  # 2>&1 into a pipe, as a launcher or `| tee` gives it
        result = tmp_path / "order.json"
        proc = subprocess.run([sys.executable, str(PROGRAM), "order", str(result)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env=_env(tmp_path, PYTHONUNBUFFERED="1"), timeout=120)
        assert proc.returncode == 0, proc.stdout[-2000:]
        facts, shown = json.loads(result.read_text()), proc.stdout.decode().splitlines()
    want = [f"{'print' if i % 2 == 0 else 'logging'} line {i:04d}" for i in range(2400)]
    assert [line for line in shown if " line " in line] == want
    assert [t for t in _texts(facts) if " line " in t] == want


def test_children_print_live_as_on_a_terminal(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "children")
    facts = term.finish()
    assert facts["live"] is True  # the child's line was in the run's log while it was still running
    assert facts["pipe_child"] == ["False", "False"]
    assert b"child on the terminal True" in term.shown


def test_spawned_persistent_workers_reach_the_terminal_and_the_log(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "workers")
    facts = term.finish()
    shown = [line for line in bytes(term.shown).decode().splitlines() if " item " in line]
    assert sorted(int(x.split()[-1]) for x in shown) == sorted(list(range(12)) * 2)
    assert facts["live"] is True
    assert sorted(int(t.split()[-1]) for t in _texts(facts) if " item " in t) == sorted(list(range(12)) * 2)


def test_a_script_that_reaps_every_child_does_not_hang_on_the_pass_through(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "wait")
    facts = term.finish(timeout=60)
    assert facts["reaped"] >= 1 and facts["passthrough_parent"] != facts["me"]


def test_the_pass_through_is_gone_when_the_script_is_in_20_of_20_exits(tmp_path: Path) -> None:
    ways = ("exit", "exit_now")  # finished at exit; finished, then os._exit(0) at once
    terms = []
    for i in range(4):
        (tmp_path / str(i)).mkdir()
        terms.append(Terminal(tmp_path / str(i), ways[i % 2]))
    procs = []
    for i in range(16):  # and on pipes, as under a launcher
        (tmp_path / f"p{i}").mkdir()
        procs.append(subprocess.Popen([sys.executable, str(PROGRAM), ways[i % 2], str(tmp_path / f"p{i}" / "r.json")],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(tmp_path / f"p{i}")))
    left, after_finish = [], []
    for term in terms:
        term.proc.wait(120)  # the moment the script is gone
        facts = json.loads(term.result.read_text())
        left.append(_alive(facts["passthrough"]))
        after_finish.append(facts.get("alive_after_finish", False))
        term.finish()
    for i, proc in enumerate(procs):
        proc.wait(120)
        facts = json.loads((tmp_path / f"p{i}" / "r.json").read_text())
        left.append(_alive(facts["passthrough"]))
        after_finish.append(facts.get("alive_after_finish", False))
        assert proc.stdout is not None and proc.stdout.read() == b"bye\n"
    assert left == [False] * 20
    assert after_finish == [False] * 20  # already gone when finish() returned


def _alive(pid: int) -> bool:
    assert pid > 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited (its reaper is init's)
    except FileNotFoundError:
        return False


def test_off_inside_pytests_own_capture_unless_asked(capfd: pytest.CaptureFixture[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    run = em.create_run(name="capfd")
    subprocess.run(["echo", "from a subprocess"], check=True)
    assert capfd.readouterr().out == "from a subprocess\n"  # pytest reads it at once: nothing in between
    run.finish()
    asked = em.create_run(name="capfd-asked", capture_output=True)
    subprocess.run(["echo", "recorded"], check=True)
    asked.finish()
    assert [x["text"] for x in em.load_run(asked.path).logs()] == ["recorded"]
    assert "recorded" in capfd.readouterr().out
