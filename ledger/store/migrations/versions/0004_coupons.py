"""coupons: campaigns and coupon events (read model), redemption locks

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_campaigns",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("issuer", sa.Integer(), nullable=False),
        sa.Column("terms", sa.JSON(), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )
    with op.batch_alter_table("coupon_campaigns", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_campaigns_issuer"), ["issuer"])
        batch_op.create_index(batch_op.f("ix_coupon_campaigns_block_number"), ["block_number"])
    op.create_table(
        "coupon_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("coupon_id", sa.String(length=80), nullable=True),
        sa.Column("holder", sa.String(length=42), nullable=True),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("order_ref", sa.String(length=66), nullable=True),
        sa.Column("amount", ledger.store.models.IntText(length=80), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_coupon_events_log"),
    )
    with op.batch_alter_table("coupon_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_coupon_events_block_number"), ["block_number"])
        batch_op.create_index("ix_coupon_events_coupon",
                              ["coupon_id", "block_number", "log_index"])
        batch_op.create_index("ix_coupon_events_campaign", ["campaign_id", "kind"])
        batch_op.create_index("ix_coupon_events_holder", ["holder"])
    op.create_table(
        "coupon_redemption_locks",
        sa.Column("coupon_id", sa.String(length=80), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", ledger.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("coupon_id"),
    )


def downgrade() -> None:
    op.drop_table("coupon_redemption_locks")
    with op.batch_alter_table("coupon_events", schema=None) as batch_op:
        batch_op.drop_index("ix_coupon_events_holder")
        batch_op.drop_index("ix_coupon_events_campaign")
        batch_op.drop_index("ix_coupon_events_coupon")
        batch_op.drop_index(batch_op.f("ix_coupon_events_block_number"))
    op.drop_table("coupon_events")
    with op.batch_alter_table("coupon_campaigns", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coupon_campaigns_block_number"))
        batch_op.drop_index(batch_op.f("ix_coupon_campaigns_issuer"))
    op.drop_table("coupon_campaigns")
