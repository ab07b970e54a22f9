"""Webhooks of the coupon book and the item registry, on anvil + SQLite, delivered to
receivers on loopback ports with the points events' signing: coupon grants, redemptions,
rollbacks and vouchers (claimed, cancelled) reach the campaign's issuer (a redemption also
its acceptor); custody events reach the merchant that recorded them, the brand, and for a
shipment the merchant shipped to; a batch recall reaches the brand and each merchant holding
an item of it. A reorg that undoes a delivered grant sends ``event.reverted`` for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account

from api.auth import sign as request_signature
from ledger import runtime
from ledger.alliance import Alliance
from ledger.coupons.demo import seed_demo_coupons
from ledger.coupons.service import (
    create_voucher,
    member_coupons,
    request_cancel_voucher,
    request_claim_voucher,
    request_create_campaign,
    request_grant,
    request_rollback,
)
from ledger.indexer.follower import _events_at
from ledger.items import service as items
from ledger.merchants.service import AdmittedMerchant
from ledger.settings import Settings
from ledger.types import MerchantId
from ledger.webhooks import service
from ledger.webhooks.projection import WebhookProjection
from ledger.webhooks.worker import WebhookWorker

from .test_items_ledger import FACTORY, SHOP, Setup, setup  # noqa: F401 - the fixture
from .test_webhooks_flow import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The session's settings with loopback receivers allowed (tests only)."""
    return settings.model_copy(update={"webhooks_allow_private": True})


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    a, b = Receiver(), Receiver()
    try:
        yield a, b
    finally:
        for r in (a, b):
            r.server.shutdown()
            r.server.server_close()


def _hook(alliance: Alliance, merchant_id: int, url: str, events: list[str]
          ) -> service.CreatedEndpoint:
    with alliance.store.session() as s:
        return service.create_endpoint(alliance, s, merchant_id=MerchantId(merchant_id),
                                       url=url, events=events)


def _settle(alliance: Alliance) -> None:
    runtime.outbox_worker(alliance).drain()
    runtime.indexer(alliance).catch_up()


def _received(receiver: Receiver, made: service.CreatedEndpoint, merchant_id: int
              ) -> list[dict[str, Any]]:
    """The bodies the receiver got, each checked: signed with the endpoint's secret the
    way requests are, addressed to the merchant, its id in the header."""
    out = []
    for path, headers, raw in receiver.requests:
        body = json.loads(raw)
        assert body["id"] == headers["X-Alliance-Event-Id"]
        assert body["merchant_id"] == merchant_id
        assert headers["X-Alliance-Signature"] == request_signature(
            made.secret, headers["X-Alliance-Timestamp"], body["id"], "POST", path, raw)
        out.append(body)
    return out


def test_coupon_grants_vouchers_redemptions_and_rollbacks_reach_issuer_and_acceptor(
        alliance: Alliance, store_merchant: AdmittedMerchant, cafe_merchant: AdmittedMerchant,
        receivers: tuple[Receiver, Receiver]) -> None:
    issuer, acceptor = store_merchant.merchant_id, cafe_merchant.merchant_id
    to_issuer, to_acceptor = receivers
    coupon_types = ["coupons.granted", "coupons.redeemed", "coupons.rolled_back",
                    "coupons.voucher_claimed", "coupons.voucher_cancelled"]
    issuer_hook = _hook(alliance, issuer, to_issuer.url, coupon_types)
    acceptor_hook = _hook(alliance, acceptor, to_acceptor.url, ["*"])
    # A grant to the wallet, its coupon redeemed at the cafe (the demo's), then rolled back.
    wallet = Account.create()
    campaign = seed_demo_coupons(alliance, runtime.outbox_worker(alliance), store=issuer,
                                 cafe=acceptor, member_ids=[], wallet_key=bytes(wallet.key))
    _settle(alliance)
    with alliance.store.read_session() as s:
        (held,) = member_coupons(alliance, s, holder=wallet.address)
    with alliance.store.session() as s:
        request_rollback(alliance, s, merchant_id=acceptor, coupon_id=held["coupon_id"],
                         order_id="demo-CAFE-coupon-1")
    _settle(alliance)
    # A voucher claimed, another cancelled.
    claimer = Account.create().address
    now = int(alliance.gateway.block("latest")["timestamp"])
    with alliance.store.session() as s:
        claimed = create_voucher(alliance, s, merchant_id=issuer, campaign_id=campaign,
                                 expires_at=now + 3600)
        cancelled = create_voucher(alliance, s, merchant_id=issuer, campaign_id=campaign,
                                   expires_at=now + 3600)
        request_claim_voucher(alliance, s, merchant_id=issuer, code=claimed.code, to=claimer)
        request_cancel_voucher(alliance, s, merchant_id=issuer, code=cancelled.code)
    _settle(alliance)
    WebhookWorker(alliance).drain()

    got = _received(to_issuer, issuer_hook, issuer)
    assert [b["type"] for b in got] == [
        "coupons.granted", "coupons.redeemed", "coupons.rolled_back", "coupons.granted",
        "coupons.voucher_claimed", "coupons.voucher_cancelled"]
    grant, redeemed, rolled_back, minted, voucher, cancel = (b["data"] for b in got)
    assert (grant["coupon_id"], grant["campaign_id"], grant["holder"], grant["issuer"]) == (
        held["coupon_id"], campaign, wallet.address, issuer)
    assert grant["granted_at"] > 0
    assert (redeemed["coupon_id"], redeemed["accepted_by"], redeemed["discount"]) == (
        held["coupon_id"], acceptor, "1000")
    assert (rolled_back["coupon_id"], rolled_back["discount"]) == (held["coupon_id"], "1000")
    assert minted["holder"] == claimer and minted["coupon_id"] == voucher["coupon_id"]
    assert (voucher["voucher_id"], voucher["holder"]) == (str(claimed.voucher_id), claimer)
    assert cancel["voucher_id"] == str(cancelled.voucher_id)
    assert "coupon_id" not in cancel
    # The acceptor subscribed to everything: it gets the redemption and its rollback, never
    # the issuer's grants or vouchers.
    theirs = _received(to_acceptor, acceptor_hook, acceptor)
    assert [b["type"] for b in theirs if b["type"].startswith("coupons.")] == [
        "coupons.redeemed", "coupons.rolled_back"]
    assert [b["id"] for b in theirs if b["type"] == "coupons.redeemed"] != [got[1]["id"]]


