"""Typed FastAPI dependencies: sessions, the blob store and the calling user."""

from __future__ import annotations

from typing import Annotated, Iterator

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server.blobs import BlobStore
from em_dist.server.config import ServerConfig
from em_dist.server.db import Database
from em_dist.server.models import ApiKey, User
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


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    token = request.headers.get("x-api-key", "").strip()
    if token:
        return token
    token = request.cookies.get(SESSION_COOKIE, "").strip()
    if token:
        return token
    raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'")


def _current_user(request: Request) -> User:
    key = _bearer(request)
    with _db(request).read_session() as session:
        row = session.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.key_hash == hash_key(key))
        ).first()
        if row is None:
            raise HTTPException(401, "invalid API key")
        api_key, user = row
        if api_key.revoked is not None:
            raise HTTPException(401, "this API key was revoked")
        session.expunge(user)
        return user


WriteSession = Annotated[Session, Depends(_write_session)]
ReadSession = Annotated[Session, Depends(_read_session)]
Blobs = Annotated[BlobStore, Depends(_blobs)]
Config = Annotated[ServerConfig, Depends(_config)]
CurrentUser = Annotated[User, Depends(_current_user)]
