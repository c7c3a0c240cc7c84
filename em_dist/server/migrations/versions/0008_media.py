"""media records per rank (em.Histogram, em.Image, em.Table, em.Text)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 15:10:00

``media_records``: one row per logged media value, its JSON document (an image names its PNG by
``sha256``, a blob of the blob store); unique by (run, rank, attempt, record number) for a peer's
records. ``media_offsets``: per run and rank, the bytes of ``media/rank-<r>.jsonl`` uploaded so far.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "media_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("doc", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "rank", "attempt", "n", name="uq_media_number"),
    )
    op.create_index("ix_media_run_rank", "media_records", ["run_id", "rank", "id"], unique=False)
    op.create_index("ix_media_sha256", "media_records", ["sha256"], unique=False)
    op.create_table(
        "media_offsets",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "rank"),
    )


def downgrade() -> None:
    op.drop_table("media_offsets")
    op.drop_index("ix_media_sha256", table_name="media_records")
    op.drop_index("ix_media_run_rank", table_name="media_records")
    op.drop_table("media_records")
