"""User and key administration, used by ``em server user add`` / ``key create`` / ``key revoke``.

These talk to the database directly (no HTTP): whoever can read the data dir or the
database URL administers the server.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select

from em_dist.server import sessions
from em_dist.server.db import Database
from em_dist.server.models import ApiKey, User
from em_dist.server.security import generate_key, hash_key, key_prefix


class AdminError(Exception):
    """An administrative command cannot be done (unknown user, duplicate name, unknown key)."""


def _new_key(user: User) -> tuple[ApiKey, str]:
    key = generate_key()
    return ApiKey(user_id=user.id, key_hash=hash_key(key), prefix=key_prefix(key)), key


def add_user(db: Database, name: str) -> str:
    """Create user ``name`` and return their first API key."""
    if not name or len(name) > 200 or "/" in name:
        raise AdminError(f"invalid user name {name!r}")
    with db.write_session() as session:
        if session.scalars(select(User).where(User.name == name)).first() is not None:
            raise AdminError(f"user {name!r} already exists; use 'em server key create {name}' for another key")
        user = User(name=name)
        session.add(user)
        session.flush()
        row, key = _new_key(user)
        session.add(row)
        session.commit()
    return key


def create_key(db: Database, name: str) -> str:
    """A new API key for existing user ``name``."""
    with db.write_session() as session:
        user = session.scalars(select(User).where(User.name == name)).first()
        if user is None:
            raise AdminError(f"no user {name!r}; add it with 'em server user add {name}'")
        row, key = _new_key(user)
        session.add(row)
        session.commit()
    return key


def revoke_key(db: Database, key: str) -> str:
    """Revoke ``key`` and end the console sessions made from it; returns the name of its user."""
    with db.write_session() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_key(key))).first()
        if row is None:
            raise AdminError("no such API key")
        row.revoked = row.revoked or dt.datetime.now(dt.timezone.utc)
        sessions.end_all_of_key(session, row.id)  # console sessions signed in with it end too
        user = session.get(User, row.user_id)
        session.commit()
        return user.name if user else ""
