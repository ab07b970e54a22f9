"""/health, /ready and /metrics through the ASGI app with its workers running, on anvil."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from eth_account import Account

from ledger.merchants.service import fund_merchant
from ledger.outbox import worker as outbox_worker_module
from ledger.settings import Settings

from .conftest import ApiEnv, make_env


@pytest.fixture
def unfunded_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[ApiEnv]:
    """An API whose service funds no relaying key (the hand-funded set-up): the demo
    merchants' fresh keys hold nothing."""
    monkeypatch.setattr(outbox_worker_module, "UNFUNDED_RETRY_S", 0.05)
    yield from make_env(settings.model_copy(update={"relayer_funding_wei": 0}))


def _until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_health_answers_without_credentials(env: ApiEnv) -> None:
    r = env.http.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_checks_chain_store_workers_and_signers(env: ApiEnv) -> None:
    r = env.http.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ready"] is True
    assert set(body["checks"]) == {"chain", "store", "workers", "signers"}
    assert body["checks"]["chain"]["block"] > 0
    assert set(body["checks"]["workers"]["running"]) >= {"outbox", "indexer"}


def test_ready_says_not_ready_while_a_relaying_key_cannot_pay(unfunded_env: ApiEnv) -> None:
    env = unfunded_env
    account = env.store_merchant.account
    assert env.alliance.gateway.balance(account) == 0
    r = env.store.post("/v1/points/issue", {"member": Account.create().address, "points": 3,
                                            "order_id": "OPS-UNFUNDED"})
    assert r.status_code == 202, r.text
    op_id = r.json()["id"]

    def waiting() -> bool:
        return env.store.get(f"/v1/operations/{op_id}").json()["error_code"] == \
            "signer-unfunded"

    _until(waiting)
    op = env.store.get(f"/v1/operations/{op_id}").json()
    assert op["status"] == "queued" and account in op["error_message"]
    r = env.http.get("/ready")
    assert r.status_code == 503
    signers = r.json()["checks"]["signers"]
    assert signers["ok"] is False
    assert [u["address"] for u in signers["unfunded"]] == [account]
    assert r.json()["checks"]["chain"]["ok"] and r.json()["checks"]["store"]["ok"]

    fund_merchant(env.alliance, merchant_id=env.store_merchant.merchant_id, wei=10**18)
    _until(lambda: env.store.get(f"/v1/operations/{op_id}").json()["status"] == "confirmed")
    assert env.http.get("/ready").status_code == 200


def _metric(text: str, line_start: str) -> float:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {line_start} in\n{text}")


def test_metrics_count_requests_by_route_template_and_the_outbox(env: ApiEnv) -> None:
    missing = str(uuid.uuid4())
    assert env.store.get(f"/v1/operations/{missing}").status_code == 404
    assert env.http.get("/v1/merchants/me").status_code == 401  # refused by the guard
    r = env.store.post("/v1/points/issue", {"member": Account.create().address, "points": 7,
                                            "order_id": "OPS-METRICS"})
    assert r.status_code == 202
    op_id = r.json()["id"]
    _until(lambda: env.store.get(f"/v1/operations/{op_id}").json()["status"] == "confirmed")

    r = env.http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _metric(text, 'alliance_http_requests_total{method="GET",'
                         'route="/v1/operations/{operation_id}",status="404"}') >= 1
    assert _metric(text, 'alliance_http_requests_total{method="GET",'
                         'route="/v1/merchants/me",status="401"}') >= 1
    assert _metric(text, 'alliance_http_requests_total{method="POST",'
                         'route="/v1/points/issue",status="202"}') >= 1
    assert missing not in text  # templates, never raw paths
    assert _metric(text, 'alliance_http_request_duration_seconds_count{method="POST",'
                         'route="/v1/points/issue"}') >= 1
    assert _metric(text, "alliance_transactions_sent_total") >= 1
    assert _metric(text, "alliance_transactions_confirmed_total") >= 1
    assert _metric(text, "alliance_confirmation_lag_seconds_count") >= 1
    assert _metric(text, 'alliance_outbox_operations{status="queued"}') == 0
    assert _metric(text, 'alliance_outbox_oldest_age_seconds{status="queued"}') == 0
    assert _metric(text, "alliance_indexer_blocks_behind") >= 0
    assert _metric(text, 'alliance_worker_up{worker="outbox"}') == 1
    assert _metric(text, "alliance_signers_unfunded") == 0
    assert "alliance_transactions_fee_bumps_total" in text
    assert 'alliance_worker_items_total{worker="outbox"}' in text
