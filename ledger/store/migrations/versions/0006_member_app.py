"""member app: sign-in nonces, member sessions, merchants' payment requests

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 00:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "member_login_nonces",
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("expires_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_index(op.f("ix_member_login_nonces_expires_at"), "member_login_nonces",
                    ["expires_at"], unique=False)
    op.create_table(
        "member_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("created_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    op.create_index(op.f("ix_member_sessions_address"), "member_sessions", ["address"],
                    unique=False)
    op.create_index(op.f("ix_member_sessions_expires_at"), "member_sessions", ["expires_at"],
                    unique=False)
    op.create_table(
        "payment_requests",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("amount", ledger.store.models.IntText(length=80), nullable=False),
        sa.Column("expires_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_at", ledger.store.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("payer", sa.String(length=42), nullable=True),
        sa.Column("program_merchant_id", sa.Integer(), nullable=True),
        sa.Column("points", ledger.store.models.IntText(length=80), nullable=True),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("merchant_id", "order_id", name="uq_payment_requests_order"),
    )
    op.create_index(op.f("ix_payment_requests_payer"), "payment_requests", ["payer"],
                    unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_payment_requests_payer"), table_name="payment_requests")
    op.drop_table("payment_requests")
    op.drop_index(op.f("ix_member_sessions_expires_at"), table_name="member_sessions")
    op.drop_index(op.f("ix_member_sessions_address"), table_name="member_sessions")
    op.drop_table("member_sessions")
    op.drop_index(op.f("ix_member_login_nonces_expires_at"), table_name="member_login_nonces")
    op.drop_table("member_login_nonces")
