"""Server-side console sessions: a random token in an HttpOnly cookie, its hash in the database.

A session is created from a valid API key (sign-in, or the local console's own key),
names that key and expires after :data:`SESSION_MAX_AGE_S`. It only ever reads: the
key lookup in :mod:`em_dist.server.deps` refuses writes that carry no API key. Signing
out deletes the row; revoking the key deletes every session made from it.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from em_dist.server.models import ApiKey, ConsoleSession, User
from em_dist.server.security import SESSION_MAX_AGE_S, generate_session_token, hash_key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)  # SQLite drops the zone


def create(session: Session, api_key: ApiKey) -> str:
    """Start a session for ``api_key`` (already checked); returns the token for the cookie.

    The key's expired sessions are deleted on the way. The caller commits.
    """
    token = generate_session_token()
    now = _now()
    session.execute(delete(ConsoleSession).where(ConsoleSession.key_id == api_key.id, ConsoleSession.expires <= now))
    session.add(ConsoleSession(token_hash=hash_key(token), key_id=api_key.id, user_id=api_key.user_id,
                               created=now, expires=now + dt.timedelta(seconds=SESSION_MAX_AGE_S)))
    return token


def user_of(session: Session, token: str) -> User | None:
    """The user of a live session ``token``: None when unknown, expired, or its key was revoked."""
    row = session.execute(
        select(ConsoleSession, ApiKey, User)
        .join(ApiKey, ApiKey.id == ConsoleSession.key_id)
        .join(User, User.id == ConsoleSession.user_id)
        .where(ConsoleSession.token_hash == hash_key(token))
    ).first()
    if row is None:
        return None
    console_session, api_key, user = row
    if api_key.revoked is not None or _aware(console_session.expires) <= _now():
        return None
    return user


def end(session: Session, token: str) -> None:
    """Delete the session ``token`` (sign-out). The caller commits."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == hash_key(token)))


def end_all_of_key(session: Session, key_id: str) -> None:
    """Delete every session made from the key ``key_id`` (key revocation). The caller commits."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.key_id == key_id))
