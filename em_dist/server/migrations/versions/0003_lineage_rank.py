"""lineage edges remember which rank made the artifact

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 20:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lineage_edges') as batch:
        batch.add_column(sa.Column('rank', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lineage_edges') as batch:
        batch.drop_column('rank')
