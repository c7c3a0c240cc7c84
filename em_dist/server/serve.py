"""Run the server on uvicorn and announce the bound address (``--port 0`` picks a free port)."""

from __future__ import annotations

import socket
import sys

import uvicorn

from em_dist.server.app import create_app
from em_dist.server.config import ServerConfig

READY_LINE = "em server listening on http://{host}:{port}"


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8000, log_level: str = "warning") -> None:
    """Migrate, bind, print ``em server listening on http://HOST:PORT`` (flushed), serve until stopped."""
    app = create_app(config)
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it keep-alive requests stall ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, timeout_keep_alive=30))
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(READY_LINE.format(host=shown, port=bound) + "\n")
    sys.stdout.flush()
    server.run(sockets=[sock])
