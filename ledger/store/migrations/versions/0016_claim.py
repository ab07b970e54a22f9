"""claim: one-time link codes and the moves of custodial points to a member's wallet

Revision ID: 0016
Revises: 0014
Create Date: 2026-11-26 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0016"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    when = ledger.store.models.UTCDateTime(timezone=True)
    op.create_table(
        "member_link_codes",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("key_enc", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", when, nullable=False),
        sa.Column("expires_at", when, nullable=False),
        sa.Column("used_at", when, nullable=True),
        sa.Column("wallet", sa.String(length=42), nullable=True),
        sa.PrimaryKeyConstraint("code_hash"),
    )
    op.create_index("ix_member_link_codes_pseudonym", "member_link_codes", ["pseudonym"])
    op.create_table(
        "member_claim_moves",
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("merchant_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("program", sa.String(length=42), nullable=False),
        sa.Column("account", sa.String(length=42), nullable=False),
        sa.Column("wallet", sa.String(length=42), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("code_hash", "merchant_id"),
    )
    op.create_index("ix_member_claim_moves_wallet", "member_claim_moves", ["wallet"])


def downgrade() -> None:
    op.drop_index("ix_member_claim_moves_wallet", "member_claim_moves")
    op.drop_table("member_claim_moves")
    op.drop_index("ix_member_link_codes_pseudonym", "member_link_codes")
    op.drop_table("member_link_codes")
