"""The index of ``chain_txs`` by ``(signer, nonce)`` (migration 0018), on SQLite and on a real
PostgreSQL: a confirmation's "replaced" update finds the transactions at the mined one's nonce
through it, so its work does not grow with the signer's history of transactions; the migration
keeps every row, both ways."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger.outbox import repos as outbox_repos
from ledger.store.db import Store, make_engine, migrate
from tests.ledger.conftest import fresh_pg_database, migrate_to, table_indexes

SIGNER = "0x" + "ab" * 20


def _indexes(store: Store) -> dict[str, list[str | None]]:
    return table_indexes(store, "chain_txs")


def _txs(conn: sqlite3.Connection, first: int, n: int, status: str = "mined") -> None:
    conn.executemany(
        "INSERT INTO chain_txs (tx_hash, chain_id, signer, nonce, raw, max_fee, priority_fee, "
        "status, lines, sent_at) VALUES (?, 31337, ?, ?, '0x00', '2', '1', ?, 1, "
        "'2026-11-27 00:00:00.000000')",
        [(f"0x{k:064x}", SIGNER, k, status) for k in range(first, first + n)])


def _replaced_update_steps(db: Path, history: int) -> int:
    """SQLite VM instructions (in thousands) the confirmation's "replaced" update runs when the
    signer has ``history`` transactions mined before the one just mined (a replacement of it
    pending at the same nonce)."""
    conn = sqlite3.connect(db)
    try:
        conn.execute("DELETE FROM chain_txs")
        _txs(conn, 0, history + 1)
        conn.execute("INSERT INTO chain_txs (tx_hash, chain_id, signer, nonce, raw, max_fee, "
                     "priority_fee, status, lines, sent_at) VALUES ('0xbump', 31337, ?, ?, "
                     "'0x00', '3', '2', 'pending', 1, '2026-11-27 00:00:00.000000')",
                     (SIGNER, history))
        conn.commit()
        steps = [0]

        def tick() -> int:
            steps[0] += 1
            return 0

        conn.set_progress_handler(tick, 1000)
        sql = str(outbox_repos._OTHERS_REPLACED.compile(make_engine(f"sqlite:///{db}")))
        mined = f"0x{history:064x}"
        cur = conn.execute(sql, ("replaced", mined, mined, mined, "pending"))
        assert cur.rowcount == 1  # the pending replacement at the mined nonce, nothing else
        conn.set_progress_handler(None, 0)
        conn.rollback()
        return steps[0]
    finally:
        conn.close()


def test_a_confirmations_replaced_update_costs_the_same_after_a_long_history(
        tmp_path: Path) -> None:
    db = tmp_path / "txs.db"
    migrate(f"sqlite:///{db}")
    short, long = _replaced_update_steps(db, 10), _replaced_update_steps(db, 20_000)
    # Through the index the statement visits the rows at one (signer, nonce): the same few
    # whatever came before (with ``signer`` alone indexed it visited all 20,000: ~1,000x).
    assert long <= short + 2, (short, long)
    plan = sqlite3.connect(db).execute(
        "EXPLAIN QUERY PLAN " + str(outbox_repos._OTHERS_REPLACED.compile(
            make_engine(f"sqlite:///{db}"))), ("replaced", "0x1", "0x1", "0x1", "pending"))
    assert any("ix_chain_txs_signer_nonce (signer=? AND nonce=?)" in row[3] for row in plan)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_chain_txs_are_indexed_by_signer_and_nonce_and_keep_their_rows_both_ways(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    url = (f"sqlite:///{tmp_path / 'txs.db'}" if backend == "sqlite"
           else fresh_pg_database(request.getfixturevalue("pg_url")))
    migrate(url)
    store = Store(url)
    try:
        with store.session() as s:
            outbox_repos.record_submission(s, op_ids=[], chain_id=31337, signer=SIGNER,
                                           tx_hash="0x" + "cd" * 32, nonce=7, raw="0x00",
                                           max_fee=2, priority_fee=1)
        after = _indexes(store)
        assert after["ix_chain_txs_signer_nonce"] == ["signer", "nonce"]
        assert "ix_chain_txs_signer" not in after
        if backend == "postgresql":
            with store.engine.connect() as c:
                c.execute(text("SET enable_seqscan = off"))
                compiled = outbox_repos._OTHERS_REPLACED.compile(store.engine)
                params = dict(compiled.params, b_tx="0x" + "cd" * 32)
                plan = "\n".join(r[0] for r in c.exec_driver_sql(
                    "EXPLAIN " + str(compiled), params))
            assert "ix_chain_txs_signer_nonce" in plan and "nonce = " in plan, plan

        store.dispose()
        migrate_to(url, "0017", down=True)
        assert _indexes(store)["ix_chain_txs_signer"] == ["signer"]
        assert "ix_chain_txs_signer_nonce" not in _indexes(store)
        migrate_to(url, "head")
        assert _indexes(store)["ix_chain_txs_signer_nonce"] == ["signer", "nonce"]
        with store.session() as s:
            rows = s.execute(text("SELECT signer, nonce, status FROM chain_txs")).all()
        assert [tuple(r) for r in rows] == [(SIGNER, 7, "pending")]
    finally:
        store.dispose()
