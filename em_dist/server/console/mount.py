"""Mount the experiment console on a server app: static files at ``/`` and the session endpoints.

The console is a static single-page app that talks to the same ``/api/v1`` REST API as
the upload client. Signing in exchanges an API key for a server-side session
(:mod:`em_dist.server.sessions`): the HttpOnly, SameSite=Strict cookie holds a random
token, never the key, so page scripts cannot read a key and signing out ends the session
for good. A session reads, and writes only the run metadata edits, each with the session's
CSRF token (given by ``GET``/``POST /session``) and from the same origin (see
:mod:`em_dist.server.deps`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from em_dist.server import sessions
from em_dist.server.console import vendor
from em_dist.server.deps import key_row, presented_key
from em_dist.server.security import SESSION_COOKIE, SESSION_MAX_AGE_S, csrf_token

STATIC_DIR = Path(__file__).parent / "static"
_API = "/api/v1"


def _set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=SESSION_MAX_AGE_S, path="/", httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )


def _start_session(request: Request, key: str) -> tuple[str, str, str]:
    """A new session for the API ``key``: (token, user id, user name); 401 for a bad key."""
    with request.app.state.db.write_session() as session:
        api_key, user = key_row(session, key)
        token = sessions.create(session, api_key)
        session.commit()
        return token, user.id, user.name


def _live_token(request: Request) -> str | None:
    """The request's session token when it names a live session."""
    token = request.cookies.get(SESSION_COOKIE, "").strip()
    if token:
        with request.app.state.db.read_session() as session:
            if sessions.user_of(session, token) is not None:
                return token
    return None


def _auto_sign_in(request: Request, response: Response) -> str | None:
    """In the local console, give a visitor without a live session one made from the local key.

    Returns the session token the visitor now holds (None when it holds no live one)."""
    live = _live_token(request)
    auto = getattr(request.app.state, "console_auto_session_key", None)
    if auto is None or live is not None:
        return live
    token = _start_session(request, auto)[0]
    _set_cookie(response, request, token)
    return token


def _session_router() -> APIRouter:
    router = APIRouter(tags=["console"])

    @router.post("/session")
    def sign_in(request: Request) -> JSONResponse:
        """Sign in: send the key as ``Authorization: Bearer <key>``; the answer sets the session cookie."""
        key = presented_key(request)
        if key is None:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>' to sign in")
        token, user_id, name = _start_session(request, key)
        response = JSONResponse({"id": user_id, "name": name, "csrf": csrf_token(token)})
        _set_cookie(response, request, token)
        return response

    @router.get("/session")
    def who(request: Request) -> JSONResponse:
        """The console's session: ``{"auto": bool, "csrf": str | null}``; in the local console it signs
        the visitor in. ``csrf`` is the live session's CSRF token, which the console sends as
        ``X-CSRF-Token`` with its run edits; another origin cannot read this answer (no CORS)."""
        cookies = Response()
        token = _auto_sign_in(request, cookies)
        response = JSONResponse({"auto": getattr(request.app.state, "console_auto_session_key", None) is not None,
                                 "csrf": csrf_token(token) if token else None},
                                headers={"cache-control": "no-store"})
        response.raw_headers.extend(h for h in cookies.raw_headers if h[0] == b"set-cookie")
        return response

    @router.delete("/session", status_code=204)
    def sign_out(request: Request) -> Response:
        """Sign out: end the session on the server and clear its cookie."""
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            with request.app.state.db.write_session() as session:
                sessions.end(session, token)
                session.commit()
        response = Response(status_code=204)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return router


def _index_asset() -> vendor.Asset:
    """``index.html`` with the charting library's content-hashed URL filled in."""
    html = (STATIC_DIR / "index.html").read_text()
    return vendor.make_asset(html.replace("static/vendor/plotly.min.js", vendor.plotly_url().lstrip("/")).encode(), ".html")


def mount_console(app: FastAPI, *, auto_session_key: str | None = None,
                  allowed_hosts: frozenset[str] | None = None) -> None:
    """Serve the console at ``/`` and its session endpoints under ``/api/v1``.

    Call after the API routers are included. ``auto_session_key`` signs every visitor in
    with a read-only session of that key (the local console); leave it ``None`` on a
    shared server. ``allowed_hosts`` (``host:port`` values) refuses requests whose
    ``Host`` header names anything else (:class:`em_dist.server.headers.HostCheck`), so
    a DNS-rebinding page cannot reach the auto-session. Calling it again on the same app
    only changes these two settings.
    """
    app.state.console_allowed_hosts = allowed_hosts
    app.state.console_auto_session_key = auto_session_key
    if getattr(app.state, "console_mounted", False):
        return
    app.state.console_mounted = True
    app.include_router(_session_router(), prefix=_API)

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        return vendor.plotly_response(request)

    @app.get("/static/vendor/plotly-{digest}.min.js", include_in_schema=False)
    def plotly_js_hashed(request: Request, digest: str) -> Response:
        return vendor.plotly_response(request, digest)

    @app.get("/static/{path:path}", include_in_schema=False)
    def static_file(request: Request, path: str) -> Response:
        try:
            target = (STATIC_DIR / path).resolve()
            found = target.is_file() and STATIC_DIR.resolve() in target.parents
        except (ValueError, OSError):  # a NUL in the path ("embedded null byte"), a name too long
            found = False
        if not found:
            return JSONResponse(status_code=404, content={"detail": f"no console file {path!r}"})
        return vendor.asset_response(request, vendor.file_asset(target), vendor.REVALIDATE)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon(request: Request) -> Response:
        return vendor.asset_response(request, vendor.file_asset(STATIC_DIR / "favicon.svg"), "public, max-age=86400")

    @app.get("/", include_in_schema=False)
    def console_index(request: Request) -> Response:
        response = vendor.asset_response(request, _index_asset(), vendor.REVALIDATE)
        _auto_sign_in(request, response)
        return response
