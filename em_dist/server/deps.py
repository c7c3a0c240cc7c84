"""Typed FastAPI dependencies: database sessions, the blob store and the calling user.

Who the caller is: an API key (``Authorization: Bearer`` or ``X-API-Key``) for reads and
writes; a console session cookie for reads, and for the run metadata edits of
:data:`EditorUser` only when the request also passes the same-origin check and carries
the session's CSRF token (:func:`check_console_write`).
"""

from __future__ import annotations

from typing import Annotated, Iterator
from urllib.parse import urlsplit

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server.blobs import BlobStore
from em_dist.server.config import ServerConfig
from em_dist.server.db import Database
from em_dist.server.models import ApiKey, User
from em_dist.server import sessions
from em_dist.server.security import CSRF_HEADER, SESSION_COOKIE, csrf_matches, hash_key


def _db(request: Request) -> Database:
    return request.app.state.db


def _write_session(request: Request) -> Iterator[Session]:
    with _db(request).write_session() as session:
        yield session


def _read_session(request: Request) -> Iterator[Session]:
    with _db(request).read_session() as session:
        yield session


def _blobs(request: Request) -> BlobStore:
    return request.app.state.blobs


def _config(request: Request) -> ServerConfig:
    return request.app.state.config


_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_key(request: Request) -> str | None:
    """The API key the request carries (``Authorization: Bearer`` or ``X-API-Key``), or None.

    An ``Authorization`` header that is not ``Bearer <key>`` is a 401, whatever else the
    request carries: a malformed header next to a session cookie must not pass as a key.
    """
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPException(401, "malformed Authorization header: send 'Authorization: Bearer <API key>'")
        return token.strip()
    token = request.headers.get("x-api-key", "").strip()
    return token or None


def key_row(session: Session, key: str) -> tuple[ApiKey, User]:
    """The live API key row and its user; 401 when the key is unknown or revoked."""
    row = session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == hash_key(key))
    ).first()
    if row is None:
        raise HTTPException(401, "invalid API key")
    api_key, user = row
    if api_key.revoked is not None:
        raise HTTPException(401, "this API key was revoked")
    return api_key, user


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _same_origin(request: Request) -> bool:
    """True when the browser says the request comes from the server's own origin.

    ``Sec-Fetch-Site`` (when sent) must be ``same-origin``; ``Origin`` (when sent) must name
    the host and port the request was sent to. A request with neither is refused: every
    browser sends ``Origin`` on a ``PATCH``, ``POST`` or ``DELETE`` made by a page's script.
    """
    site = request.headers.get("sec-fetch-site")
    origin = request.headers.get("origin")
    if site is None and origin is None:
        return False
    if site is not None and site.strip().lower() != "same-origin":
        return False
    if origin is not None:
        parts = urlsplit(origin.strip())
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            return False  # "null" (a sandboxed frame, a file: page) and anything odd
        port = str(parts.port) if parts.port is not None else _DEFAULT_PORTS[parts.scheme]
        host = request.headers.get("host", "").strip().lower()
        name, sep, host_port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not sep:
            name, host_port = host, _DEFAULT_PORTS[parts.scheme]
        shown = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        if (shown.lower(), port) != (name, host_port):
            return False
    return True


def check_console_write(request: Request, token: str) -> None:
    """403 unless a cookie-authenticated write comes from the console itself: same origin
    (:func:`_same_origin`) and the session's CSRF token in the ``X-CSRF-Token`` header."""
    if not _same_origin(request):
        raise HTTPException(403, "cross-origin write refused: the console session writes only from its own pages")
    presented = request.headers.get(CSRF_HEADER, "")
    if not presented or not csrf_matches(token, presented):
        raise HTTPException(403, f"missing or wrong CSRF token: send the session's token in {CSRF_HEADER}")


def _caller(request: Request, *, session_writes: bool) -> User:
    """The caller by API key, else by console session cookie. A cookie write passes only when
    ``session_writes`` (the metadata edits) and :func:`check_console_write` allow it."""
    key = presented_key(request)
    with _db(request).read_session() as session:
        if key is not None:
            _, user = key_row(session, key)
        else:
            token = request.cookies.get(SESSION_COOKIE, "").strip()
            if not token:
                raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'")
            found = sessions.user_of(session, token)
            if found is None:
                raise HTTPException(401, "the console session ended or expired; sign in again with your API key")
            if request.method not in _READ_METHODS:
                if not session_writes:
                    raise HTTPException(403, "the console session only reads and edits run metadata; "
                                             "send an API key to write")
                if getattr(request.app.state, "console_auto_session_key", None) is not None:
                    # `em console` shows the run folders on disk: an edit would change only its
                    # temporary copy and vanish when it stops, so it offers none
                    raise HTTPException(403, "the local console (em console) is read-only: edit runs on the "
                                             "server you upload them to")
                check_console_write(request, token)
            user = found
        session.expunge(user)
        return user


def _current_user(request: Request) -> User:
    """The caller: by API key for any request, by console session cookie for reads only."""
    return _caller(request, session_writes=False)


def _editor(request: Request) -> User:
    """The caller of a run metadata edit: by API key, or by console session cookie with the
    same-origin check and the session's CSRF token."""
    return _caller(request, session_writes=True)


WriteSession = Annotated[Session, Depends(_write_session)]
ReadSession = Annotated[Session, Depends(_read_session)]
Blobs = Annotated[BlobStore, Depends(_blobs)]
Config = Annotated[ServerConfig, Depends(_config)]
CurrentUser = Annotated[User, Depends(_current_user)]
EditorUser = Annotated[User, Depends(_editor)]
"""Only for the run metadata edits (``PATCH``/``DELETE /runs/{id}``): the one place a console session writes."""
