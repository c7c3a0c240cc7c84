"""Response security headers and the local console's ``Host`` check (plain ASGI middleware).

Every response carries ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: DENY``;
pages other than the interactive API docs also get a Content-Security-Policy that allows
only the console's own scripts (no inline script, no framing, no foreign connections).
The local console serves one machine: when ``app.state.console_allowed_hosts`` is set,
a request whose ``Host`` header is not one of them is refused with 421, so a page on
another origin that rebinds its DNS name to 127.0.0.1 cannot use the auto-session.
"""

from __future__ import annotations

import ipaddress
import json

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
_ANY_IP = "*"
_DOCS_PATHS = ("/docs", "/redoc")  # FastAPI's docs pages load their scripts from a CDN


class SecurityHeaders:
    """Add the security headers above to every HTTP response."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                 (b"referrer-policy", b"same-origin")]
        if not scope["path"].startswith(_DOCS_PATHS):
            extra.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))

        async def with_headers(message) -> None:  # type: ignore[no-untyped-def]
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message = {**message, "headers": [*message.get("headers", []),
                                                  *(h for h in extra if h[0] not in present)]}
            await send(message)

        await self.app(scope, receive, with_headers)


def loopback_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` values a console bound to ``host:port`` answers: that address, and for a
    loopback address also ``localhost`` and the other loopback spellings."""
    shown = f"[{host}]" if ":" in host else host
    names = {shown}
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        names |= {"localhost", "127.0.0.1", "[::1]"}
    if address is not None and address.is_unspecified:
        names.add(_ANY_IP)  # bound to every interface: any address literal, never a DNS name
    return frozenset(f"{name}:{port}" for name in names)


def _host_allowed(host: str, allowed: frozenset[str]) -> bool:
    if host in allowed:
        return True
    name, _, port = host.rpartition(":")
    if f"{_ANY_IP}:{port}" not in allowed:
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostCheck:
    """Refuse (421) requests whose ``Host`` is not in ``app.state.console_allowed_hosts`` (when set)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] == "http":
            allowed = getattr(scope["app"].state, "console_allowed_hosts", None) if "app" in scope else None
            if allowed is not None:
                host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").lower()
                if not _host_allowed(host, allowed):
                    names = ", ".join(sorted(allowed))
                    body = json.dumps({"detail": f"this console answers only {names}, not Host {host!r}"}).encode()
                    await send({"type": "http.response.start", "status": 421,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
