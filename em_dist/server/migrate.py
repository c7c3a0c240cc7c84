"""Apply the Alembic migrations shipped in ``em_dist/server/migrations`` (run at every start)."""

from __future__ import annotations

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


def upgrade(config: ServerConfig) -> None:
    """Bring the database of ``config`` to the newest schema (creates it on first use)."""
    if config.database_url.startswith("sqlite"):
        config.data_dir.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(config.database_url), "head")
