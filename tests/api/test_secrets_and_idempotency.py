"""Where secrets go (never into a replay record or a world-readable file) and what an
idempotency key does after a server error (it is free again, as Stripe does)."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.client import AllianceClient
from api.idempotency import IN_PROGRESS_LEASE
from ledger.errors import ChainError
from ledger.merchants import service as merchants
from ledger.outbox import repos as outbox_repos
from ledger.points import service as points
from ledger.store.models import IdempotencyRecord, utcnow

from .conftest import ApiEnv

MEMBER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def _store_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in data_dir.iterdir()
                    if p.is_file() and ".db" in p.name)


def test_admission_replay_returns_the_secret_but_the_store_never_holds_it_in_clear(
        env: ApiEnv) -> None:
    body = {"name": "Starlight Cinema", "symbol": "STAR", "rate": 5}
    first = env.admin.post("/v1/admin/merchants", body, idempotency_key="admit-1")
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    again = env.admin.post("/v1/admin/merchants", body, idempotency_key="admit-1")
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["secret"] == secret
    with env.alliance.store.read_session() as s:
        rows = s.execute(select(IdempotencyRecord)).scalars().all()
        assert rows and all(secret not in (r.body or "") for r in rows)
    env.alliance.store.dispose()  # checkpoint nothing away: read the files as they are
    assert secret.encode() not in _store_bytes(env.alliance.settings.data_dir)


def test_the_data_dir_and_the_database_files_are_private(env: ApiEnv) -> None:
    data = env.alliance.settings.data_dir
    env.store.post("/v1/points/issue", {"member": MEMBER, "points": 1, "order_id": "M-1"})
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [p for p in data.iterdir() if p.is_file() and ".db" in p.name]
    assert {p.name.rsplit(".db", 1)[1] for p in files} >= {"", "-wal", "-shm"}
    for p in files:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def _flaky(real: Any, exc: Exception) -> Any:
    calls = {"n": 0}

    def call(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise exc
        return real(*args, **kwargs)

    return call


@pytest.mark.parametrize("exc", [RuntimeError("boom"), ChainError("node unreachable")])
def test_a_key_is_free_again_after_a_server_error_on_a_queued_request(
        env: ApiEnv, monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    monkeypatch.setattr(points, "request_issue", _flaky(points.request_issue, exc))
    http = TestClient(env.http.app, raise_server_exceptions=False)
    m = env.store_merchant
    client = AllianceClient(http, m.key_id, m.secret)
    payload = {"member": MEMBER, "points": 7, "order_id": "FLAKY-1"}
    first = client.post("/v1/points/issue", payload, idempotency_key="flaky-1")
    assert first.status_code >= 500
    assert first.headers["content-type"] == "application/problem+json"
    retry = client.post("/v1/points/issue", payload, idempotency_key="flaky-1")
    assert retry.status_code == 202, retry.text
    assert "idempotent-replayed" not in retry.headers
    with env.alliance.store.session() as s:
        assert outbox_repos.count_operations(s) == 1


def test_a_key_is_free_again_after_a_server_error_on_an_operator_action(
        env: ApiEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(merchants, "suspend_merchant",
                        _flaky(merchants.suspend_merchant, RuntimeError("crash mid-way")))
    http = TestClient(env.http.app, raise_server_exceptions=False)
    admin = AllianceClient(http, env.admin.key_id, env.admin.secret)
    path = f"/v1/admin/merchants/{env.cafe_merchant.merchant_id}/suspend"
    first = admin.post(path, None, idempotency_key="suspend-1")
    assert first.status_code == 500
    assert first.headers["content-type"] == "application/problem+json"
    assert first.json()["code"] == "internal-error"
    retry = admin.post(path, None, idempotency_key="suspend-1")
    assert retry.status_code == 200, retry.text
    assert retry.json()["status"] == "suspended"


def test_a_claim_left_by_a_dead_process_is_taken_over_after_its_lease(env: ApiEnv) -> None:
    payload = {"member": MEMBER, "points": 3, "order_id": "LEASE-1"}
    r = env.store.post("/v1/points/issue", payload, idempotency_key="lease-1")
    assert r.status_code == 202
    # Make that record look like a claim whose process died before recording a response.
    with env.alliance.store.session() as s:
        row = s.get(IdempotencyRecord, (env.store_merchant.key_id, "lease-1"))
        assert row is not None
        row.status_code = None
        row.created_at = utcnow() - IN_PROGRESS_LEASE + timedelta(minutes=1)
    stuck = env.store.post("/v1/points/issue", payload, idempotency_key="lease-1")
    assert stuck.status_code == 409 and stuck.json()["code"] == "request-in-progress"
    with env.alliance.store.session() as s:
        row = s.get(IdempotencyRecord, (env.store_merchant.key_id, "lease-1"))
        assert row is not None
        row.created_at = utcnow() - IN_PROGRESS_LEASE - timedelta(minutes=1)
    taken = env.store.post("/v1/points/issue", payload, idempotency_key="lease-1")
    # The request runs again (its order id was queued by the first run: the service says so).
    assert taken.json().get("code") != "request-in-progress", taken.text
