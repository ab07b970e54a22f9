"""The store on SQLite and on a real PostgreSQL (every test runs on both): migrations,
idempotency records, nonce reservation and outbox claims under concurrency, exact integers,
secrets at rest, members, replay guard, read model."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, select, text, update
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session

from ledger import crypto
from ledger.crypto import MasterKey
from ledger.errors import LedgerConflictError, LedgerNotFoundError
from ledger.indexer import repos as cursors
from ledger.members import repos as member_repos
from ledger.merchants import repos as merchant_repos
from ledger.outbox import repos as outbox_repos
from ledger.outbox.views import operation_view
from ledger.points import kinds as points_kinds
from ledger.points import repos as point_repos
from ledger.points.kinds import IssueLinePayload, IssuePayload
from ledger.store import repos
from ledger.store.db import MIGRATIONS, WAL_CHECKPOINT_BYTES, Store, migrate
from ledger.store.models import (
    Base,
    ChainTx,
    ChainTxOperation,
    IdempotencyRecord,
    Operation,
    OperationStatus,
    PointEvent,
    UsedSignature,
    utcnow,
)
from tests.ledger.conftest import fresh_pg_database


def _merchant(store: Store, master: MasterKey, mid: int = 1) -> None:
    with store.session() as s:
        merchant_repos.add_merchant(s, merchant_id=mid, name=f"M{mid}", account=f"0x{mid:040x}",
                           program=f"0x{mid + 100:040x}", signing_key=master.encrypt(b"k"))


def _op(s: Session, op_id: str) -> Operation:
    op = outbox_repos.get_operation(s, op_id)
    assert op is not None
    return op


def _in_threads(n: int, fn: Callable[[int], None]) -> list[BaseException]:
    """Run ``fn(i)`` in ``n`` threads released together; give the exceptions they raised."""
    errors: list[BaseException] = []
    gate = threading.Barrier(n)

    def run(i: int) -> None:
        try:
            gate.wait()
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


# ---------------------------------------------------------------------- migrations


@pytest.mark.migrate_from_empty
def test_migrate_from_empty_gives_the_models_schema(store: Store) -> None:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    with store.engine.connect() as c:
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head
        diffs = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}),
                                 Base.metadata)
    assert diffs == []


def test_migrate_twice_is_a_no_op(store: Store, master: MasterKey) -> None:
    _merchant(store, master)
    migrate(store.url)
    with store.session() as s:
        assert [m.id for m in merchant_repos.list_merchants(s)] == [1]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_first_migrations_all_succeed(backend: str, request: pytest.FixtureRequest,
                                                 tmp_path: Path) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        url = fresh_pg_database(request.getfixturevalue("pg_url"))
    assert _in_threads(4, lambda _: migrate(url)) == []
    store = Store(url)
    try:
        with store.session() as s:
            assert outbox_repos.count_operations(s) == 0
    finally:
        store.dispose()


def test_in_memory_sqlite_store_works(master: MasterKey) -> None:
    store = Store("sqlite://")
    try:
        Base.metadata.create_all(store.engine)
        _merchant(store, master)
        with store.session() as s:
            assert [m.id for m in merchant_repos.list_merchants(s)] == [1]
    finally:
        store.dispose()


def _sqlite_blobs(tmp_path: Path) -> tuple[Store, Path]:
    """A store on a fresh SQLite file with one table of blobs, and its write-ahead log."""
    db = tmp_path / "blobs.db"
    store = Store(f"sqlite:///{db}")
    with store.session() as s:
        s.execute(text("CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB)"))
    return store, Path(f"{db}-wal")


def test_a_sqlite_checkpoint_runs_after_the_writer_is_released(tmp_path: Path) -> None:
    """The commit that finds the write-ahead log grown checkpoints it only after it has let
    the store's writer go: another thread takes the writer meanwhile. (SQLite checkpointed
    inside that commit, 25-60 ms a 4 MiB log here, while the thread held the writer.)"""
    store, wal = _sqlite_blobs(tmp_path)
    try:
        # 40 MiB in the log, not checkpointed (written by a connection of its own).
        raw = sqlite3.connect(wal.with_name("blobs.db"), isolation_level=None)
        raw.execute("PRAGMA wal_autocheckpoint=0")
        for _ in range(40):
            raw.execute("INSERT INTO blobs (data) VALUES (?)", (os.urandom(1 << 20),))
        raw.close()
        assert wal.stat().st_size > 40 << 20
        writer = store._write_lock
        assert writer is not None
        entered = threading.Event()
        done: dict[str, float] = {}

        def committer() -> None:
            with store.session() as s:
                s.execute(text("INSERT INTO blobs (data) VALUES (x'00')"))
                entered.set()
            done["session"] = time.perf_counter()

        t = threading.Thread(target=committer)
        t.start()
        assert entered.wait(10)
        with writer:  # the writer, as the next request would take it (no commit of its own)
            done["writer"] = time.perf_counter()
        t.join(60)
        assert done["writer"] < done["session"], "the writer was held through the checkpoint"
        # The checkpoint ran: the next commit starts the log afresh.
        with store.session() as s:
            s.execute(text("INSERT INTO blobs (data) VALUES (x'01')"))
        assert wal.stat().st_size < 1 << 20
        with store.read_session() as s:
            assert s.execute(text("SELECT count(*) FROM blobs")).scalar_one() == 42
    finally:
        store.dispose()


def test_a_sqlite_stores_log_is_checkpointed_and_cut_back_as_it_writes(tmp_path: Path) -> None:
    """With SQLite's own checkpoint off, the store's keeps the log near its checkpoint size
    however much is written (30 MiB here)."""
    store, wal = _sqlite_blobs(tmp_path)
    try:
        largest = 0
        for _ in range(30):
            with store.session() as s:
                s.execute(text("INSERT INTO blobs (data) VALUES (:d)"),
                          {"d": os.urandom(1 << 20)})
            largest = max(largest, wal.stat().st_size)
        assert largest < WAL_CHECKPOINT_BYTES + (3 << 20), largest
    finally:
        store.dispose()


def test_session_rolls_back_on_error(store: Store, master: MasterKey) -> None:
    with pytest.raises(RuntimeError), store.session() as s:
        merchant_repos.add_merchant(s, merchant_id=9, name="x", account="0x" + "9" * 40,
                                    program=None, signing_key=master.encrypt(b"k"))
        raise RuntimeError("boom")
    with store.session() as s:
        assert merchant_repos.get_merchant(s, 9) is None


# ---------------------------------------------------------------------- merchants


def test_merchant_status_and_program_are_updated(store: Store, master: MasterKey) -> None:
    with store.session() as s:
        merchant_repos.add_merchant(s, merchant_id=3, name="Cafe", account="0x" + "3" * 40,
                                    program=None, signing_key=master.encrypt(b"k"))
    with store.session() as s:
        merchant_repos.set_merchant_status(s, 3, "suspended")
        merchant_repos.set_merchant_program(s, 3, "0x" + "4" * 40)
    with store.session() as s:
        m = merchant_repos.get_merchant(s, 3)
        assert m is not None and (m.status, m.program_address) == ("suspended", "0x" + "4" * 40)
        with pytest.raises(LedgerNotFoundError):
            merchant_repos.set_merchant_status(s, 99, "active")


# ---------------------------------------------------------------------- idempotency


def test_idempotency_record_replays_and_refuses_another_body(store: Store) -> None:
    ttl = timedelta(hours=24)
    with store.session() as s:
        assert repos.idempotency_begin(s, principal="k", key="a", fingerprint="f1",
                                       ttl=ttl) is None
        repos.idempotency_complete(s, principal="k", key="a", status_code=202, body="{}",
                                   content_type="application/json")
    with store.session() as s:
        stored = repos.idempotency_begin(s, principal="k", key="a", fingerprint="f1", ttl=ttl)
        assert stored is not None
        assert (stored.status_code, stored.body, stored.content_type) == (
            202, "{}", "application/json")
    with pytest.raises(LedgerConflictError), store.session() as s:
        repos.idempotency_begin(s, principal="k", key="a", fingerprint="f2", ttl=ttl)
    with store.session() as s:  # the same key under another principal is another record
        assert repos.idempotency_begin(s, principal="other", key="a", fingerprint="f2",
                                       ttl=ttl) is None


def test_idempotency_concurrent_begins_admit_exactly_one(store: Store) -> None:
    firsts: list[int] = []
    replays: list[int | None] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        with store.session() as s:
            got = repos.idempotency_begin(s, principal="k", key="same", fingerprint="f",
                                          ttl=timedelta(hours=24))
            if got is None:
                time.sleep(0.05)  # hold the claim while the others arrive
                repos.idempotency_complete(s, principal="k", key="same", status_code=201,
                                           body=str(i), content_type="text/plain")
        with lock:
            if got is None:
                firsts.append(i)
            else:
                replays.append(got.status_code)

    assert _in_threads(8, attempt) == []
    assert len(firsts) == 1 and len(replays) == 7
    # A claim becomes visible with its response: they commit in one transaction.
    assert replays == [201] * 7


def test_idempotency_records_live_at_least_a_day_and_expire(store: Store) -> None:
    with store.session() as s:
        repos.idempotency_begin(s, principal="k", key="a", fingerprint="f1",
                                ttl=timedelta(minutes=1))
    with store.session() as s:
        row = s.get(IdempotencyRecord, ("k", "a"))
        assert row is not None and row.expires_at - row.created_at >= timedelta(hours=24)
        s.execute(update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    with store.session() as s:  # an expired key starts afresh, even with another body
        assert repos.idempotency_begin(s, principal="k", key="a", fingerprint="f2",
                                       ttl=timedelta(hours=24)) is None
        s.execute(update(IdempotencyRecord).values(expires_at=utcnow() - timedelta(seconds=1)))
    with store.session() as s:
        assert repos.purge_idempotency(s) == 1
        assert s.scalar(select(IdempotencyRecord)) is None


# ---------------------------------------------------------------------- replay guard


def test_request_signature_is_accepted_once(store: Store) -> None:
    age = timedelta(minutes=5)
    with store.session() as s:
        assert repos.remember_signature(s, "key1", "sig", max_age=age) is True
        assert repos.remember_signature(s, "key1", "sig", max_age=age) is False
        assert repos.remember_signature(s, "key2", "sig", max_age=age) is True
    with store.session() as s:
        assert repos.remember_signature(s, "key1", "sig", max_age=age) is False
        s.execute(update(UsedSignature).where(UsedSignature.key_id == "key1")
                  .values(seen_at=utcnow() - timedelta(minutes=6)))
    with store.session() as s:
        assert repos.purge_signatures(s, max_age=age) == 1
        assert repos.remember_signature(s, "key2", "sig", max_age=age) is False


# ---------------------------------------------------------------------- one request, one statement


def _claim(s: Session, *, mid: int = 1, sig: str = "sig-1", key: str = "key-1",
           fp: str = "fp-1") -> repos.RequestClaim | None:
    return repos.claim_merchant_request(
        s, merchant_id=mid, key_id="mk_1", signature=sig, signature_max_age=timedelta(minutes=10),
        principal="mk_1", key=key, fingerprint=fp, ttl=timedelta(hours=24))


@pytest.fixture
def pg_store(pg_url: str, migrated_pg: str) -> Iterator[Store]:
    """A migrated store on PostgreSQL only (the one-statement claim is PostgreSQL's)."""
    s = Store(fresh_pg_database(pg_url, template=migrated_pg))
    yield s
    s.dispose()


def _written(store: Store) -> tuple[list[str], list[str]]:
    with store.read_session() as s:
        return (sorted(s.scalars(select(UsedSignature.signature))),
                sorted(s.scalars(select(IdempotencyRecord.key))))


def test_a_merchant_request_is_read_spent_and_claimed_in_one_statement_on_postgresql(
        store: Store, master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    _merchant(store, master)
    # The once-a-minute purges of expired records are not this request's: a claim makes them
    # when none ran in the process for a minute (so in this test alone, or after a slow one).
    now = time.monotonic()
    monkeypatch.setattr(repos, "_last_purge", {"signatures": now, "idempotency": now})
    seen: list[str] = []
    with store.session() as s:
        def log(conn: object, cursor: object, statement: str, *a: object) -> None:
            seen.append(statement)

        event.listen(store.engine, "before_cursor_execute", log)
        try:
            got = _claim(s)
        finally:
            event.remove(store.engine, "before_cursor_execute", log)
        if store.engine.dialect.name != "postgresql":
            assert got is None and seen == []  # the caller takes the statements one by one
            return
        assert got is not None and got.signature_new and got.claim_new
        assert got.merchant is not None and got.merchant.status == "active"
        # The row is the session's own: the service's read of the merchant costs nothing.
        assert merchant_repos.get_merchant(s, 1) is got.merchant
    assert len(seen) == 1, seen
    assert _written(store) == (["sig-1"], ["key-1"])


def test_a_replayed_signature_writes_nothing_and_claims_no_key(pg_store: Store,
                                                              master: MasterKey) -> None:
    _merchant(pg_store, master)
    with pg_store.session() as s:
        assert (got := _claim(s)) is not None and got.claim_new
    with pg_store.session() as s:  # the captured request again, under another key
        got = _claim(s, key="key-2")
        assert got is not None and not got.signature_new and not got.claim_new
    assert _written(pg_store) == (["sig-1"], ["key-1"])


def test_a_suspended_or_unknown_merchants_request_spends_nothing(pg_store: Store,
                                                                 master: MasterKey) -> None:
    _merchant(pg_store, master)
    with pg_store.session() as s:
        merchant_repos.set_merchant_status(s, 1, "suspended")
    with pg_store.session() as s:
        got = _claim(s)
        assert got is not None and got.merchant is not None
        assert got.merchant.status == "suspended"
        assert not got.signature_new and not got.claim_new
        unknown = _claim(s, mid=99, sig="sig-2", key="key-2")
        assert unknown == repos.RequestClaim(None, False, False)
    assert _written(pg_store) == ([], [])


def test_a_new_signature_on_a_used_key_is_spent_and_leaves_the_key_to_idempotency_begin(
        pg_store: Store, master: MasterKey) -> None:
    _merchant(pg_store, master)
    with pg_store.session() as s:
        assert (got := _claim(s)) is not None and got.claim_new
        repos.idempotency_complete(s, principal="mk_1", key="key-1", status_code=202,
                                   body="{}", content_type="application/json")
    with pg_store.session() as s:  # an honest retry: same key and body, a fresh signature
        got = _claim(s, sig="sig-2")
        assert got is not None and got.signature_new and not got.claim_new
        stored = repos.idempotency_begin(s, principal="mk_1", key="key-1", fingerprint="fp-1",
                                         ttl=timedelta(hours=24))
        assert stored is not None and stored.status_code == 202
    assert _written(pg_store) == (["sig-1", "sig-2"], ["key-1"])


def test_concurrent_sends_of_one_signed_request_claim_once(pg_store: Store,
                                                           master: MasterKey) -> None:
    _merchant(pg_store, master)
    results: list[tuple[bool, bool]] = []
    lock = threading.Lock()

    def attempt(i: int) -> None:
        with pg_store.session() as s:
            got = _claim(s, key=f"key-{i % 2}")
            assert got is not None
            time.sleep(0.05)  # hold what it wrote while the others arrive
        with lock:
            results.append((got.signature_new, got.claim_new))

    assert _in_threads(8, attempt) == []
    assert sorted(results) == [(False, False)] * 7 + [(True, True)]
    assert len(_written(pg_store)[0]) == 1 and len(_written(pg_store)[1]) == 1


# ---------------------------------------------------------------------- nonces


def test_fifty_concurrent_nonce_reservations_are_contiguous(store: Store) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def reserve(_: int) -> None:
        with store.session() as s:
            n = repos.reserve_nonces(s, chain_id=1, address="0xabc", count=1,
                                     chain_nonce=lambda: 7)
        with lock:
            got.append(n)

    assert _in_threads(50, reserve) == []
    assert sorted(got) == list(range(7, 57))


def test_concurrent_multi_nonce_reservations_never_overlap(store: Store) -> None:
    ranges: list[range] = []
    lock = threading.Lock()

    def reserve(i: int) -> None:
        count = 1 + i % 4
        with store.session() as s:
            first = repos.reserve_nonces(s, chain_id=5, address="0xdef", count=count,
                                         chain_nonce=lambda: 0)
        with lock:
            ranges.append(range(first, first + count))

    assert _in_threads(20, reserve) == []
    taken = sorted(n for r in ranges for n in r)
    assert taken == list(range(sum(1 + i % 4 for i in range(20))))


def test_nonce_counter_follows_a_chain_that_moved_ahead(store: Store) -> None:
    asked: list[int] = []

    def pending() -> int:
        asked.append(1)
        return 3

    with store.session() as s:
        assert repos.reserve_nonces(s, chain_id=1, address="0xa", count=2,
                                    chain_nonce=pending) == 3
        assert repos.reserve_nonces(s, chain_id=1, address="0xa", count=1,
                                    chain_nonce=pending) == 5
        assert asked == [1]  # the node is asked only for a new counter
        assert repos.reserve_nonces(s, chain_id=1, address="0xa", count=1, chain_nonce=pending,
                                    chain_floor=10) == 10
        assert repos.reserve_nonces(s, chain_id=1, address="0xa", count=1, chain_nonce=pending,
                                    chain_floor=4) == 11  # a lagging node never lowers it
        assert repos.reserve_nonces(s, chain_id=2, address="0xa", count=1, chain_nonce=pending,
                                    chain_floor=8) == 8  # counters are per chain


# ---------------------------------------------------------------------- outbox


def test_outbox_never_hands_one_operation_to_two_workers(store: Store,
                                                         master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        for i in range(40):
            outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue",
                                    payload={"items": [{"n": i}]}, signer="0x1")
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(_: int) -> None:
        while True:
            with store.session() as s:
                ids = [o.id for o in outbox_repos.claim_operations(s, merchant_id=1, max_lines=3)]
            if not ids:
                return
            with lock:
                claimed.extend(ids)

    assert _in_threads(4, worker) == []
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_queued_counts_capped_give_each_merchant_with_queued_work_up_to_the_cap(
        store: Store, master: MasterKey) -> None:
    for mid in (1, 2, 3, 5):
        _merchant(store, master, mid)
    queued = {1: 7, 3: 2, 5: 4}  # merchant 2 has only claimed and sent work
    with store.session() as s:
        for mid, n in {**queued, 2: 3}.items():
            for i in range(n):
                outbox_repos.enqueue_operation(s, merchant_id=mid, kind="issue",
                                               payload={"n": i}, signer="0x1")
        outbox_repos.claim_operations(s, merchant_id=2, max_lines=10)
        outbox_repos.claim_operations(s, merchant_id=1, max_lines=2)  # 5 of 7 left
    with store.read_session() as s:
        assert outbox_repos.queued_counts(s) == {1: 5, 3: 2, 5: 4}
        for cap in (1, 3, 4, 200):
            capped = outbox_repos.queued_counts(s, cap=cap)
            assert list(capped) == [1, 3, 5]  # in merchant order, as the uncapped count
            assert capped == {1: min(5, cap), 3: min(2, cap), 5: min(4, cap)}
    with store.session() as s:
        for mid in (1, 3, 5):
            outbox_repos.claim_operations(s, merchant_id=mid, max_lines=10)
    with store.read_session() as s:
        assert outbox_repos.queued_counts(s, cap=200) == {}


def test_outbox_operation_goes_from_queued_to_confirmed(store: Store, master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        ops = [outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue", payload={"n": i},
                                       signer="0x1") for i in range(3)]
        ids = [o.id for o in ops]
    with store.session() as s:
        assert _op(s, ids[0]).status == "queued"
        assert list(outbox_repos.queued_counts(s)) == [1]
        claimed = outbox_repos.claim_operations(s, merchant_id=1, max_lines=10)
        assert [o.id for o in claimed] == ids and {o.status for o in claimed} == {"sending"}
        assert outbox_repos.claim_operations(s, merchant_id=1, max_lines=10) == []
    with store.session() as s:
        outbox_repos.record_submission(s, op_ids=ids[:2], chain_id=1, signer="0x1",
                                tx_hash="0x" + "a" * 64, nonce=0, raw="0x00", max_fee=2**96,
                                priority_fee=1)
        outbox_repos.fail_operations(s, ids[2:], error_code="PointsOrderRefUsed",
                                     error_message="dup")
    with store.session() as s:
        (tx,) = outbox_repos.unsettled_transactions(s)
        assert (tx.nonce, tx.max_fee, set(tx.op_ids)) == (0, 2**96, set(ids[:2]))
        links = s.scalars(select(ChainTxOperation.operation_id)).all()
        assert set(links) == set(ids[:2])
        outbox_repos.confirm_operations(s, ids[:2], tx_hash="0x" + "a" * 64, block_number=12)
    with store.session() as s:
        assert [_op(s, i).status for i in ids] == ["confirmed", "confirmed", "failed"]
        assert _op(s, ids[0]).block_number == 12
        assert _op(s, ids[2]).error_code == "PointsOrderRefUsed"
        chain_tx = s.get(ChainTx, "0x" + "a" * 64)
        assert chain_tx is not None and (chain_tx.status, chain_tx.mined_block) == ("mined", 12)
        assert outbox_repos.unsettled_transactions(s) == []


def test_the_outbox_sends_postgresql_one_statement_text_per_step_whatever_its_operations(
        pg_store: Store, master: MasterKey) -> None:
    """Claiming, recording and confirming a transaction of 2 operations and one of 3 run the
    same statement texts (the operations as one array; a text per count was parsed and
    planned anew each time), no statement is executed once per operation (the links went
    one INSERT each), and claiming is two statements, recording and confirming one each (were
    3, 4 and 3)."""
    _merchant(pg_store, master)
    executed: list[tuple[str, bool]] = []

    def note(conn: object, cursor: object, statement: str, params: object, context: object,
             executemany: bool) -> None:
        executed.append((statement, executemany))

    texts: list[set[str]] = []
    for n, tx_hash in ((2, "0x" + "a" * 64), (3, "0x" + "b" * 64)):
        with pg_store.session() as s:
            ids = [outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue",
                                                  payload={"n": i}, signer="0x1").id
                   for i in range(n)]
        event.listen(pg_store.engine, "before_cursor_execute", note)
        try:
            with pg_store.session() as s:
                claimed = outbox_repos.claim_operations(s, merchant_id=1, max_lines=10)
                assert [o.id for o in claimed] == ids
                assert [o.payload for o in claimed] == [{"n": i} for i in range(n)]
            with pg_store.session() as s:
                outbox_repos.record_submission(s, op_ids=ids, chain_id=1, signer="0x1",
                                               tx_hash=tx_hash, nonce=n, raw="0x00",
                                               max_fee=1, priority_fee=1, lines=n)
            with pg_store.session() as s:
                outbox_repos.confirm_operations(s, ids, tx_hash=tx_hash, block_number=n)
        finally:
            event.remove(pg_store.engine, "before_cursor_execute", note)
        assert not any(many for _, many in executed)
        # the claim's two (candidates; claimed, with their payloads); the record's one; the
        # confirmation's one
        assert len(executed) == 4
        texts.append({statement for statement, _ in executed})
        executed.clear()
        with pg_store.session() as s:
            assert [_op(s, i).status for i in ids] == ["confirmed"] * n
            assert sorted(s.scalars(select(ChainTxOperation.operation_id)
                                    .where(ChainTxOperation.tx_hash == tx_hash))) == sorted(ids)
    assert texts[0] == texts[1]


def test_a_transaction_recorded_again_keeps_its_record_and_a_mined_one_replaces_its_rival(
        store: Store, master: MasterKey) -> None:
    """The same signed transaction recorded again (its operations queued again after the
    chain lost it) is pending again with its links kept, once each; a transaction mined at a
    nonce marks the other one still pending at that nonce ``replaced`` (both stores: on
    PostgreSQL each is one statement)."""
    _merchant(store, master)
    a, b = "0x" + "a" * 64, "0x" + "b" * 64
    with store.session() as s:
        ids = [outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue", payload={"n": i},
                                              signer="0x1").id for i in range(3)]
    record: dict[str, Any] = {"chain_id": 1, "signer": "0x1", "nonce": 7, "raw": "0x00",
                              "max_fee": 2**96, "priority_fee": 1}
    with store.session() as s:
        outbox_repos.claim_operations(s, merchant_id=1, max_lines=10)
        outbox_repos.record_submission(s, op_ids=ids[:2], tx_hash=a, **record)
        outbox_repos.record_submission(s, op_ids=ids[2:], tx_hash=b, **record)
        outbox_repos.confirm_operations(s, ids[:2], tx_hash=a, block_number=5)
    with store.session() as s:
        tx_a, tx_b = s.get(ChainTx, a), s.get(ChainTx, b)
        assert tx_a is not None and tx_b is not None
        assert (tx_a.status, tx_a.mined_block, tx_a.lines, tx_a.max_fee) == ("mined", 5, 2, 2**96)
        assert tx_b.status == "replaced"
        outbox_repos.unmine_from(s, chain_id=1, signer="0x1", nonce=7)
        outbox_repos.requeue_operations(s, ids[:2], error_code="chain-lost-it")
        assert [o.id for o in outbox_repos.claim_operations(s, merchant_id=1, max_lines=10)] \
            == ids[:2]
        outbox_repos.record_submission(s, op_ids=ids[:2], tx_hash=a, **record)
    with store.session() as s:
        tx_a = s.get(ChainTx, a)
        assert tx_a is not None and (tx_a.status, tx_a.mined_block) == ("pending", None)
        assert sorted(s.scalars(select(ChainTxOperation.operation_id)
                                .where(ChainTxOperation.tx_hash == a))) == sorted(ids[:2])
        assert [(_op(s, i).status, _op(s, i).tx_hash) for i in ids[:2]] == [("submitted", a)] * 2
        (unsettled,) = [t for t in outbox_repos.unsettled_transactions(s) if t.tx_hash == a]
        assert set(unsettled.op_ids) == set(ids[:2])


