"""Typed FastAPI dependencies: database sessions, the blob store and the calling user.

Who the caller is: an API key (``Authorization: Bearer`` or ``X-API-Key``) for reads and
writes; a console session cookie for reads only.
"""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server.blobs import BlobStore
from em_dist.server.config import ServerConfig
from em_dist.server.db import Database
from em_dist.server.models import ApiKey, User
from em_dist.server import sessions
from em_dist.server.security import SESSION_COOKIE, hash_key


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


def _current_user(request: Request) -> User:
    """The caller: by API key for any request, by console session cookie for reads only."""
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
                raise HTTPException(403, "the console session is read-only; send an API key to write")
            user = found
        session.expunge(user)
        return user


WriteSession = Annotated[Session, Depends(_write_session)]
ReadSession = Annotated[Session, Depends(_read_session)]
Blobs = Annotated[BlobStore, Depends(_blobs)]
Config = Annotated[ServerConfig, Depends(_config)]
CurrentUser = Annotated[User, Depends(_current_user)]
