"""A reorganisation of depth 3 made with anvil's ``anvil_reorg``: the last three blocks (an
issue, a redemption at another merchant that clears, another issue) are replaced by three
new ones that carry only the first issue again, one block later. The read model (points,
clearing) rolls back to the common ancestor and re-applies, and matches the chain after (the
drift report, which compares every stored point event and cleared act with the chain's logs,
finds nothing). Webhooks: what the reorg undid before delivery is withdrawn; what was
delivered gets an ``event.reverted``; the issue that came back in another block is a new
event; what the follower re-read below the reorg (it rewinds further than the reorg reached)
is untouched."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import select

from ledger.alliance import Alliance
from ledger.audit.drift import drift_report
from ledger.clearing import service as clearing
from ledger.clearing import statements
from ledger.merchants.service import AdmittedMerchant
from ledger.points.reads import history
from ledger.points.service import request_issue, request_redeem
from ledger.runtime import indexer, outbox_worker
from ledger.settings import Settings
from ledger.store.models import ChainTx, ChainTxOperation, Operation
from ledger.webhooks import service as webhooks
from ledger.webhooks.worker import WebhookWorker
from tests.servers import free_port

from .helpers import sign_redemption


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhooks_allow_private": True})


class Receiver:
    def __init__(self, *, fail: bool) -> None:
        self.ids: list[str] = []
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.ids.append(self.headers["X-Alliance-Event-Id"])
                receiver.bodies.append(json.loads(body))
                self.send_response(500 if fail else 204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    ok, failing = Receiver(fail=False), Receiver(fail=True)
    try:
        yield ok, failing
    finally:
        for r in (ok, failing):
            r.server.shutdown()
            r.server.server_close()


def _raw_tx_of(alliance: Alliance, order_id: str) -> str:
    """The signed transaction that carried the operation of ``order_id``."""
    with alliance.store.read_session() as s:
        ops = [o for o in s.scalars(select(Operation)) if order_id in json.dumps(o.payload)]
        assert len(ops) == 1
        link = s.scalars(select(ChainTxOperation).where(
            ChainTxOperation.operation_id == ops[0].id)).one()
        tx = s.get(ChainTx, link.tx_hash)
        assert tx is not None
        return tx.raw


def test_a_reorg_of_depth_three_rolls_the_read_model_back_and_reapplies_it(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        chain_snapshot: None, receivers: tuple[Receiver, Receiver]) -> None:
    gw = alliance.gateway
    store_id, cafe_id = store_merchant.merchant_id, cafe_merchant.merchant_id
    ok, failing = receivers
    with alliance.store.session() as s:
        store_hook = webhooks.create_endpoint(alliance, s, merchant_id=store_id, url=ok.url,
                                              events=["points.issued"]).endpoint.id
        cafe_hook = webhooks.create_endpoint(alliance, s, merchant_id=cafe_id, url=failing.url,
                                             events=["points.foreign_accepted"]).endpoint.id
    kept_member, member = Account.create(), Account.create()
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store_id, member=kept_member.address, points=9,
                      order_id="KEEP-1")
    outbox_worker(alliance).drain()
    follower = indexer(alliance)
    follower.catch_up()
    ancestor = gw.block_number()
    period = alliance.contracts.clearing.current_period()

    # Three blocks: an issue, the member's redemption at the cafe, another issue.
    deadline = int(gw.block("latest")["timestamp"]) + 3600
    sig = sign_redemption(member, program=store_merchant.program, chain_id=gw.chain_id,
                          registry=alliance.contracts.registry.address, amount=6,
                          merchant_id=cafe_id, order_id="LOST-SPEND", nonce=0,
                          deadline=deadline)
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store_id, member=member.address, points=20,
                      order_id="BACK-EARN")
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=cafe_id, member=member.address, points=6,
                       order_id="LOST-SPEND", nonce=0, deadline=deadline, signature=sig,
                       program_merchant_id=store_id)
    outbox_worker(alliance).drain()
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=store_id, member=member.address, points=4,
                      order_id="LOST-EARN")
    outbox_worker(alliance).drain()
    assert gw.block_number() == ancestor + 3
    follower.catch_up()
    assert [e["amount"] for e in history(alliance, member=member.address)[0]] == [4, 6, 20]
    assert statements.statement(alliance, period=period, merchant_id=cafe_id
                                ).document["totals"]["net"] == 6
    # The store's endpoint receives its three issues; the cafe's receiver fails (its
    # foreign acceptance stays pending, retried in an hour).
    WebhookWorker(alliance, backoff=lambda n: 3600.0).drain()
    store_log = webhooks.deliveries
    with alliance.store.read_session() as s:
        before = store_log(s, merchant_id=store_id, endpoint_id=store_hook).deliveries
        cafe_before = store_log(s, merchant_id=cafe_id, endpoint_id=cafe_hook).deliveries
    assert [d.state for d in before] == ["delivered"] * 3
    assert [(d.type, d.state, d.attempts) for d in cafe_before] == [
        ("points.foreign_accepted", "pending", 1)]

    # Depth 3: the three blocks are replaced; the second new one carries the first issue.
    raw = _raw_tx_of(alliance, "BACK-EARN")
    gw.rpc("anvil_reorg", [3, [[raw, 1]]])
    assert gw.block_number() == ancestor + 3
    follower.catch_up()

    # The read model is the chain's: the issue is back (in its new block), the redemption,
    # its cleared act and the second issue are gone.
    events = history(alliance, member=member.address)[0]
    assert [(e["kind"], e["amount"]) for e in events] == [("issued", 20)]
    assert events[0]["block_number"] == ancestor + 2
    program = alliance.contracts.program(store_merchant.program)
    assert program.balance_of(member.address) == 20
    assert [e["amount"] for e in history(alliance, member=kept_member.address)[0]] == [9]
    chain_net = clearing.position(alliance, merchant_id=cafe_id, period=period).net
    stored = statements.statement(alliance, period=period, merchant_id=cafe_id)
    assert chain_net == stored.document["totals"]["net"] == 0
    report = drift_report(alliance)
    assert report.as_dict()["drifts"] == [], report.as_dict()["drifts"]
    assert report.compared["point_events"] >= 2

    # Webhooks: the cafe's undelivered acceptance is withdrawn; the store was told that the
    # two issues it received are reverted, then gets the issue that came back, as a new id.
    WebhookWorker(alliance, backoff=lambda n: 3600.0).drain()
    with alliance.store.read_session() as s:
        after = store_log(s, merchant_id=store_id, endpoint_id=store_hook).deliveries
        cafe_after = store_log(s, merchant_id=cafe_id, endpoint_id=cafe_hook).deliveries
    assert cafe_after == []
    assert [d.type for d in after] == ["points.issued"] * 3 + ["event.reverted"] * 2 + [
        "points.issued"]
    assert all(d.state == "delivered" for d in after)
    assert after[0].event_id == before[0].event_id  # KEEP-1: below the reorg, untouched
    reverted = [b["data"]["event_id"] for b in ok.bodies if b["type"] == "event.reverted"]
    assert reverted == [before[1].event_id, before[2].event_id]
    assert after[-1].event_id == before[1].event_id + ".2"
    assert ok.ids == [d.event_id for d in after]
    assert ok.bodies[-1]["data"]["points"] == 20
    assert ok.bodies[-1]["data"]["block_number"] == ancestor + 2
