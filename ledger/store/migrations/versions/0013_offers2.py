"""offers2: purchase rules in spend, the order's spend off chain, firings that know their
order and coupon (so a reversed order can take its coupon back)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-26 07:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

FIRING_COLUMNS = ("order_ref", "order_points", "order_spend", "reversed_points",
                  "grant_index", "coupon_id", "revoke_operation_id")


def upgrade() -> None:
    money = ledger.store.models.IntText()
    op.create_table(
        "order_spends",
        sa.Column("merchant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("order_ref", sa.String(length=66), nullable=False),
        sa.Column("spend", money, nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("merchant_id", "order_ref"),
    )
    with op.batch_alter_table("offer_rules") as batch:
        batch.add_column(sa.Column("min_spend", money, nullable=True))
    with op.batch_alter_table("offer_firings") as batch:
        batch.add_column(sa.Column("order_ref", sa.String(length=66), nullable=True))
        batch.add_column(sa.Column("order_points", money, nullable=True))
        batch.add_column(sa.Column("order_spend", money, nullable=True))
        batch.add_column(sa.Column("reversed_points", money, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("grant_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("coupon_id", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("revoke_operation_id", sa.String(length=36), nullable=True))
        batch.create_index(batch.f("ix_offer_firings_order_ref"), ["order_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("offer_firings") as batch:
        batch.drop_index(batch.f("ix_offer_firings_order_ref"))
        for name in reversed(FIRING_COLUMNS):
            batch.drop_column(name)
    with op.batch_alter_table("offer_rules") as batch:
        batch.drop_column("min_spend")
    op.drop_table("order_spends")
