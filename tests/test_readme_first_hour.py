"""The README's first hour, run as a newcomer would: its marked blocks, as written, in order.

The README marks the blocks of its walk-through with HTML comments (invisible when rendered):
``<!-- first-hour: file NAME -->`` (save the block as NAME), ``<!-- first-hour: run -->`` (run it
in bash, it must succeed) and ``<!-- first-hour: server -->`` (run it in another terminal: it
serves until stopped). The only change made to them is the port: the server gets a free one
instead of 8000, so the test can't collide with anything else on the machine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO, python_env
from tests.server.harness import free_port

BLOCK = re.compile(r"<!-- first-hour: (?P<kind>file (?P<file>\S+)|run|server) -->\n```\w*\n(?P<body>.*?)```", re.S)


def readme_blocks() -> list[tuple[str, str | None, str]]:
    """(kind, file name, body) of every marked block, in the README's order."""
    text = (REPO / "README.md").read_text()
    return [(m["kind"].split()[0], m["file"], m["body"]) for m in BLOCK.finditer(text)]


def test_the_readme_marks_a_complete_walk_through() -> None:
    kinds = [kind for kind, _, _ in readme_blocks()]
    assert kinds[0] == "file" and "server" in kinds and kinds.count("run") >= 2, kinds


def test_the_readme_first_hour_runs_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    port = free_port()
    work = tmp_path / "work"
    work.mkdir()
    env = python_env(PATH=str(Path(PYTHON).parent) + os.pathsep + os.environ["PATH"])
    for var in ("EM_RUN_PARENT_DIR", "EM_ARTIFACT_PARENT_DIR"):  # the README's defaults: ./.em/ of the cwd
        env.pop(var)

    def as_written(body: str) -> str:
        return body.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("em server start", f"em server start --port {port}")

    server: subprocess.Popen[str] | None = None
    try:
        for kind, name, body in readme_blocks():
            if kind == "file":
                (work / str(name)).write_text(body)
            elif kind == "server":
                server = subprocess.Popen(["bash", "-c", "exec " + as_written(body).split("#")[0].strip()],
                                          cwd=work, env=env, stdout=subprocess.PIPE, text=True, start_new_session=True)
                assert server.stdout is not None
                ready = server.stdout.readline()  # the server prints its address once it accepts connections
                assert f"listening on http://127.0.0.1:{port}" in ready, ready
            else:
                done = subprocess.run(["bash", "-euo", "pipefail", "-c", as_written(body)], cwd=work, env=env,
                                      capture_output=True, text=True, timeout=240)
                assert done.returncode == 0, f"README block failed:\n{body}\n{done.stdout}\n{done.stderr}"
        assert server is not None
        # What the README says the user then sees: folder `quickstart` with both runs, the 2-rank one whole.
        check = subprocess.run(
            [PYTHON, "-c", (
                "import em_dist as em\n"
                "c = em.Client()\n"
                "runs = c.runs('quickstart')\n"
                "print(len(runs))\n"
                "for r in runs:\n"
                "    rec = c.run(r['id'])\n"
                "    print(rec.status, rec.world['size'], sorted(rec.ranks()), len(rec.metrics(type='train', name='loss')))\n"
            )], cwd=work, env=env, capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr
        lines = check.stdout.split("\n")
        assert lines[0] == "2"
        assert sorted(lines[1:3]) == ["Succeeded 1 [0] 200", "Succeeded 2 [0, 1] 400"], check.stdout
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
