"""The local console: the server's console over the run folders of a working directory.

``em console -d .em`` starts the ordinary server app on a temporary data directory,
creates a local user, uploads the local runs into it with the real upload client and
keeps re-syncing changed runs every few seconds (so live runs update), and signs every
visitor in automatically. The browser sees exactly the REST API a real server offers;
the run folders themselves are only read.
"""

from __future__ import annotations

import time
import logging
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from em_dist.limits import MAX_REQUEST_HEAD_BYTES

from em_dist.store import layout
from em_dist.store.files import read_json

log = logging.getLogger(__name__)
DEFAULT_SYNC_INTERVAL_S = 2.0
LIVE_RESYNC_S = 15.0  # a live run is re-read at least this often, so a crash shows as Failed
LOCAL_USER = "local"


RUN_PARENTS = ("runs", "trials", ".em/runs", ".aimd/trials")
"""Where run folders live under a console root: an ``.em`` folder keeps them in ``runs/``, the
older ``aimd`` layout (``create_trial``) in ``.aimd/trials/``; ``em console -d .`` finds both."""


def find_run_dirs(root: Path) -> list[Path]:
    """Run folders under ``root``: in any of :data:`RUN_PARENTS`, else ``root/*``, or ``root`` itself."""
    if (root / layout.RUN_FILE).is_file():
        return [root]
    parents = [root / sub for sub in RUN_PARENTS if (root / sub).is_dir()] or [root]
    found = {p for parent in parents if parent.is_dir() for p in parent.iterdir() if (p / layout.RUN_FILE).is_file()}
    return sorted(found)


def _signature(run_dir: Path) -> tuple:
    """What changes when a run records something: sizes and mtimes of its files."""
    parts: list[tuple[str, int | None, int | None]] = []
    for name in (layout.RUN_FILE, layout.HPARAMS_FILE, layout.PLATFORM_FILE, layout.ARTIFACTS_FILE, layout.GIT_FILE):
        try:
            st = (run_dir / name).stat()
            parts.append((name, st.st_size, st.st_mtime_ns))
        except OSError:
            parts.append((name, None, None))
    metrics = run_dir / layout.METRICS_DIR
    if metrics.is_dir():
        for p in sorted(metrics.glob("rank-*.jsonl")):
            try:
                parts.append((p.name, p.stat().st_size, None))
            except OSError:
                continue
    return tuple(parts)


@dataclass
class RunSync:
    """Uploads changed local runs to the local server; one pass at a time, never raising."""

    root: Path
    host: str
    api_key: str
    synced: dict[Path, tuple] = field(default_factory=dict)
    live_since: dict[Path, float] = field(default_factory=dict)
    failures: dict[Path, str] = field(default_factory=dict)

    def sync_once(self, now: float) -> int:
        """Upload every run folder that changed since the last pass; returns how many were sent."""
        from em_dist.client.upload import upload_run

        sent = 0
        for run_dir in find_run_dirs(self.root):
            sig = _signature(run_dir)
            stale_live = run_dir in self.live_since and now - self.live_since[run_dir] >= LIVE_RESYNC_S
            if self.synced.get(run_dir) == sig and not stale_live:
                continue
            meta = read_json(run_dir / layout.RUN_FILE, {}) or {}
            try:
                upload_run(run_dir, folder=meta.get("folder") or "default", make_folder=True,
                           conflict_strategy="new", host=self.host, api_key=self.api_key, record=False)
            except Exception as exc:  # noqa: BLE001 - one broken folder must not stop the console
                if self.failures.get(run_dir) != str(exc):
                    log.warning("em console: cannot show %s: %s", run_dir, exc)
                self.failures[run_dir] = str(exc)
                continue
            self.failures.pop(run_dir, None)
            self.synced[run_dir] = sig
            sent += 1
            if meta.get("status") in ("Initializing", "Running"):
                self.live_since[run_dir] = now
            else:
                self.live_since.pop(run_dir, None)
        return sent


class LocalConsole:
    """A console server over ``root`` (an ``.em`` folder or a folder of runs) on ``host:port``."""

    def __init__(self, root: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 sync_interval: float = DEFAULT_SYNC_INTERVAL_S) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.exists():
            raise FileNotFoundError(f"no such folder: {self.root}")
        self.host, self.port, self.sync_interval = host, port, sync_interval
        self._data_dir = Path(tempfile.mkdtemp(prefix="em-console-"))
        self._stop = threading.Event()
        self._server: Any = None  # the uvicorn.Server while serving (uvicorn is imported late)
        self.url = ""

    def serve(self, on_ready: Callable[[str], None] | None = None) -> None:
        """Serve until interrupted; ``on_ready(url)`` is called once the first sync is done."""
        import uvicorn

        from em_dist.server.console.mount import mount_console
        from em_dist.server import admin
        from em_dist.server.app import create_app
        from em_dist.server.config import ServerConfig
        from em_dist.server.headers import loopback_hosts

        try:
            app = create_app(ServerConfig.build(self._data_dir))
            key = admin.add_user(app.state.db, LOCAL_USER)
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            self.port = sock.getsockname()[1]
            # only the address it bound: a page on another name rebound to 127.0.0.1 gets 421
            mount_console(app, auto_session_key=key, allowed_hosts=loopback_hosts(self.host, self.port))
            shown = f"[{self.host}]" if ":" in self.host else self.host
            self.url = f"http://{shown}:{self.port}"
            server = uvicorn.Server(uvicorn.Config(app, log_level="warning",
                                                   h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES))
            self._server = server
            sync = RunSync(self.root, self.url, key)

            def loop() -> None:
                while not server.started and not self._stop.is_set():
                    self._stop.wait(0.02)
                sync.sync_once(time.monotonic())
                if on_ready is not None:
                    on_ready(self.url + "/")
                while not self._stop.wait(self.sync_interval):
                    sync.sync_once(time.monotonic())

            thread = threading.Thread(target=loop, name="em-console-sync", daemon=True)
            thread.start()
            server.run(sockets=[sock])
        finally:
            self._stop.set()
            shutil.rmtree(self._data_dir, ignore_errors=True)

    def stop(self) -> None:
        """Ask a serving console to stop (from another thread)."""
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
