"""Apply the Alembic migrations shipped in ``em_dist/server/migrations`` (run at every start)."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from em_dist.server.config import ServerConfig

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """An Alembic config pointing at the packaged scripts and ``database_url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def secure_data_dir(config: ServerConfig) -> None:
    """Create the data dir owner-only (0700) and, for SQLite, the database file 0600.

    The database holds key hashes and every user's runs; the blobs hold their files.
    SQLite creates its ``-wal``/``-shm`` files with the database file's mode.
    """
    config.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(config.data_dir, 0o700)
    if config.db_url is None:
        db_file = config.data_dir / "em.db"
        os.close(os.open(db_file, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(db_file, 0o600)


def upgrade(config: ServerConfig) -> None:
    """Bring the database of ``config`` to the newest schema (creates it on first use)."""
    secure_data_dir(config)
    command.upgrade(alembic_config(config.database_url), "head")
