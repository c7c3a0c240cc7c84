"""Alembic environment: online migrations only, with the URL set by ``em_dist.server.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from em_dist.server.models import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:  # em_dist.server.migrate always sets it
        raise RuntimeError("alembic: no sqlalchemy.url in the configuration")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
