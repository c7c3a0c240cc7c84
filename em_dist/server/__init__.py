"""The em_dist tracking server: a FastAPI app over SQLAlchemy (SQLite or PostgreSQL) and a blob store.

Never imported by the training-side SDK. Build the app with :func:`create_app`.
"""

from __future__ import annotations

from em_dist.server.app import create_app
from em_dist.server.config import ServerConfig

__all__ = ["create_app", "ServerConfig"]