def test_claimed_but_unsent_operations_are_requeued_on_restart(store: Store,
                                                               master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        op = outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue", payload={},
                                            signer="0x1")
        outbox_repos.claim_operations(s, merchant_id=1, max_lines=1)
    with store.session() as s:
        assert outbox_repos.requeue_sending(s) == 1
    with store.session() as s:
        again = outbox_repos.claim_operations(s, merchant_id=1, max_lines=1)
        assert [o.id for o in again] == [op.id] and again[0].attempts == 2


def test_operation_status_reads_back_as_its_enum_and_refuses_other_text(
        store: Store, master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        op_id = outbox_repos.enqueue_operation(s, merchant_id=1, kind="issue", payload={},
                                               signer="0x1").id
    with store.session() as s:
        op = _op(s, op_id)
        assert type(op.status) is OperationStatus and op.status is OperationStatus.QUEUED
        outbox_repos.claim_operations(s, merchant_id=1, max_lines=1)
    with store.session() as s:
        assert _op(s, op_id).status is OperationStatus.SENDING
    with pytest.raises(StatementError, match="'lost' is not a valid OperationStatus"), \
            store.session() as s:
        s.execute(update(Operation).where(Operation.id == op_id).values(status="lost"))


def test_a_typed_payload_is_stored_as_the_json_the_views_read(store: Store,
                                                              master: MasterKey) -> None:
    _merchant(store, master)
    member = "0x" + "ab" * 20
    lines = tuple(IssueLinePayload(member, 10 + i, f"O-{i}", bytes([i]) * 32, 0)
                  for i in range(3))
    with store.session() as s:
        op = outbox_repos.enqueue(s, kind=points_kinds.ISSUE_BATCH, payload=IssuePayload(lines),
                                  merchant_id=1, signer="0x1")
        op_id = op.id
    with store.session() as s:
        row = _op(s, op_id)
        assert (row.kind, row.lines) == ("issue_batch", 3)
        assert row.payload["items"][1] == {"member": member, "points": 11, "order_id": "O-1",
                                           "order_ref": "0x" + "01" * 32, "release_at": 0}
        assert operation_view(row).items == 3
        assert points_kinds.ISSUE_BATCH.parse(row.payload) == IssuePayload(lines)


# ---------------------------------------------------------------------- exact integers


def test_large_integers_round_trip_exactly(store: Store) -> None:
    big = 2**96 + 12345
    with store.session() as s:
        point_repos.insert_point_events(s, [{
            "chain_id": 1, "program": "0x" + "1" * 40, "merchant_id": 1,
            "member": "0x" + "2" * 40, "kind": "issued", "amount": big, "order_ref": None,
            "tx_hash": "0x" + "3" * 64, "block_number": 1, "log_index": 0}])
        s.add(ChainTx(tx_hash="0x" + "4" * 64, chain_id=1, signer="0x1", nonce=0, raw="0x",
                      max_fee=2**256 - 1, priority_fee=0))
    with store.session() as s:
        row = s.scalars(select(PointEvent)).one()
        assert row.amount == big and type(row.amount) is int
        tx = s.get(ChainTx, "0x" + "4" * 64)
        assert tx is not None and tx.max_fee == 2**256 - 1


def test_amounts_refuse_floats(store: Store) -> None:
    with pytest.raises(Exception, match="IntText takes int"), store.session() as s:
        point_repos.insert_point_events(s, [{
            "chain_id": 1, "program": "0x1", "merchant_id": 1, "member": "0x2",
            "kind": "issued", "amount": 1.5, "order_ref": None, "tx_hash": "0x3",
            "block_number": 1, "log_index": 0}])


# ---------------------------------------------------------------------- secrets at rest


def test_secrets_are_stored_encrypted(store: Store, master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        key_id, secret = repos.create_credential(s, master, merchant_id=1, role="merchant")
        named = repos.get_or_create_secret(s, master, "test-secret", lambda: b"plain-value-1")
    with store.engine.connect() as c:
        raw, fp = c.execute(text("SELECT secret_enc, secret_fingerprint FROM api_credentials")
                            ).one()
        signing = c.execute(text("SELECT signing_key_enc FROM merchants")).scalar_one()
        stored = c.execute(text("SELECT value_enc FROM secrets WHERE name = 'test-secret'")
                           ).scalar_one()
    assert secret.encode() not in bytes(raw) and fp == crypto.fingerprint(secret)
    assert master.decrypt(bytes(signing)) == b"k" and b"k" != bytes(signing)
    assert named == b"plain-value-1" and b"plain-value-1" not in bytes(stored)
    with store.session() as s:
        cred = repos.get_credential(s, master, key_id)
        assert cred is not None and (cred.secret, cred.merchant_id, cred.role) == (
            secret, 1, "merchant")
        assert repos.get_or_create_secret(s, master, "test-secret", lambda: b"other") == named


def test_revoked_credential_is_reported_revoked(store: Store, master: MasterKey) -> None:
    with store.session() as s:
        key_id, _ = repos.create_credential(s, master, merchant_id=None, role="admin")
        assert repos.get_credential(s, master, "nope") is None
    with store.session() as s:
        repos.revoke_credential(s, key_id)
    with store.session() as s:
        cred = repos.get_credential(s, master, key_id)
        assert cred is not None and cred.revoked and cred.merchant_id is None
        with pytest.raises(LedgerNotFoundError):
            repos.revoke_credential(s, "nope")


# ---------------------------------------------------------------------- members


def test_member_ids_are_kept_only_as_keyed_pseudonyms(store: Store, master: MasterKey) -> None:
    with store.session() as s:
        first = member_repos.get_or_create_member(s, master, member_id="13800138000")
    with store.session() as s:
        assert member_repos.get_or_create_member(s, master, member_id="13800138000") == first
        assert member_repos.member_account(s, master, member_id="13800138000") == first.account
        assert member_repos.member_account(s, master, member_id="13800138001") != first.account
    with store.engine.connect() as c:
        dump = " ".join(str(v) for row in c.execute(text("SELECT * FROM members")) for v in row)
    assert "13800138000" not in dump and first.pseudonym in dump


def test_concurrent_first_sight_of_a_member_records_it_once(store: Store,
                                                            master: MasterKey) -> None:
    accounts: list[str] = []

    def see(_: int) -> None:
        with store.session() as s:
            accounts.append(member_repos.member_account(s, master, member_id="m-42"))

    assert _in_threads(6, see) == []
    assert len(set(accounts)) == 1
    with store.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM members")).scalar_one() == 1
        assert c.execute(text("SELECT count(*) FROM secrets")).scalar_one() == 1


def test_linked_wallet_becomes_the_member_address(store: Store, master: MasterKey) -> None:
    wallet = "0x" + "5" * 40
    with store.session() as s:
        view = member_repos.link_wallet(s, master, member_id="m-1", wallet=wallet)
        assert view.wallet == wallet and view.address == wallet != view.account
    with store.session() as s:
        assert member_repos.member_account(s, master, member_id="m-1") == wallet
        assert member_repos.link_wallet(s, master, member_id="m-1", wallet=wallet).wallet == wallet
    with pytest.raises(LedgerConflictError), store.session() as s:
        member_repos.link_wallet(s, master, member_id="m-2", wallet=wallet)


# ---------------------------------------------------------------------- read model


def _event(i: int, member: str = "0x" + "2" * 40) -> dict[str, object]:
    return {"chain_id": 1, "program": "0x" + "1" * 40, "merchant_id": 1, "member": member,
            "kind": "issued", "amount": i, "order_ref": f"0x{i:064x}",
            "tx_hash": f"0x{i // 2:064x}", "block_number": i // 2, "log_index": i % 2}


def test_point_events_insert_once_and_page_newest_first(store: Store) -> None:
    member = "0x" + "2" * 40
    with store.session() as s:
        assert point_repos.insert_point_events(s, [_event(i) for i in range(5)]) == 5
        assert point_repos.insert_point_events(s, [_event(i) for i in range(3, 7)]) == 2
        assert point_repos.insert_point_events(s, [_event(9, member="0x" + "8" * 40)]) == 1
    with store.session() as s:
        page, cursor = point_repos.member_events(s, member=member, limit=4, cursor=None)
        assert [e["amount"] for e in page] == [6, 5, 4, 3] and cursor is not None
        rest, end = point_repos.member_events(s, member=member, limit=4, cursor=cursor)
        assert [e["amount"] for e in rest] == [2, 1, 0] and end is None
        point_repos.delete_events_after(s, 1)
    with store.session() as s:
        page, _ = point_repos.member_events(s, member=member, limit=10, cursor=None)
        assert [e["amount"] for e in page] == [3, 2, 1, 0]


def test_indexer_cursor_is_saved(store: Store) -> None:
    with store.session() as s:
        assert cursors.get_cursor(s, "points") is None
        cursors.set_cursor(s, "points", 5, "0xaa")
    with store.session() as s:
        cursors.set_cursor(s, "points", 6, "0xbb")
    with store.session() as s:
        assert cursors.get_cursor(s, "points") == (6, "0xbb")


def _backend_pid(store: Store) -> int:
    with store.session() as s:
        return int(s.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_pooled_connection_the_server_closed_is_replaced_at_checkout_without_a_ping(
        pg_store: Store, pg_url: str) -> None:
    """A backend terminated while its connection sat in the pool (as a PostgreSQL restart
    ends them all): the next session gets a live connection and succeeds, no error reaches
    the caller; a live pooled connection is handed out again with no statement before the
    caller's (the pool's pre-ping sent SELECT 1 on every checkout)."""
    first = _backend_pid(pg_store)
    pings: list[str] = []

    def log(conn: object, cursor: object, statement: str, *a: object) -> None:
        pings.append(statement)

    event.listen(pg_store.engine, "before_cursor_execute", log)
    try:
        assert _backend_pid(pg_store) == first  # the same pooled connection, reused
    finally:
        event.remove(pg_store.engine, "before_cursor_execute", log)
    assert pings == ["SELECT pg_backend_pid()"]
    assert not pg_store.engine.pool._pre_ping  # type: ignore[attr-defined]
    admin = Store(pg_url)
    try:
        # Each poll its own transaction: PostgreSQL keeps one snapshot of pg_stat_activity
        # for the whole of a transaction, so polling inside one can see the backend for ever.
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            assert c.execute(text("SELECT pg_terminate_backend(:p)"), {"p": first}).scalar()
            deadline = time.monotonic() + 10
            while c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                            {"p": first}).scalar():
                assert time.monotonic() < deadline, "the backend did not go"
                time.sleep(0.05)
    finally:
        admin.dispose()
    second = _backend_pid(pg_store)  # no StoreUnavailableError: the dead one was discarded
    assert second != first
    assert _backend_pid(pg_store) == second


def test_a_claim_reads_the_payload_column_only_for_operations_not_held(
        store: Store, master: MasterKey) -> None:
    _merchant(store, master)
    lines = (IssueLinePayload("0x" + "ab" * 20, 10, "O-1", b"\x01" * 32, 0),)
    with store.session() as s:
        held = outbox_repos.enqueue(s, kind=points_kinds.ISSUE_BATCH,
                                    payload=IssuePayload(lines), merchant_id=1,
                                    signer="0x1").id
        # as another process queues it: nothing held here
        other = outbox_repos.enqueue_operation(
            s, merchant_id=1, kind="issue_batch", signer="0x1",
            payload=points_kinds.ISSUE_BATCH.dump(IssuePayload(lines))).id
    with store.session() as s:
        a, b = outbox_repos.claim_operations(s, merchant_id=1, max_lines=10)
        assert (a.id, a.held, a.payload) == (held, IssuePayload(lines), None)
        assert (b.id, b.held) == (other, None)
        assert points_kinds.ISSUE_BATCH.parse(b.payload or {}) == IssuePayload(lines)
        assert outbox_repos.claimed_payload(s, a) == b.payload
    assert outbox_repos.QUEUED_PAYLOADS.take(held, "issue_batch") is None  # taken by the claim


def test_a_payload_evicted_while_its_operation_is_claimed_is_read_from_its_column(
        store: Store, master: MasterKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held when the claim chose it (so on PostgreSQL the claim did not return its column),
    gone from this process's payloads when the claim took it: read from the column."""
    _merchant(store, master)
    payload = IssuePayload((IssueLinePayload("0x" + "ab" * 20, 10, "O-1", b"\x01" * 32, 0),))
    with store.session() as s:
        op_id = outbox_repos.enqueue(s, kind=points_kinds.ISSUE_BATCH, payload=payload,
                                     merchant_id=1, signer="0x1").id
    assert op_id in outbox_repos.QUEUED_PAYLOADS
    take = outbox_repos.QueuedPayloads.take

    def evicted(self: outbox_repos.QueuedPayloads, op_id: str, kind: str) -> None:
        take(self, op_id, kind)  # evicted by other operations queued meanwhile
        return None

    monkeypatch.setattr(outbox_repos.QueuedPayloads, "take", evicted)
    with store.session() as s:
        (claimed,) = outbox_repos.claim_operations(s, merchant_id=1, max_lines=10)
    assert (claimed.id, claimed.held) == (op_id, None)
    assert points_kinds.ISSUE_BATCH.parse(claimed.payload or {}) == payload