def test_custody_events_reach_recorder_brand_and_destination_and_a_batch_recall_each_holder(
        setup: Setup, settings: Settings, receivers: tuple[Receiver, Receiver]) -> None:  # noqa: F811
    alliance = setup.alliance
    brand, shop = setup.brand.merchant_id, setup.shop.merchant_id
    to_brand, to_shop = receivers
    types = ["items.custody_recorded", "items.recalled"]
    brand_hook = _hook(alliance, brand, to_brand.url, types)
    shop_hook = _hook(alliance, shop, to_shop.url, types)
    sold = setup.labels[0]
    setup.sell(sold)  # commissioning, shipping (brand), receiving, retail_selling (shop)
    with alliance.store.session() as s:
        items.recall(alliance, s, merchant_id=brand, batch_ids=[setup.batch_id])
    setup.settle()
    WebhookWorker(alliance).drain()

    item_id = "0x" + sold.item_id.hex()
    mine = _received(to_brand, brand_hook, brand)
    theirs = _received(to_shop, shop_hook, shop)
    steps = [(b["type"], b["data"].get("biz_step")) for b in mine]
    assert steps == [("items.custody_recorded", "commissioning"),
                     ("items.custody_recorded", "shipping"),
                     ("items.custody_recorded", "receiving"),
                     ("items.custody_recorded", "retail_selling"), ("items.recalled", None)]
    # The shop: the shipment to it, what it recorded, and the recall of what it sold.
    assert [(b["type"], b["data"].get("biz_step")) for b in theirs] == steps[1:]
    for b in mine[:4] + theirs[:3]:
        d = b["data"]
        assert (d["item_id"], d["gtin"], d["serial"]) == (item_id, sold.gtin, sold.serial)
        assert d["event_hash"].startswith("0x") and d["event_time"] > 0
    ship = theirs[0]["data"]
    assert (ship["merchant_id"], ship["destination_merchant_id"]) == (brand, shop)
    assert ship["destination"] is not None and ship["location"] != ship["destination"]
    assert [b["data"]["merchant_id"] for b in theirs[1:3]] == [shop, shop]
    assert mine[1]["id"] != theirs[0]["id"]  # one event per merchant, each its own id
    recall_brand, recall_shop = mine[4]["data"], theirs[3]["data"]
    assert recall_brand["batch_id"] == recall_shop["batch_id"]
    assert recall_brand["item_ids"] == [] and recall_shop["item_ids"] == [item_id]
    assert FACTORY != SHOP


def test_a_reorg_that_undoes_a_delivered_grant_sends_event_reverted(
        alliance: Alliance, store_merchant: AdmittedMerchant, chain_snapshot: None,
        receivers: tuple[Receiver, Receiver]) -> None:
    issuer = store_merchant.merchant_id
    receiver, _ = receivers
    hook = _hook(alliance, issuer, receiver.url, ["coupons.granted"])
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=issuer, kind="fixed_off", value=100,
                                budget=10_000)
    _settle(alliance)
    book = alliance.contracts.coupons
    assert book is not None
    campaign = book.campaign_count()
    member = Account.create().address
    with alliance.store.session() as s:
        request_grant(alliance, s, merchant_id=issuer, campaign_id=campaign, members=[member])
    _settle(alliance)
    WebhookWorker(alliance).drain()
    (granted,) = _received(receiver, hook, issuer)
    assert granted["type"] == "coupons.granted" and granted["data"]["holder"] == member

    # The grant's block is replaced by an empty one: the grant, as delivered, never happened.
    # The outbox sees its transaction gone and sends it again (the same signed bytes, so it
    # cannot land twice); it lands in a new block: the merchant hears "reverted" for the first
    # event and a new "granted" for the grant as it now stands.
    alliance.gateway.rpc("anvil_reorg", [1, []])
    _settle(alliance)
    WebhookWorker(alliance).drain()
    got = _received(receiver, hook, issuer)
    assert [b["type"] for b in got] == ["coupons.granted", "event.reverted", "coupons.granted"]
    assert got[1]["data"]["event_id"] == granted["id"]
    assert got[1]["data"]["type"] == "coupons.granted"
    assert got[1]["id"] == granted["id"] + ".reverted"
    again = got[2]
    assert again["id"] != granted["id"] and again["data"]["holder"] == member
    assert book.view1("balanceOf", member) == 1  # granted once on the chain as it stands


def test_the_webhooks_want_the_coupon_books_transfers_not_the_point_programs(
        alliance: Alliance, store_merchant: AdmittedMerchant) -> None:
    """A point program is an ERC-20: its Transfer logs (one per issue) are not read for the
    webhooks, which want the coupon book's (ERC-721 grants) only."""
    projection = WebhookProjection(alliance)
    book = alliance.contracts.coupons
    assert book is not None
    assert "Transfer" in _events_at(projection, book.address)
    assert "Transfer" not in _events_at(projection, store_merchant.program)
    assert "PointsIssued" in _events_at(projection, store_merchant.program)
