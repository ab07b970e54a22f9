"""The demo alliance's offers: the department store's parking coupon (a purchase rule: an
order issuing at least 500 points grants a coupon of 500 fen off parking, at the store) and a
gift (a tote bag for 100 store points, collected in store). The demo wallet buys once more
and gets the parking coupon, then redeems points for the tote bag."""

from __future__ import annotations

from eth_account import Account

from ..alliance import Alliance
from ..coupons.service import request_create_campaign
from ..indexer.follower import Follower
from ..outbox.worker import OutboxWorker
from ..points.service import order_ref, request_issue
from ..signing import redeem_typed_data
from ..types import MerchantId
from . import service
from .projection import OffersProjection

PARKING_MIN_POINTS = 500
PARKING_ORDER = "demo-GPDS-parking-1"
PARKING_ORDER_POINTS = 600
GIFT_POINTS = 100
# The demo wallet's store-program nonces 0 and 1 went to its cafe redemption and conversion.
GIFT_NONCE = 2


def _settle(alliance: Alliance, worker: OutboxWorker) -> None:
    """Send what is queued, index it (rules fire, gift grants are queued), send those. Only
    the offers projection reads here: the service's indexer builds the rest when it starts."""
    worker.drain()
    Follower(alliance, [OffersProjection(alliance)]).catch_up()
    worker.drain()


def seed_demo_offers(alliance: Alliance, worker: OutboxWorker, *, store: int, program: str,
                     wallet_key: bytes) -> dict[str, int]:
    """Create the store's parking rule and tote-bag gift and exercise both with the demo
    wallet; give the rule's and the gift's ids."""
    book = alliance.contracts.coupons
    if book is None:
        return {}
    wallet = Account.from_key(wallet_key)
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=store, kind="fixed_off", value=500,
                                budget=10_000_000, valid_days=1, acceptors=[store])
        request_create_campaign(alliance, s, merchant_id=store, kind="gift", value=3000,
                                budget=30_000_000, valid_days=90, acceptors=[store],
                                transferable=False)
    worker.drain()
    gift_campaign = book.campaign_count()
    parking_campaign = gift_campaign - 1
    with alliance.store.session() as s:
        rule = service.create_rule(alliance, s, merchant_id=store, kind="purchase",
                                   campaign_id=parking_campaign, min_points=PARKING_MIN_POINTS)
        gift = service.create_gift(alliance, s, merchant_id=store, name="Tote bag",
                                   points=GIFT_POINTS, campaign_id=gift_campaign, stock=100,
                                   per_member_limit=1)
    with alliance.store.session() as s:
        request_issue(alliance, s, merchant_id=MerchantId(store), member=wallet.address,
                      points=PARKING_ORDER_POINTS, order_id=PARKING_ORDER)
    _settle(alliance, worker)
    order_id = service.gift_order_id(gift["gift_id"], "demo-1")
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 3600
    typed = redeem_typed_data(chain_id=alliance.gateway.chain_id, program=program,
                              registry=alliance.contracts.deployment.registry,
                              member=wallet.address, amount=GIFT_POINTS, merchant_id=store,
                              order_ref=order_ref(order_id), nonce=GIFT_NONCE,
                              deadline=deadline)
    sig = Account.sign_typed_data(wallet_key, full_message=typed).signature
    with alliance.store.session() as s:
        service.request_gift_redemption(alliance, s, merchant_id=store,
                                        gift_id=gift["gift_id"], member=wallet.address,
                                        request_id="demo-1", nonce=GIFT_NONCE,
                                        deadline=deadline, signature="0x" + bytes(sig).hex())
    _settle(alliance, worker)
    return {"parking_rule": int(rule["rule_id"]), "gift": int(gift["gift_id"]),
            "parking_campaign": parking_campaign, "gift_campaign": gift_campaign}
