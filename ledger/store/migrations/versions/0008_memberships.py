"""memberships: membership card events (read model), tiers, tier-locked campaigns

Revision ID: 0008
Revises: 0006
Create Date: 2026-11-26 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "membership_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("token_id", sa.String(length=80), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(length=42), nullable=False),
        sa.Column("tier", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("payment_ref", sa.String(length=66), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("block_number", sa.Integer(), nullable=False),
        sa.Column("log_index", sa.Integer(), nullable=False),
        sa.Column("block_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tx_hash", "log_index", name="uq_membership_events_log"),
    )
    with op.batch_alter_table("membership_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_membership_events_block_number"), ["block_number"])
        batch_op.create_index("ix_membership_events_card",
                              ["token_id", "block_number", "log_index"])
        batch_op.create_index("ix_membership_events_member", ["member"])
    op.create_table(
        "membership_tiers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("min_points", ledger.store.models.IntText(length=80), nullable=False),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("multiplier_bps", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "level", name="uq_membership_tiers_level"),
    )
    with op.batch_alter_table("membership_tiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_membership_tiers_merchant_id"), ["merchant_id"])
    op.create_table(
        "coupon_campaign_tiers",
        sa.Column("campaign_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("scope_merchant_id", sa.Integer(), nullable=False),
        sa.Column("min_level", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("campaign_id"),
    )


def downgrade() -> None:
    op.drop_table("coupon_campaign_tiers")
    with op.batch_alter_table("membership_tiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_membership_tiers_merchant_id"))
    op.drop_table("membership_tiers")
    with op.batch_alter_table("membership_events", schema=None) as batch_op:
        batch_op.drop_index("ix_membership_events_member")
        batch_op.drop_index("ix_membership_events_card")
        batch_op.drop_index(batch_op.f("ix_membership_events_block_number"))
    op.drop_table("membership_events")
