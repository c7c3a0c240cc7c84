"""captured output per rank

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 01:10:00

``log_lines``: each rank's captured stdout/stderr, one row per line, in the order printed.
``log_offsets``: per run and rank, the logical byte offset uploaded so far (the resume point),
the bytes held and the bytes dropped to stay under the limit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "log_offsets",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("held_bytes", sa.BigInteger(), nullable=False),
        sa.Column("dropped_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "rank"),
    )
    op.create_table(
        "log_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("stream", sa.String(length=8), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_log_lines_run_rank", "log_lines", ["run_id", "rank", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_log_lines_run_rank", table_name="log_lines")
    op.drop_table("log_lines")
    op.drop_table("log_offsets")
