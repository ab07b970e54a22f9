"""chain_txs: one index of ``(signer, nonce)`` instead of ``signer`` alone

Every confirmation marks the other transactions recorded at the mined one's nonce as
``replaced`` (``outbox.repos.confirm_operations``), and the recovery pass looks a signer's
transactions up from a nonce on: both filter on the signer and the nonce. With ``signer`` alone
indexed, each of those statements read every transaction the signer had ever sent, a cost that
grew with the key's history (on SQLite: ``SEARCH chain_txs USING INDEX ix_chain_txs_signer
(signer=?)``). The pair serves the lookups by signer alone as well, so it replaces that index.

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-27 13:50:00
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chain_txs", schema=None) as batch_op:
        batch_op.create_index("ix_chain_txs_signer_nonce", ["signer", "nonce"], unique=False)
        batch_op.drop_index("ix_chain_txs_signer")


def downgrade() -> None:
    with op.batch_alter_table("chain_txs", schema=None) as batch_op:
        batch_op.create_index("ix_chain_txs_signer", ["signer"], unique=False)
        batch_op.drop_index("ix_chain_txs_signer_nonce")
