"""blobs remember when they were last uploaded (the garbage collector's grace period)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('blobs') as batch:
        batch.add_column(sa.Column('last_upload', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('blobs') as batch:
        batch.drop_column('last_upload')
