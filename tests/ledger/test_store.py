"""The store on SQLite and on a real PostgreSQL: migrations, idempotency records, nonce
reservation and outbox claims under concurrency, exact integers, secrets at rest."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from ledger import crypto
from ledger.crypto import MasterKey
from ledger.errors import LedgerConflictError
from ledger.settings import Settings
from ledger.store import repos
from ledger.store.db import Store, migrate
from ledger.store.models import PointEvent
from tests.pg import postgres_server


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        base: str = request.getfixturevalue("pg_url")
        schema_db = f"t{uuid.uuid4().hex[:12]}"
        admin = Store(base)
        with admin.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text(f"CREATE DATABASE {schema_db}"))
        admin.dispose()
        url = base.rsplit("/", 1)[0] + "/" + schema_db
    migrate(url)
    s = Store(url)
    yield s
    s.dispose()


@pytest.fixture
def master(tmp_path: Path) -> MasterKey:
    return MasterKey.load(Settings(data_dir=tmp_path))


def _merchant(store: Store, master: MasterKey, mid: int = 1) -> None:
    with store.session() as s:
        repos.add_merchant(s, merchant_id=mid, name=f"M{mid}", account=f"0x{mid:040x}",
                           program=f"0x{mid + 100:040x}", signing_key=master.encrypt(b"k"))


def test_migrations_are_idempotent(store: Store) -> None:
    migrate(store.url)  # a second upgrade is a no-op
    with store.session() as s:
        assert repos.count_operations(s) == 0


def test_idempotency_record_replays_and_refuses_another_body(store: Store) -> None:
    ttl = timedelta(hours=24)
    with store.session() as s:
        assert repos.idempotency_begin(s, principal="k", key="a", fingerprint="f1",
                                       ttl=ttl) is None
        repos.idempotency_complete(s, principal="k", key="a", status_code=202, body="{}",
                                   content_type="application/json")
    with store.session() as s:
        stored = repos.idempotency_begin(s, principal="k", key="a", fingerprint="f1", ttl=ttl)
        assert stored is not None and (stored.status_code, stored.body) == (202, "{}")
    with pytest.raises(LedgerConflictError), store.session() as s:
        repos.idempotency_begin(s, principal="k", key="a", fingerprint="f2", ttl=ttl)
    with store.session() as s:  # the same key under another principal is another record
        assert repos.idempotency_begin(s, principal="other", key="a", fingerprint="f2",
                                       ttl=ttl) is None


def test_fifty_concurrent_nonce_reservations_are_contiguous(store: Store) -> None:
    got: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def reserve() -> None:
        try:
            with store.session() as s:
                n = repos.reserve_nonces(s, chain_id=1, address="0xabc", count=1,
                                         chain_nonce=lambda: 7)
            with lock:
                got.append(n)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=reserve) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(got) == list(range(7, 57))


def test_outbox_never_hands_one_operation_to_two_workers(store: Store,
                                                         master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        for i in range(40):
            repos.enqueue_operation(s, merchant_id=1, kind="issue",
                                    payload={"items": [{"n": i}]}, signer="0x1")
    claimed: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with store.session() as s:
                ops = repos.claim_operations(s, merchant_id=1, max_lines=3)
                ids = [o.id for o in ops]
            if not ids:
                return
            with lock:
                claimed.extend(ids)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 40 and len(set(claimed)) == 40


def test_large_integers_round_trip_exactly(store: Store) -> None:
    big = 2**96 + 12345
    with store.session() as s:
        repos.insert_point_events(s, [{
            "chain_id": 1, "program": "0x" + "1" * 40, "merchant_id": 1,
            "member": "0x" + "2" * 40, "kind": "issued", "amount": big, "order_ref": None,
            "tx_hash": "0x" + "3" * 64, "block_number": 1, "log_index": 0}])
    with store.session() as s:
        (row,) = s.query(PointEvent).all()
        assert row.amount == big and isinstance(row.amount, int)


def test_secrets_are_stored_encrypted(store: Store, master: MasterKey) -> None:
    _merchant(store, master)
    with store.session() as s:
        key_id, secret = repos.create_credential(s, master, merchant_id=1, role="merchant")
    with store.engine.connect() as c:
        raw = c.execute(text("SELECT secret_enc FROM api_credentials")).scalar_one()
        signing = c.execute(text("SELECT signing_key_enc FROM merchants")).scalar_one()
    assert secret.encode() not in bytes(raw)
    assert b"k" != bytes(signing) and len(bytes(signing)) > 50
    with store.session() as s:
        cred = repos.get_credential(s, master, key_id)
        assert cred is not None and cred.secret == secret


def test_member_ids_are_kept_only_as_keyed_pseudonyms(store: Store, master: MasterKey) -> None:
    with store.session() as s:
        first = repos.member_account(s, master, member_id="13800138000")
    with store.session() as s:
        assert repos.member_account(s, master, member_id="13800138000") == first
        assert repos.member_account(s, master, member_id="13800138001") != first
    with store.engine.connect() as c:
        dump = " ".join(str(v) for row in c.execute(text("SELECT * FROM members")) for v in row)
    assert "13800138000" not in dump


def test_pseudonym_depends_on_the_key() -> None:
    assert crypto.pseudonym("m-1", b"k" * 32) != crypto.pseudonym("m-1", b"j" * 32)
    assert crypto.pseudonym("m-1", b"k" * 32) == crypto.pseudonym("m-1", b"k" * 32)
