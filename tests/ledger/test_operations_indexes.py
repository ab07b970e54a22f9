"""The indexes of ``operations`` (migration 0017), on SQLite and on a real PostgreSQL: no
index of ``tx_hash`` (no query finds an operation by it, and the outbox's status updates set
it), the outbox's status index kept; the migration keeps every row, both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.crypto import MasterKey
from ledger.merchants import repos as merchant_repos
from ledger.outbox import repos as outbox_repos
from ledger.store.db import Store, migrate
from tests.ledger.conftest import fresh_pg_database, migrate_to, table_indexes


def _indexes(store: Store) -> dict[str, list[str | None]]:
    return table_indexes(store, "operations")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_operations_lose_the_tx_hash_index_and_keep_their_rows_both_ways(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path, master: MasterKey
) -> None:
    url = (f"sqlite:///{tmp_path / 'ops.db'}" if backend == "sqlite"
           else fresh_pg_database(request.getfixturevalue("pg_url")))
    migrate(url)
    store = Store(url)
    try:
        with store.session() as s:
            merchant_repos.add_merchant(s, merchant_id=1, name="M1", account=f"0x{1:040x}",
                                        program=f"0x{101:040x}",
                                        signing_key=master.encrypt(b"k"))
            ops = [outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue",
                                                  payload={"n": i}, signer="0x" + "ab" * 20)
                   for i in range(3)]
            ids = [op.id for op in ops]
            outbox_repos.record_submission(s, op_ids=ids[:2], chain_id=31337,
                                           signer="0x" + "ab" * 20, tx_hash="0x" + "cd" * 32,
                                           nonce=0, raw="0x00", max_fee=2, priority_fee=1)
        after = _indexes(store)
        assert "ix_operations_tx_hash" not in after
        assert not any(cols == ["tx_hash"] for cols in after.values())
        assert after["ix_operations_status_merchant"] == ["status", "merchant_id", "seq"]

        store.dispose()
        migrate_to(url, "0016", down=True)
        assert _indexes(store)["ix_operations_tx_hash"] == ["tx_hash"]
        migrate_to(url, "head")
        assert "ix_operations_tx_hash" not in _indexes(store)
        with store.session() as s:
            got = [outbox_repos.get_operation(s, op_id) for op_id in ids]
            rows = [(op.tx_hash, op.payload) for op in got if op is not None]
        assert rows == [("0x" + "cd" * 32, {"n": 0}), ("0x" + "cd" * 32, {"n": 1}),
                        (None, {"n": 2})]
    finally:
        store.dispose()
