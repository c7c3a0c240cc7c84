"""Serve the whole server (API and console) under a path prefix: ``em server start --root-path /t9k/experiment/server``.

Deployments put the server behind a gateway at ``https://host/<prefix>``; clients are told that
address (``em login -H https://host/t9k/experiment/server``). Whether or not the gateway strips the
prefix, this ASGI middleware answers both: a request under the prefix is routed with the prefix
removed (and ``root_path`` set, so generated URLs keep it), and the bare prefix redirects to
``<prefix>/`` so the console's relative URLs resolve under it. Anything else is 404.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def normalize_root_path(value: str | None) -> str:
    """``/a/b`` from ``a/b``, ``/a/b/`` or ``/a/b``; ``""`` for none or ``/``."""
    if not value:
        return ""
    parts = [p for p in value.strip().split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise ValueError(f"root path {value!r} must not contain '.' or '..'")
    return "/" + "/".join(parts) if parts else ""


class BasePath:
    """Route requests under ``prefix`` as if it were absent; requests at the app's root (a gateway that
    strips the prefix) pass through unchanged."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = normalize_root_path(prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not self.prefix:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == self.prefix and scope["type"] == "http":
            query = scope.get("query_string") or b""
            location = self.prefix + "/" + ("?" + query.decode("latin-1") if query else "")
            await send({"type": "http.response.start", "status": 307,
                        "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if path.startswith(self.prefix + "/"):
            inner = path[len(self.prefix):]
            scope = dict(scope, path=inner, raw_path=inner.encode("latin-1"), root_path=self.prefix)
        await self.app(scope, receive, send)
