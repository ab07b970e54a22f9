"""clearing read model: the Clearing's cleared acts and the program events that make them up

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:45:00

Statements read these instead of the Clearing's logs from the deployment block on every
request. The ``clearing`` projection has no cursor yet on an upgraded store, so the indexer
fills both tables from the deployment block on its first rounds.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cleared_acts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("debtor", sa.Integer(), nullable=False),
        sa.Column("creditor", sa.Integer(), nullable=False),
        sa.Column("value", ledger.store.models.IntText(length=80), nullable=False),
        sa.Column("rate", ledger.store.models.IntText(length=80), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_cleared_acts_log"),
    )
    with op.batch_alter_table("cleared_acts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cleared_acts_block_number"), ["block_number"], unique=False)
        batch_op.create_index(
            "ix_cleared_acts_period", ["period", "block_number", "log_index"], unique=False)
    op.create_table(
        "cleared_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("act_log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("points_of", sa.Integer(), nullable=False),
        sa.Column("accepted_by", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(length=66), nullable=False),
        sa.Column("points", ledger.store.models.IntText(length=80), nullable=False),
        sa.Column("rate", ledger.store.models.IntText(length=80), nullable=False),
        sa.Column("value", ledger.store.models.IntText(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "act_log_index", "log_index",
                            name="uq_cleared_lines_log"),
    )
    with op.batch_alter_table("cleared_lines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cleared_lines_block_number"), ["block_number"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cleared_lines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cleared_lines_block_number"))
    op.drop_table("cleared_lines")
    with op.batch_alter_table("cleared_acts", schema=None) as batch_op:
        batch_op.drop_index("ix_cleared_acts_period")
        batch_op.drop_index(batch_op.f("ix_cleared_acts_block_number"))
    op.drop_table("cleared_acts")
