"""The README's demo: a 2-rank torchrun training job tracked by em_dist, uploaded to a local server.

Steps: start `em server` on 127.0.0.1 (embedded SQLite under .em/demo/server), add a user,
run examples/ddp/train_mnist_ddp.py under torchrun with 2 ranks (gloo on CPU), which logs
every rank's metrics into one Run and uploads it; show the run; print the console address
and keep the server up until Ctrl-C (`--no-wait` stops it instead, for scripts and tests).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EM = [sys.executable, "-m", "em_dist.cli.main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8080, help="console/server port (a free one is used if taken)")
    ap.add_argument("--nproc", type=int, default=2, help="ranks to launch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--workdir", default=str(REPO / ".em" / "demo"))
    ap.add_argument("--no-wait", action="store_true", help="stop the server at the end instead of serving the console")
    args = ap.parse_args(argv)

    work = Path(args.workdir).resolve()
    data_dir = work / "server"
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", EM_RUN_PARENT_DIR=str(work / "runs"), EM_ARTIFACT_PARENT_DIR=str(work / "artifacts"))

    port = args.port if _port_free(args.port) else 0
    server = subprocess.Popen(
        [*EM, "server", "start", "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        url = _wait_ready(server)
        key = _api_key(data_dir, env)
        _step(f"server up at {url}; training with torchrun --nproc_per_node {args.nproc}")
        subprocess.run(
            [
                sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
                str(REPO / "examples/ddp/train_mnist_ddp.py"), "--epochs", str(args.epochs),
                "--upload", "--host", url, "--api-key", key,
            ],
            cwd=work, env=env, check=True, timeout=900,
        )
        latest = max((work / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
        subprocess.run([*EM, "run", "show", str(latest)], env=env, check=True)
        print()
        print(f"Console:  {url}/")
        print(f"API key:  {key}   (sign in with it; the run is in folder 'em-examples')")
        if args.no_wait:
            return 0
        print("Serving until Ctrl-C ...", flush=True)
        server.wait()
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_ready(server: subprocess.Popen) -> str:
    for line in server.stdout:
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            return m.group(1)
    raise SystemExit(f"the server did not start (exit code {server.wait()})")


def _api_key(data_dir: Path, env: dict) -> str:
    """A key for user 'demo': made on the first run, a fresh one on later runs."""
    for cmd in (["user", "add", "demo"], ["key", "create", "demo"]):
        out = subprocess.run([*EM, "server", *cmd, "--data-dir", str(data_dir)], capture_output=True, text=True, env=env)
        if out.returncode == 0:
            return out.stdout.strip().splitlines()[-1]
    raise SystemExit(f"could not create an API key: {out.stderr.strip()}")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _step(msg: str) -> None:
    print(f"== {msg}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
