"""point events: what a member's history shows besides kind and amount

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:30:00

``period`` (the lot: earn period of an issue or a conversion in, the expired period),
``release_at`` (when pending points of an issue become spendable), ``burned`` (what a
reversal actually took) and ``block_time`` (the event's block time; for a derived
``released`` row, the release time).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import ledger.store.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("point_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("period", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("release_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("burned", ledger.store.models.IntText(length=80),
                                      nullable=True))
        batch_op.add_column(sa.Column("block_time", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_point_events_kind_release", ["kind", "release_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("point_events", schema=None) as batch_op:
        batch_op.drop_index("ix_point_events_kind_release")
        batch_op.drop_column("block_time")
        batch_op.drop_column("burned")
        batch_op.drop_column("release_at")
        batch_op.drop_column("period")
