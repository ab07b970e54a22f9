"""member app, second half: coupon presentations (the coupon QR shown at a till), member
profiles (shared only under an on-chain consent), merchants' consent rewards

Revision ID: 0010
Revises: 0006
Create Date: 2026-11-26 04:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coupon_presentations",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=42), nullable=False),
        sa.Column("coupon_id", sa.String(length=80), nullable=False),
        sa.Column("expires_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("order_amount", ledger.store.models.IntText(length=80), nullable=True),
        sa.Column("discount", ledger.store.models.IntText(length=80), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index(op.f("ix_coupon_presentations_holder"), "coupon_presentations",
                    ["holder"], unique=False)
    op.create_index(op.f("ix_coupon_presentations_coupon_id"), "coupon_presentations",
                    ["coupon_id"], unique=False)
    op.create_table(
        "member_profiles",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("birth_month", sa.Integer(), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("updated_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )
    op.create_table(
        "consent_rewards",
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "kind"),
    )


def downgrade() -> None:
    op.drop_table("consent_rewards")
    op.drop_table("member_profiles")
    op.drop_index(op.f("ix_coupon_presentations_coupon_id"), table_name="coupon_presentations")
    op.drop_index(op.f("ix_coupon_presentations_holder"), table_name="coupon_presentations")
    op.drop_table("coupon_presentations")
