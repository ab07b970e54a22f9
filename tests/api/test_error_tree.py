"""What the API answers when something below it fails: the chain node down or the database
locked is 503 problem+json with Retry-After (retry later, nothing was written), a broken
invariant of the ledger's own records is 500 with a stable code and nothing of the
internals."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.client import AllianceClient
from api.errors import ledger_error_status
from ledger.alliance import Alliance
from ledger.chain import anvil
from ledger.errors import (
    ItemCodeError,
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerPermissionError,
    LedgerSignatureError,
)
from ledger.merchants.service import admit_merchant
from ledger.outbox import repos as outbox_repos
from ledger.settings import Settings
from ledger.store.models import Merchant

from ..conftest import ARTIFACT_CACHE
from .conftest import ApiEnv, make_env

MEMBER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
ISSUE = {"member": MEMBER, "points": 10, "order_id": "ERR-1"}


def _ops(alliance: Alliance) -> int:
    with alliance.store.read_session() as s:
        return outbox_repos.count_operations(s)


def _is_retry_later(r: object, code: str) -> None:
    assert r.status_code == 503, r.text
    headers = r.headers
    assert headers["content-type"] == "application/problem+json"
    assert int(headers["retry-after"]) >= 1
    body = r.json()
    assert body["code"] == code and body["status"] == 503
    assert body["type"].endswith("/" + code)


# ---------------------------------------------------------------------- the chain node down


@pytest.fixture
def stopped_chain(tmp_path: Path) -> Iterator[tuple[Alliance, AllianceClient, Settings]]:
    """An alliance on an anvil of its own, serving the API, whose anvil is then stopped."""
    chain = Settings(data_dir=tmp_path / "chain")
    url = anvil.start(chain)
    try:
        settings = Settings(data_dir=tmp_path / "svc", rpc_url=url, chain_id=31337,
                            artifacts_dir=ARTIFACT_CACHE)
        alliance = Alliance.open(settings)
        m = admit_merchant(alliance, name="Lonely Store", symbol="LONE", rate=1)
        with TestClient(create_app(alliance, run_workers=False)) as http:
            anvil.stop(chain)
            yield alliance, AllianceClient(http, m.key_id, m.secret), settings
        alliance.close()
    finally:
        anvil.stop(chain)


def test_a_read_while_the_chain_node_is_down_is_503_with_retry_after(
        stopped_chain: tuple[Alliance, AllianceClient, Settings]) -> None:
    _, client, _ = stopped_chain
    r = client.get(f"/v1/members/{MEMBER}/balances")
    _is_retry_later(r, "chain-unavailable")
    assert "127.0.0.1" not in r.text  # the RPC URL (it may carry a key) stays in the log


def test_a_relayed_signature_while_the_chain_node_is_down_is_503_and_its_key_stays_free(
        stopped_chain: tuple[Alliance, AllianceClient, Settings]) -> None:
    """Checking a member's signature needs the chain's clock: with the node down the request
    is 503, writes nothing, and its Idempotency-Key is not spent on the failure (the retry
    runs again instead of replaying the 503)."""
    alliance, client, _ = stopped_chain
    before = _ops(alliance)
    redeem = {"member": MEMBER, "points": 5, "order_id": "ERR-R1", "nonce": 0,
              "deadline": 2_000_000_000, "signature": "0x" + "ab" * 65}
    first = client.post("/v1/points/redeem", redeem, idempotency_key="down-1")
    _is_retry_later(first, "chain-unavailable")
    again = client.post("/v1/points/redeem", redeem, idempotency_key="down-1")
    _is_retry_later(again, "chain-unavailable")
    assert "idempotent-replayed" not in again.headers
    assert _ops(alliance) == before


def test_an_issue_while_the_chain_node_is_down_is_still_queued(
        stopped_chain: tuple[Alliance, AllianceClient, Settings]) -> None:
    """An issue only writes the outbox: the worker sends it once the node is back."""
    alliance, client, _ = stopped_chain
    r = client.post("/v1/points/issue", ISSUE)
    assert r.status_code == 202, r.text
    assert _ops(alliance) == 1


# ---------------------------------------------------------------------- the database locked


@pytest.fixture
def impatient_env(settings: Settings) -> Iterator[ApiEnv]:
    """The API on a store whose writers wait 0.2 s for a lock (30 s by default)."""
    yield from make_env(settings.model_copy(update={"store_busy_timeout_s": 0.2}))


def _hold_write_lock(settings: Settings) -> sqlite3.Connection:
    """Another process's writer holding the store's lock (what a long migration or a stuck
    batch job does)."""
    conn = sqlite3.connect(settings.sqlite_path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    return conn


def test_a_write_while_the_database_is_locked_is_503_and_writes_nothing(
        impatient_env: ApiEnv) -> None:
    env = impatient_env
    settings = env.alliance.settings
    before = _ops(env.alliance)
    lock = _hold_write_lock(settings)
    try:
        r = env.store.post("/v1/points/issue", ISSUE, idempotency_key="locked-1")
        _is_retry_later(r, "store-unavailable")
        assert "database is locked" not in r.text  # the driver's words stay in the log
    finally:
        lock.rollback()
        lock.close()
    assert _ops(env.alliance) == before
    # Once the lock is gone the same request (same key) goes through: nothing was recorded.
    r = env.store.post("/v1/points/issue", ISSUE, idempotency_key="locked-1")
    assert r.status_code == 202, r.text
    assert "idempotent-replayed" not in r.headers
    assert _ops(env.alliance) == before + 1


def test_a_read_while_the_database_is_locked_is_503_not_a_crash(impatient_env: ApiEnv) -> None:
    """A GET writes one row (its signature, against replays) before the route runs: a locked
    store there is 503 problem+json too, not an unhandled error."""
    env = impatient_env
    lock = _hold_write_lock(env.alliance.settings)
    try:
        r = env.store.get("/v1/operations/op-none")
        _is_retry_later(r, "store-unavailable")
    finally:
        lock.rollback()
        lock.close()


# ---------------------------------------------------------------------- a broken invariant


def test_a_merchant_recorded_without_its_program_is_500_integrity_error_without_internals(
        env: ApiEnv, caplog: pytest.LogCaptureFixture) -> None:
    """Every admitted merchant has a point program: a record without one is the ledger's own
    defect (500 ``integrity-error``), not the caller's "not found"; the response names no
    table, address or merchant, the log has it all."""
    with env.alliance.store.session() as s:
        row = s.get(Merchant, env.store_merchant.merchant_id)
        assert row is not None
        program = row.program_address
        row.program_address = None
    before = _ops(env.alliance)
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        r = env.store.post("/v1/points/issue", ISSUE)
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "retry-after" not in r.headers
    body = r.json()
    assert body["code"] == "integrity-error" and body["type"].endswith("/integrity-error")
    assert set(body) == {"type", "title", "status", "detail", "code"}
    for leak in ("program", "Traceback", str(env.store_merchant.merchant_id), "0x"):
        assert leak not in body["detail"], body
    assert _ops(env.alliance) == before
    assert any("without the point program" in rec.getMessage() for rec in caplog.records)
    assert program is not None


def test_every_error_class_answers_with_the_specific_code_it_was_raised_with() -> None:
    # A service raising "not found: this gift" or "forbidden: that campaign" with its own code
    # must not reach the client as the generic class code (the code is what a client branches
    # on); before, only conflicts and validation errors carried it through.
    cases = [(LedgerNotFoundError("no such gift", code="offers-gift-unknown"), 404),
             (LedgerPermissionError("not your campaign", code="coupon-not-yours"), 403),
             (LedgerConflictError("used", code="coupon-voucher-used"), 409),
             (LedgerSignatureError("late", code="deadline-passed"), 422),
             (ItemCodeError("bad digit", code="invalid-gtin"), 422)]
    for exc, status in cases:
        assert ledger_error_status(exc)[:2] == (status, exc.code), exc
        assert exc.code != type(exc).code
    assert ledger_error_status(LedgerNotFoundError("plain"))[:2] == (404, "not-found")
