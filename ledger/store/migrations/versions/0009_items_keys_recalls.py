"""items: serials' positions in their batches (on-chain item keys), recall notices and recall
rows per item, claimed items by claimer

Revision ID: 0009
Revises: 0006
Create Date: 2026-11-26 04:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("item_serials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_index", sa.Integer(), nullable=True))
        batch_op.create_index("ix_item_serials_batch_index", ["batch_id", "batch_index"],
                              unique=True)
    with op.batch_alter_table("item_states", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_states_claimed_by"), ["claimed_by"],
                              unique=False)
    op.create_table(
        "item_recall_notices",
        sa.Column("event_hash", sa.String(length=66), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("reason_zh", sa.String(length=500), nullable=True),
        sa.Column("created_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_hash"),
    )
    with op.batch_alter_table("item_recall_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_recall_notices_brand_id"), ["brand_id"],
                              unique=False)
    op.create_table(
        "item_recalls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=66), nullable=False),
        sa.Column("event_hash", sa.String(length=66), nullable=False),
        sa.Column("chain_batch_id", sa.Integer(), nullable=True),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=42), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index", "item_id", name="uq_item_recalls_log_item"),
    )
    with op.batch_alter_table("item_recalls", schema=None) as batch_op:
        batch_op.create_index("ix_item_recalls_item", ["item_id", "block_number"], unique=False)
        batch_op.create_index(batch_op.f("ix_item_recalls_event_hash"), ["event_hash"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_item_recalls_merchant_id"), ["merchant_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_item_recalls_block_number"), ["block_number"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("item_recalls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_recalls_block_number"))
        batch_op.drop_index(batch_op.f("ix_item_recalls_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_item_recalls_event_hash"))
        batch_op.drop_index("ix_item_recalls_item")
    op.drop_table("item_recalls")
    with op.batch_alter_table("item_recall_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_recall_notices_brand_id"))
    op.drop_table("item_recall_notices")
    with op.batch_alter_table("item_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_states_claimed_by"))
    with op.batch_alter_table("item_serials", schema=None) as batch_op:
        batch_op.drop_index("ix_item_serials_batch_index")
        batch_op.drop_column("batch_index")
