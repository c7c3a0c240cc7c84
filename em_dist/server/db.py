"""Engines and sessions.

On SQLite (WAL mode) writers take the database lock up front (``BEGIN IMMEDIATE``) so
concurrent uploads queue on the busy timeout instead of failing on a lock upgrade;
readers use a separate engine with ordinary deferred transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import sessionmaker

from em_dist.server.config import ServerConfig

_SQLITE_BUSY_MS = 60_000


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass
class Database:
    """The write and read engines of one server and their session factories."""

    write_engine: Engine
    read_engine: Engine

    def __post_init__(self) -> None:
        self.write_session = sessionmaker(self.write_engine, expire_on_commit=False)
        self.read_session = sessionmaker(self.read_engine, expire_on_commit=False)

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()


def open_database(config: ServerConfig) -> Database:
    """Create the engines for ``config`` (the schema must already be migrated)."""
    url = config.database_url
    if url.startswith("sqlite"):
        config.data_dir.mkdir(parents=True, exist_ok=True)
        return Database(_sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False))
    engine = create_engine(url, pool_size=10, max_overflow=30, pool_pre_ping=True)
    return Database(engine, engine)
