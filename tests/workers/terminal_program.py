"""A training script on a terminal, for the pseudo-terminal capture tests (tests/test_capture_tty.py).

``terminal_program.py <mode> <result-file>``: makes a run, does what ``mode`` says, finishes, and
writes the run folder's path and what the test checks to the result file as JSON.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import time


class Items:
    """A map-style dataset whose workers print one line per item (as users' datasets do)."""

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int) -> int:
        print(f"worker {os.getpid()} item {i}")  # no flush: a worker on a terminal is line-buffered
        return i


SEEN: dict = {}
"""What a pdb session typed at the terminal set (its statements run in a frame of this module)."""


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def logged(run, text: str) -> bool:
    import em_dist as em

    return any(text in line["text"] for line in em.load_run(run.path).logs())


def main(mode: str, result: str) -> None:
    import em_dist as em
    from em_dist import capture

    facts: dict = {}
    if mode == "terminal":
        import rich.console
        from tqdm import tqdm

        run = em.create_run(name="tty")
        facts.update(isatty=[sys.stdout.isatty(), sys.stderr.isatty(), os.isatty(1), os.isatty(2)],
                     shutil_size=list(shutil.get_terminal_size()), os_size=list(os.get_terminal_size(1)),
                     rich_terminal=rich.console.Console().is_terminal)
        print("\x1b[32mgreen\x1b[0m" if sys.stdout.isatty() else "plain")
        for _ in tqdm(range(3), disable=None, desc="bar", mininterval=0):
            pass
        first = os.get_terminal_size(1)
        print("resize me")
        wait_until(lambda: os.get_terminal_size(1) != first)
        facts["resized"] = list(os.get_terminal_size(1))
    elif mode == "input":
        import readline  # noqa: F401  (what pdb and an interactive prompt use)

        run = em.create_run(name="tty")
        facts["typed"] = input("type> ")
    elif mode == "pdb":
        import pdb

        run = em.create_run(name="tty")
        pdb.Pdb().runcall(lambda: None)
        facts["pdb"] = SEEN.get("x")
    elif mode == "order":
        logging.basicConfig(level=logging.INFO, format="%(message)s")  # to stderr
        log = logging.getLogger("order")
        run = em.create_run(name="tty")
        for i in range(1200):
            print(f"print line {2 * i:04d}")
            log.info("logging line %04d", 2 * i + 1)
    elif mode == "children":
        run = em.create_run(name="tty", flush_interval=0.1)
        child = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdout.isatty(), sys.stdout.line_buffering)"],
                               capture_output=True, text=True, stdin=subprocess.DEVNULL)
        facts["pipe_child"] = child.stdout.split()  # a pipe the script made itself stays a pipe
        proc = subprocess.Popen([sys.executable, "-c", "import sys; print('child on the terminal', sys.stdout.isatty()); "
                                 "sys.stdin.read()"], stdin=subprocess.PIPE)
        facts["live"] = wait_until(lambda: logged(run, "child on the terminal True"))  # before the child ends
        proc.stdin.close()
        proc.wait()
    elif mode == "workers":  # what a DataLoader with spawn and persistent_workers=True does, without torch's import
        import multiprocessing

        run = em.create_run(name="tty", flush_interval=0.1)
        with multiprocessing.get_context("spawn").Pool(2) as pool:  # workers that live for both "epochs"
            for _epoch in range(2):
                pool.map(Items().__getitem__, range(12), chunksize=3)
            facts["live"] = wait_until(lambda: logged(run, "item 11"), 30)  # while the workers live on
            pool.terminate()  # as a DataLoader ends its workers: their buffers are never flushed at exit
    elif mode == "wait":
        run = em.create_run(name="tty")
        subprocess.Popen(["true"])
        reaped = 0
        while True:  # reap every child until there are none (a pass-through child would hang this)
            try:
                os.wait()
                reaped += 1
            except ChildProcessError:
                break
        facts["reaped"] = reaped
        with open(f"/proc/{capture.passthrough_pid()}/stat") as f:
            facts["passthrough_parent"] = int(f.read().rsplit(")", 1)[1].split()[1])
        facts["me"] = os.getpid()
    elif mode in ("exit", "exit_now"):
        run = em.create_run(name="tty")
        print("bye")
    else:
        raise SystemExit(f"unknown mode {mode}")
    facts["passthrough"] = capture.passthrough_pid()
    facts["run"] = str(run.path)
    if mode == "exit":  # ends as most scripts do: the run finishes at interpreter exit
        _write(result, facts)
        return
    run.finish()
    if mode == "exit_now":
        facts["alive_after_finish"] = _alive(facts["passthrough"])
    _write(result, facts)
    if mode == "exit_now":  # as scripts that skip the interpreter's teardown (os._exit after training) do
        os._exit(0)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def _write(result: str, facts: dict) -> None:
    with open(result, "w") as f:
        json.dump(facts, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
