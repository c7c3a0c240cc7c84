"""The FastAPI application factory: API under ``/api/v1``, ``/`` left for the console."""

from __future__ import annotations

import json
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from em_dist.server import migrate, openapi
from em_dist.server.blobs import open_blob_store
from em_dist.server.config import ServerConfig
from em_dist.server.db import open_database
from em_dist.server.body_limit import BodyLimitMiddleware
from em_dist.server.base_path import BasePath
from em_dist.server.headers import HostCheck, SecurityHeaders
from em_dist.server.routes import api_router
from em_dist.server.storable import UNSTORABLE

API_PREFIX = "/api/v1"
_STREAMED = re.compile(r"^/api/v1/(blobs/[^/]+|runs/[^/]+/metrics/[^/]+)$")


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return 400, "malformed JSON body"
    unstorable = [e for e in errors if e.get("type") == UNSTORABLE]
    if unstorable:
        return 400, str(unstorable[0].get("msg", "a value the server cannot store"))
    first = errors[0] if errors else {}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return 422, f"{where or 'request'}: {first.get('msg', 'invalid value')}"


def _json(status: int, content: dict, headers: dict | None = None) -> Response:
    """A JSON error answer that never fails to render: ASCII only (a lone surrogate the
    client sent comes back escaped), no echo of the offending input."""
    return Response(json.dumps(content, ensure_ascii=True, default=str), status_code=status,
                    media_type="application/json", headers=headers)


def create_app(config: ServerConfig, *, run_migrations: bool = True) -> FastAPI:
    """Build the server app for ``config`` (migrating the database first by default)."""
    if run_migrations:
        migrate.upgrade(config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        yield
        app.state.db.dispose()

    app = FastAPI(
        title="em_dist tracking server",
        version="1",
        docs_url=None,  # Swagger UI and ReDoc would load scripts from a CDN on the console's
        redoc_url=None,  # origin, where the session cookie works: off (the schema stays below)
        openapi_url=f"{API_PREFIX}/openapi.json",
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.db = open_database(config)
    app.state.blobs = open_blob_store(config.blob_location, s3_endpoint_url=config.s3_endpoint_url)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _json(exc.status_code, {"detail": detail}, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> Response:
        status, message = _validation_message(exc)
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        return _json(status, {"detail": message, "errors": errors})

    app.include_router(api_router, prefix=API_PREFIX)
    openapi.document(app, API_PREFIX)
    from em_dist.server.console.mount import mount_console  # the web console at "/", on the same API

    mount_console(app)
    app.add_middleware(BodyLimitMiddleware, limit=config.max_json_bytes, exempt=lambda p: bool(_STREAMED.match(p)))
    app.add_middleware(HostCheck)
    if config.root_path:  # served under a path prefix (and at the root, for a gateway that strips it)
        app.add_middleware(BasePath, prefix=config.root_path)
    app.add_middleware(SecurityHeaders)  # outermost: every answer carries the headers
    return app
