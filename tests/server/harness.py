"""Real servers and real databases for tests: a PostgreSQL cluster in a temp dir, and
``em server start --port 0`` as a subprocess. Imported by the conftest files."""

from __future__ import annotations

import glob
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import PYTHON, python_env

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def em_cli(*args: str, timeout: float = 60, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m em_dist.cli.main ARGS`` and return the finished process."""
    proc = subprocess.run([PYTHON, "-m", "em_dist.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or python_env())
    if check and proc.returncode != 0:
        raise AssertionError(f"em {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc


@dataclass
class ServerProcess:
    """One ``em server start`` subprocess on 127.0.0.1."""

    data_dir: Path
    db_url: str | None
    port: int = 0
    proc: subprocess.Popen | None = None
    url: str = ""
    keys: dict[str, str] = field(default_factory=dict)
    blobs: str | None = None
    workers: int = 1
    env: dict[str, str] = field(default_factory=dict)

    def store_args(self) -> list[str]:
        return (["--data-dir", str(self.data_dir)] + (["--db", self.db_url] if self.db_url else [])
                + (["--blobs", self.blobs] if self.blobs else []))

    def start(self) -> "ServerProcess":
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "em_dist.cli.main", "server", "start", "--port", str(self.port), "--workers",
             str(self.workers), *self.store_args()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**python_env(), **self.env},
        )
        deadline, seen = time.monotonic() + START_TIMEOUT_S, b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                seen += line
                if line.startswith(b"em server listening on "):
                    self.url = line.split()[-1].decode()
                    self.port = int(self.url.rsplit(":", 1)[1])
                    return self
                if not line and self.proc.poll() is not None:
                    break
        self.stop()
        raise AssertionError(f"server did not start: {seen.decode(errors='replace')}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def add_user(self, name: str | None = None, *, via_cli: bool = False) -> tuple[str, str]:
        """A new user (unique name by default) and their API key.

        ``via_cli`` goes through ``em server user add`` (2 s of imports); otherwise the
        same admin function is called in this process against the server's database.
        """
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        if via_cli:
            key = em_cli("server", "user", "add", name, *self.store_args()).stdout.strip()
        else:
            from em_dist.server import admin
            from em_dist.server.config import ServerConfig
            from em_dist.server.db import open_database

            db = open_database(ServerConfig.build(self.data_dir, self.db_url))
            try:
                key = admin.add_user(db, name)
            finally:
                db.dispose()
        self.keys[name] = key
        return name, key


@dataclass
class PgCluster:
    """A private PostgreSQL cluster (trust auth on 127.0.0.1)."""

    bindir: Path
    root: Path
    port: int

    def _as_postgres(self, *cmd: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + list(cmd)

    def start(self) -> None:
        data = self.root / "data"
        subprocess.run(self._as_postgres(str(self.bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                                         "--no-sync", "-E", "UTF8"), check=True, capture_output=True, timeout=120)
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l",
                                         str(self.root / "log"), "-w", "-t", "60", "start"),
                       check=True, capture_output=True, timeout=90)

    def stop(self) -> None:
        subprocess.run(self._as_postgres(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                                         "-w", "stop"), capture_output=True, timeout=60)

    def create_database(self) -> str:
        import psycopg

        name = f"em_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


def find_pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster for the whole session; skipped without binaries, except under CI."""
    bindir = find_pg_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL binaries (initdb, pg_ctl) not found, and CI is set: install postgresql")
        pytest.skip("PostgreSQL binaries not found (apt install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="em-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    cluster = PgCluster(bindir, root, free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


def database_url(kind: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite, or a fresh PostgreSQL database."""
    if kind == "sqlite":
        return None
    return request.getfixturevalue("pg_cluster").create_database()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """A running server per module and database kind; tests isolate by using fresh users."""
    srv = ServerProcess(tmp_path_factory.mktemp("server"), database_url(request.param, request)).start()
    srv.kind = request.param  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def fresh_server(request: pytest.FixtureRequest, tmp_path: Path):
    """A server of its own for one test (SQLite unless the test is parametrized with ``db``)."""
    kind = getattr(request, "param", "sqlite")
    srv = ServerProcess(tmp_path / "server", database_url(kind, request)).start()
    try:
        yield srv
    finally:
        srv.stop()




def run_async(func, *args):
    """``anyio.run(func, *args)`` on a thread of its own: a test process that drove a page with
    Playwright's sync API keeps an event loop marked running on the main thread."""
    from concurrent.futures import ThreadPoolExecutor

    import anyio

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, func, *args).result()
