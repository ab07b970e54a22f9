"""offers: triggered offer rules and their firings, birth months, invites and referrals,
the gift catalogue and gift redemptions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 04:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = ledger.store.models.UTCDateTime(timezone=True)
    int_text = ledger.store.models.IntText(length=80)
    op.create_table(
        "offer_rules",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("min_points", int_text, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_offer_rules_merchant_id"), "offer_rules", ["merchant_id"],
                    unique=False)
    op.create_table(
        "offer_firings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("cause", sa.String(length=160), nullable=False),
        sa.Column("members", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("fired_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "cause", name="uq_offer_firings_cause"),
    )
    op.create_index(op.f("ix_offer_firings_rule_id"), "offer_firings", ["rule_id"],
                    unique=False)
    op.create_table(
        "offer_birth_months",
        sa.Column("merchant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("member", sa.String(length=42), nullable=False),
        sa.Column("month_enc", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "member"),
    )
    op.create_table(
        "offer_invites",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("inviter", sa.String(length=42), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("code"),
        sa.UniqueConstraint("merchant_id", "inviter", name="uq_offer_invites_inviter"),
    )
    op.create_table(
        "offer_referrals",
        sa.Column("merchant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("invitee", sa.String(length=42), nullable=False),
        sa.Column("inviter", sa.String(length=42), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "invitee"),
    )
    op.create_table(
        "gifts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("points", int_text, nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.Column("per_member_limit", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_gifts_merchant_id"), "gifts", ["merchant_id"], unique=False)
    op.create_table(
        "gift_redemptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("gift_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("member", sa.String(length=42), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("order_ref", sa.String(length=66), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("redeem_operation_id", sa.String(length=36), nullable=False),
        sa.Column("grant_operation_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", utc, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("gift_id", "request_id", name="uq_gift_redemptions_req"),
        sa.UniqueConstraint("order_ref"),
    )
    op.create_index(op.f("ix_gift_redemptions_gift_id"), "gift_redemptions", ["gift_id"],
                    unique=False)
    op.create_index(op.f("ix_gift_redemptions_member"), "gift_redemptions", ["member"],
                    unique=False)
    op.create_index(op.f("ix_gift_redemptions_status"), "gift_redemptions", ["status"],
                    unique=False)


def downgrade() -> None:
    op.drop_table("gift_redemptions")
    op.drop_table("gifts")
    op.drop_table("offer_referrals")
    op.drop_table("offer_invites")
    op.drop_table("offer_birth_months")
    op.drop_table("offer_firings")
    op.drop_table("offer_rules")
