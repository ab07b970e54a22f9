"""offers3: the reversals the offers projection counted, with their block (a reorg rollback
takes back those above the common ancestor)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-26 10:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "offer_reversals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("order_ref", sa.String(length=66), nullable=False),
        sa.Column("points", ledger.store.models.IntText(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_offer_reversals_log"),
    )
    op.create_index(op.f("ix_offer_reversals_block_number"), "offer_reversals",
                    ["block_number"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_offer_reversals_block_number"), table_name="offer_reversals")
    op.drop_table("offer_reversals")
