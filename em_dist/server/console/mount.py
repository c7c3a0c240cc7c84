"""Mount the experiment console on a server app: static files at ``/`` and the session endpoints.

The console is a static single-page app that talks to the same ``/api/v1`` REST API as
the upload client. Signing in exchanges an API key for an HttpOnly, SameSite=Strict
cookie (``em_session``) that the server's key lookup accepts like a bearer key, so the
key is never readable by page scripts after sign-in. Requests authenticated only by that
cookie are read-only (GET/HEAD), apart from the session endpoints themselves: the
console never writes, and a forged cross-site write has nothing to ride on.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse

from em_dist.server.console import vendor
from em_dist.server.deps import CurrentUser
from em_dist.server.security import SESSION_COOKIE

SESSION_MAX_AGE_S = 30 * 24 * 3600
STATIC_DIR = Path(__file__).parent / "static"
_API = "/api/v1"
_SESSION_PATH = f"{_API}/session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _set_cookie(response: Response, request: Request, key: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, key, max_age=SESSION_MAX_AGE_S, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )


def _auto_key(request: Request) -> str | None:
    return getattr(request.app.state, "console_auto_session_key", None)


def _session_router() -> APIRouter:
    router = APIRouter(tags=["console"])

    @router.post("/session")
    def sign_in(request: Request, user: CurrentUser) -> JSONResponse:
        """Sign in: send the key as ``Authorization: Bearer <key>``; the answer sets the session cookie."""
        header = request.headers.get("authorization", "")
        key = header.partition(" ")[2].strip() or request.headers.get("x-api-key", "").strip()
        response = JSONResponse({"id": user.id, "name": user.name})
        if key:  # a request signed by the cookie alone keeps the cookie it has
            _set_cookie(response, request, key)
        return response

    @router.get("/session")
    def who(request: Request) -> JSONResponse:
        """The console's session: ``{"auto": bool}``; in the local console it signs the visitor in."""
        auto = _auto_key(request)
        response = JSONResponse({"auto": auto is not None})
        if auto is not None and request.cookies.get(SESSION_COOKIE) != auto:
            _set_cookie(response, request, auto)
        return response

    @router.delete("/session", status_code=204)
    def sign_out() -> Response:
        """Sign out: clear the session cookie."""
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router


class _CookieReadOnly:
    """Refuse writes that are authenticated by the session cookie alone (a plain ASGI middleware:
    the request body streams through untouched)."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        if (
            scope["type"] == "http"
            and scope["method"] not in _SAFE_METHODS
            and scope["path"].startswith(_API)
            and scope["path"] != _SESSION_PATH
        ):
            request = Request(scope)
            if (
                SESSION_COOKIE in request.cookies
                and not request.headers.get("authorization")
                and not request.headers.get("x-api-key")
            ):
                response = JSONResponse(status_code=403, content={"detail": "the console session is read-only; use an API key"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _index_asset() -> vendor.Asset:
    """``index.html`` with the charting library's content-hashed URL filled in."""
    html = (STATIC_DIR / "index.html").read_text()
    return vendor.make_asset(html.replace("/static/vendor/plotly.min.js", vendor.plotly_url()).encode(), ".html")


def mount_console(app: FastAPI, *, auto_session_key: str | None = None) -> None:
    """Serve the console at ``/`` and its session endpoints under ``/api/v1``.

    Call after the API routers are included. ``auto_session_key`` signs every visitor in
    with that key (the local console); leave it ``None`` on a shared server. Calling it
    again on the same app only changes ``auto_session_key``.
    """
    app.state.console_auto_session_key = auto_session_key
    if getattr(app.state, "console_mounted", False):
        return
    app.state.console_mounted = True
    app.include_router(_session_router(), prefix=_API)
    app.add_middleware(_CookieReadOnly)
    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        return vendor.plotly_response(request)

    @app.get("/static/vendor/plotly-{digest}.min.js", include_in_schema=False)
    def plotly_js_hashed(request: Request, digest: str) -> Response:
        return vendor.plotly_response(request, digest)

    @app.get("/static/{path:path}", include_in_schema=False)
    def static_file(request: Request, path: str) -> Response:
        target = (STATIC_DIR / path).resolve()
        if not target.is_file() or STATIC_DIR.resolve() not in target.parents:
            return JSONResponse(status_code=404, content={"detail": f"no console file {path!r}"})
        return vendor.asset_response(request, vendor.file_asset(target), vendor.REVALIDATE)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon(request: Request) -> Response:
        return vendor.asset_response(request, vendor.file_asset(STATIC_DIR / "favicon.svg"), "public, max-age=86400")

    @app.get("/", include_in_schema=False)
    def console_index(request: Request) -> Response:
        response = vendor.asset_response(request, _index_asset(), vendor.REVALIDATE)
        auto = _auto_key(request)
        if auto is not None and request.cookies.get(SESSION_COOKIE) != auto:
            _set_cookie(response, request, auto)
        return response
