"""Run the server on uvicorn and announce the bound address (``--port 0`` picks a free port).

With ``workers > 1`` the parent migrates the database, binds the socket and starts that
many uvicorn worker processes sharing it (uvicorn's supervisor restarts a dead one); each
worker builds its app from the config the parent put in ``EM_SERVER_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from em_dist.limits import MAX_REQUEST_HEAD_BYTES
from em_dist.server import migrate
from em_dist.server.app import create_app
from em_dist.server.config import ServerConfig

READY_LINE = "em server listening on http://{host}:{port}"
_CONFIG_ENV = "EM_SERVER_CONFIG"


class WorkersError(ValueError):
    """Several worker processes were asked for on a database that cannot take them."""


def check_workers(config: ServerConfig, workers: int) -> None:
    """Refuse ``workers < 1``, and ``workers > 1`` on SQLite: its one file lock serializes every
    write, so more processes add lock waits, not throughput (run PostgreSQL for that)."""
    if workers < 1:
        raise WorkersError(f"--workers must be at least 1, not {workers}")
    if workers > 1 and config.database_url.startswith("sqlite"):
        raise WorkersError("--workers > 1 needs PostgreSQL (--db postgresql://...): SQLite takes one writer at a "
                           "time, so several server processes would only queue on its lock")


def app_from_env() -> FastAPI:
    """The app of one worker process (uvicorn factory; the parent already migrated)."""
    fields = json.loads(os.environ[_CONFIG_ENV])
    fields["data_dir"] = Path(fields["data_dir"])
    return create_app(ServerConfig(**fields), run_migrations=False)


def _bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it keep-alive requests stall ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning",
          workers: int = 1) -> None:
    """Migrate, bind, print ``em server listening on http://HOST:PORT`` (flushed), serve until stopped."""
    check_workers(config, workers)
    if workers == 1:
        app = create_app(config)
    else:
        migrate.upgrade(config)
        os.environ[_CONFIG_ENV] = json.dumps({k: str(v) if isinstance(v, Path) else v
                                              for k, v in dataclasses.asdict(config).items()})
    sock = _bind(host, port)
    shown = f"[{host}]" if ":" in host else host
    ready = READY_LINE.format(host=shown, port=sock.getsockname()[1]) + "\n"
    if workers == 1:
        server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_keep_alive=30,
                                               h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES))
        sys.stdout.write(ready)
        sys.stdout.flush()
        server.run(sockets=[sock])
        return
    from uvicorn.supervisors import Multiprocess

    uv_config = uvicorn.Config("em_dist.server.serve:app_from_env", factory=True, workers=workers,
                               log_level=log_level, timeout_keep_alive=30,
                               h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES)
    sys.stdout.write(ready)  # the socket listens already: connections queue until a worker accepts
    sys.stdout.flush()
    Multiprocess(uv_config, sockets=[sock]).run()
