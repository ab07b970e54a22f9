"""The clearing read model's inserts (the indexer's ``ClearingProjection``, under the store's
one writer): one statement compiled once per process, whatever the number of rows a round
brings (a multi-row VALUES built from the rows was compiled anew every round: ~18% of an
indexer round under 200-line redemption batches); a row seen before is skipped, and what is
stored reads back exactly, big values included."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from ledger.clearing import repos
from ledger.store.db import Store


def _act(tx: int, log_index: int) -> dict[str, Any]:
    return {"chain_id": 31337, "period": 3, "kind": "redemption", "debtor": 1, "creditor": 2,
            "value": 7 * 10**30, "rate": 10**27, "tx_hash": "0x" + f"{tx:064x}",
            "block_number": 100 + tx, "log_index": log_index}


def _line(tx: int, act_log: int, log_index: int) -> dict[str, Any]:
    return {"tx_hash": "0x" + f"{tx:064x}", "act_log_index": act_log, "kind": "redemption",
            "block_number": 100 + tx, "log_index": log_index, "points_of": 1,
            "accepted_by": 2, "order_ref": "0x" + f"{log_index:064x}", "points": 7,
            "rate": 10**27, "value": 7 * 10**27}


def test_cleared_acts_insert_from_one_cached_statement_and_skip_rows_seen(store: Store) -> None:
    hits: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
             executemany: bool) -> None:
        if "cleared_" in statement and statement.lstrip().upper().startswith("INSERT"):
            # Compiled by SQLAlchemy (counted on PostgreSQL: RETURNING) or by insert_new once,
            # sent as SQL text to the driver (no compiled object: nothing compiled per round).
            hits.append((statement, context.compiled is None
                         or context.cache_hit == store.engine.dialect.CACHE_HIT))

    event.listen(store.engine, "before_cursor_execute", note)
    try:
        rounds = [(1, 3), (2, 5), (3, 8)]  # (tx, lines): every round a different row count
        for tx, n in rounds:
            with store.session() as s:
                added = repos.insert_acts(s, [_act(tx, n)],
                                          [_line(tx, n, i) for i in range(n)])
            assert added == 1
        with store.session() as s:  # a re-run of the last round adds nothing
            assert repos.insert_acts(s, [_act(3, 8)], [_line(3, 8, i) for i in range(8)]) == 0
    finally:
        event.remove(store.engine, "before_cursor_execute", note)
    # After the first round each insert comes from a compiled cache: the same SQL every round
    # (a multi-row VALUES would change with the row count), none compiled anew.
    assert len(hits) == 2 * (len(rounds) + 1), hits
    assert {sql for sql, _ in hits[0::2]} == {hits[0][0]}, hits
    assert {sql for sql, _ in hits[1::2]} == {hits[1][0]}, hits
    assert all(cached for _, cached in hits[2:]), hits
    with store.read_session() as s:
        acts = repos.period_acts(s, period=3)
    assert [len(a.lines) for a in acts] == [3, 5, 8]
    assert acts[2].value == 7 * 10**30 and acts[2].lines[7]["value"] == 7 * 10**27
    assert acts[2].lines[7]["order_ref"] == "0x" + f"{7:064x}"


def test_values_sent_by_the_driver_insert_go_through_the_processors_sqlalchemy_uses() -> None:
    """``insert_new`` runs its statement on the driver and puts each value through its
    column's bind processor itself: for every column of every table, on both databases, it
    takes one exactly where SQLAlchemy's own execution does (the generic type's processor
    missed PostgreSQL's JSON serialisation)."""
    from sqlalchemy.dialects import postgresql, sqlite

    from ledger.store.models import Base
    from ledger.store.tables import bind_processor

    checked = 0
    for dialect in (sqlite.dialect(), postgresql.psycopg.dialect()):
        for table in Base.metadata.tables.values():
            for column in table.c:
                ours = bind_processor(column, dialect)
                theirs = column.type._cached_bind_processor(dialect)
                assert (ours is None) == (theirs is None), (dialect.name, table.name, column.name)
                if ours is not None and theirs is not None:
                    sample = {"JSON": {"a": [1]}, "IntText": 10**30}.get(
                        type(column.type).__name__)
                    if sample is not None:
                        # (psycopg wraps JSON in an object without equality: compared by repr)
                        assert repr(ours(sample)) == repr(theirs(sample)), (table.name,
                                                                            column.name)
                checked += 1
    assert checked > 100
