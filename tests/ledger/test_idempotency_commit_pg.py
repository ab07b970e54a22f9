"""The recorded response and COMMIT of a queueing request in one round trip on a real
PostgreSQL (``repos.idempotency_complete_and_commit``): what it records is committed with the
request's writes, nothing is committed when the record is missing, and the two statements
share one answer of the server."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from ledger.crypto import MasterKey
from ledger.errors import LedgerNotFoundError, StoreUnavailableError
from ledger.merchants import repos as merchant_repos
from ledger.store import repos
from ledger.store.db import Store, migrate
from ledger.store.models import IdempotencyRecord
from tests.ledger.conftest import fresh_pg_database


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    url = fresh_pg_database(pg_url)
    migrate(url)
    store = Store(url)
    yield store
    store.dispose()


def _claim(store: Store, key: str) -> None:
    with store.session() as s:
        assert repos.idempotency_begin(s, principal="k1", key=key, fingerprint="f",
                                       ttl=timedelta(days=1), lease=timedelta(minutes=10)
                                       ) is None


def _add_merchant(s: object, master: MasterKey, mid: int) -> None:
    merchant_repos.add_merchant(s, merchant_id=mid, name=f"M{mid}",  # type: ignore[arg-type]
                                account=f"0x{mid:040x}", program=f"0x{mid + 100:040x}",
                                signing_key=master.encrypt(b"k"))


def test_the_response_is_committed_with_the_requests_writes_in_one_round_trip(
        pg_store: Store, master: MasterKey) -> None:
    _claim(pg_store, "key-1")
    with tempfile.TemporaryFile("w+") as trace, pg_store.session() as s:
        _add_merchant(s, master, 1)
        s.flush()
        raw = s.connection().connection.driver_connection
        assert raw is not None
        raw.pgconn.trace(trace.fileno())
        assert repos.idempotency_complete_and_commit(
            s, principal="k1", key="key-1", status_code=202, body="sealed",
            content_type="application/json")
        raw.pgconn.untrace()
        trace.flush()
        os.fsync(trace.fileno())
        trace.seek(0)
        answers = [line for line in trace.read().splitlines() if "ReadyForQuery" in line]
    # the UPDATE and the COMMIT answered together: one ReadyForQuery, the transaction idle
    assert len(answers) == 1 and answers[0].rstrip().endswith("I")
    with pg_store.session() as s:
        rec = s.scalars(select(IdempotencyRecord)).one()
        assert (rec.status_code, rec.body, rec.content_type) == (202, "sealed",
                                                                 "application/json")
        assert [m.id for m in merchant_repos.list_merchants(s)] == [1]


def test_nothing_is_committed_when_the_record_is_missing(pg_store: Store,
                                                         master: MasterKey) -> None:
    _claim(pg_store, "key-1")
    with pytest.raises(LedgerNotFoundError), pg_store.session() as s:
        _add_merchant(s, master, 2)
        repos.idempotency_complete_and_commit(
            s, principal="k1", key="no-such-key", status_code=202, body="sealed",
            content_type="application/json")
    with pg_store.session() as s:
        assert merchant_repos.list_merchants(s) == []
        rec = s.scalars(select(IdempotencyRecord)).one()
        assert rec.status_code is None  # the claim stays in progress, untouched
    # the pooled connection is usable again
    with pg_store.session() as s:
        _add_merchant(s, master, 3)
    with pg_store.session() as s:
        assert [m.id for m in merchant_repos.list_merchants(s)] == [3]


def test_sqlite_is_left_to_the_statements_one_by_one(tmp_path: object) -> None:
    store = Store(f"sqlite:///{tmp_path}/one.db")
    migrate(store.url)
    try:
        with store.session() as s:
            assert not repos.idempotency_complete_and_commit(
                s, principal="k1", key="k", status_code=202, body="b", content_type="c")
    finally:
        store.dispose()


def test_a_connection_lost_before_the_commit_is_the_stores_503_and_nothing_stays(
        pg_store: Store, pg_url: str, master: MasterKey) -> None:
    _claim(pg_store, "key-1")
    admin = Store(pg_url)
    try:
        with pytest.raises(StoreUnavailableError), pg_store.session() as s:
            _add_merchant(s, master, 4)
            s.flush()
            pid = s.execute(text("SELECT pg_backend_pid()")).scalar_one()
            with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
                deadline = time.monotonic() + 10
                while c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                {"p": pid}).scalar():
                    assert time.monotonic() < deadline, "the backend did not go"
                    time.sleep(0.05)
            repos.idempotency_complete_and_commit(
                s, principal="k1", key="key-1", status_code=202, body="sealed",
                content_type="application/json")
    finally:
        admin.dispose()
    # nothing of that transaction stayed, and the store answers again on a new connection
    with pg_store.session() as s:
        assert merchant_repos.list_merchants(s) == []
        assert s.scalars(select(IdempotencyRecord)).one().status_code is None
