"""operations: drop the index of ``tx_hash``

No query finds an operation by its transaction hash (the outbox finds transactions in
``chain_txs`` and their operations through ``chain_tx_operations``), but the outbox's status
updates set ``tx_hash``, and every row version of ``operations`` (an insert and each of its
three updates: sending, submitted, confirmed) wrote an entry into this index too.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-27 06:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_index("ix_operations_tx_hash")


def downgrade() -> None:
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.create_index("ix_operations_tx_hash", ["tx_hash"], unique=False)
