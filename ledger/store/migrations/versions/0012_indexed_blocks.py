"""indexed blocks: the blocks the indexer read up to and their hashes (its rewind after a
reorganisation goes to the highest the chain still has)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "indexed_blocks",
        sa.Column("number", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.String(length=66), nullable=False),
        sa.PrimaryKeyConstraint("number"),
    )


def downgrade() -> None:
    op.drop_table("indexed_blocks")
