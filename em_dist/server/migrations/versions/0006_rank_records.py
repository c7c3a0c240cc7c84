"""numbered records per rank: a journal uploaded from another host merges exactly once

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:30:00

``rank_records``: per run, rank and attempt, the newest record number the run folder holds
(``held``) and the newest merged from the rank's journal (``merged``), with where the rest is.
``log_lines.n``: the record number of a captured line merged from a journal (null otherwise).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rank_records",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("held", sa.BigInteger(), nullable=False),
        sa.Column("merged", sa.BigInteger(), nullable=False),
        sa.Column("folder_complete", sa.Boolean(), nullable=False),
        sa.Column("journal_last", sa.BigInteger(), nullable=True),
        sa.Column("journal", sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "rank", "attempt"),
    )
    with op.batch_alter_table("log_lines") as batch:
        batch.add_column(sa.Column("n", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_lines") as batch:
        batch.drop_column("n")
    op.drop_table("rank_records")
