"""runs.archived and runs.edited: run edits from the console (archive/restore, kept edits)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:15:00

``runs.archived``: false for every run already stored; the console's run page (and
``PATCH /runs/{id}``) sets and clears it. ``runs.edited``: the metadata fields a user
edited (``name``, ``labels``, ``description``), which a later upload of the run's
metadata no longer overwrites; null (none) for every run already stored.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("archived", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("edited", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("edited")
        batch.drop_column("archived")
