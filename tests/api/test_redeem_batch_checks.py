"""A redeem-batch request checks its lines (the chain's reads, every member's signature)
before it takes the store's one writer, and only queues under it: its checks no longer hold
every other request, the outbox and the indexer behind them. What the checks find is still
answered in the request's own transaction: a refusal is recorded under its idempotency key
and replayed, and a suspended merchant meets 403 before any line's verdict."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from eth_account import Account

from ledger.points.reads import chain_now
from ledger.settings import Settings
from tests.ledger.helpers import sign_redemption

from .conftest import ApiEnv, make_env


@pytest.fixture
def quiet_env(settings: Settings) -> Iterator[ApiEnv]:
    # No workers: the node hears from nothing but the request under test.
    yield from make_env(settings, run_workers=False)


def _line(env: ApiEnv, order_id: str, *, nonce: int = 0, deadline: int | None = None
          ) -> dict[str, object]:
    member = Account.create()
    deadline = chain_now(env.alliance) + 600 if deadline is None else deadline
    sig = sign_redemption(member, program=env.store_merchant.program,
                          chain_id=env.alliance.gateway.chain_id,
                          registry=env.alliance.contracts.registry.address, amount=5,
                          merchant_id=env.cafe_merchant.merchant_id, order_id=order_id,
                          nonce=nonce, deadline=deadline)
    return {"member": member.address, "points": 5, "order_id": order_id, "nonce": nonce,
            "deadline": deadline, "signature": sig,
            "program_merchant_id": env.store_merchant.merchant_id}


def test_a_redeem_batch_reads_the_chain_for_its_checks_while_another_holds_the_writer(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    body = {"items": [_line(env, f"WR-{i}") for i in range(3)]}
    answer: list[httpx.Response] = []
    gw = env.alliance.gateway

    def trips() -> int:  # the checks' batch goes through the gateway's lean client, counted
        return gw.round_trips

    with env.alliance.store.session():  # the store's one writer, held by this thread
        before = trips()
        sender = threading.Thread(target=lambda: answer.append(
            env.cafe.post("/v1/points/redeem-batch", body)))
        sender.start()
        deadline = time.monotonic() + 30
        while trips() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        read_while_held = trips() - before
        assert not answer  # it cannot queue while the writer is held
    sender.join(60)
    assert read_while_held >= 1, "the request's checks waited for the store's writer"
    assert answer and answer[0].status_code == 202, answer[0].text if answer else None
    assert [op["status"] for op in answer[0].json()["operations"]] == ["queued"]


def test_a_refused_redeem_batch_is_recorded_under_its_key_and_replayed(
        quiet_env: ApiEnv) -> None:
    env = quiet_env
    body = {"items": [_line(env, "RF-0"), _line(env, "RF-1", deadline=1)]}
    key = str(uuid.uuid4())
    first = env.cafe.post("/v1/points/redeem-batch", body, idempotency_key=key)
    assert first.status_code == 422 and first.json()["code"] == "deadline-passed"
    assert first.json()["index"] == 1
    again = env.cafe.post("/v1/points/redeem-batch", body, idempotency_key=key)
    assert again.status_code == 422 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
