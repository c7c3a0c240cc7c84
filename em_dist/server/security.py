"""API keys and console session tokens: generation and hashing.

A key is ``em_`` + 32 random bytes (urlsafe base64, 256 bits of entropy). The server
stores only its SHA-256 hex digest: with that much entropy a fast hash is enough, and a
leaked database does not reveal usable keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "em_"
SESSION_COOKIE = "em_session"
"""The console's HttpOnly session cookie: holds a session token (never the API key)."""
SESSION_MAX_AGE_S = 7 * 24 * 3600
"""How long a console session lives after sign-in."""


def generate_key() -> str:
    """A new random API key."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The stored form of ``key``: its SHA-256 hex digest."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_prefix(key: str) -> str:
    """The first characters of a key, kept in clear so users can tell their keys apart."""
    return key[:10]


def generate_session_token() -> str:
    """A new random console session token (256 bits); the server keeps only its hash."""
    return secrets.token_urlsafe(32)


CSRF_HEADER = "X-CSRF-Token"
"""The header the console's scripts send a session's CSRF token in, on every write."""


def csrf_token(session_token: str) -> str:
    """The CSRF token of the console session ``session_token``: an HMAC of the (secret,
    HttpOnly) session token, so it is per session, needs no storage, and ends with it.

    Page scripts cannot read the cookie; they get this token from ``GET /api/v1/session``,
    which another origin cannot read (no CORS)."""
    return hmac.new(session_token.encode("utf-8"), b"em-console-csrf-v1", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, presented: str) -> bool:
    """True when ``presented`` is the CSRF token of ``session_token`` (constant-time compare)."""
    return hmac.compare_digest(csrf_token(session_token).encode("ascii"), presented.encode("utf-8", "replace"))
