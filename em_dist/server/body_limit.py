"""An ASGI middleware that caps request bodies (413), except on streamed routes."""

from __future__ import annotations

import json
from typing import Callable


class BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with a JSON 413, by Content-Length or while reading.

    When a body without Content-Length grows past the limit, the middleware answers 413
    itself, tells the app the client went away, and drops whatever the app sends after.
    Paths for which ``exempt(path)`` is true (blob streams, metric chunks with their own
    limit) pass through untouched.
    """

    def __init__(self, app, limit: int, exempt: Callable[[str], bool]) -> None:  # type: ignore[no-untyped-def]
        self.app, self.limit, self.exempt = app, limit, exempt

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if scope["type"] != "http" or self.exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._refuse(send)
                return
        seen, refused = 0, False

        async def limited_receive():  # type: ignore[no-untyped-def]
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message) -> None:  # type: ignore[no-untyped-def]
            if not refused:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send) -> None:  # type: ignore[no-untyped-def]
        body = json.dumps({"detail": f"request body over {self.limit} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
