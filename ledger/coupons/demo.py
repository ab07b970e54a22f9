"""The demo alliance's coupons: a cross-merchant campaign of the department store, granted
to the demo members and the demo wallet, and one coupon used by the wallet at the cafe, so
the clearing shows the discount owed by the store to the cafe."""

from __future__ import annotations

import time
from collections.abc import Sequence

from eth_account import Account

from ..alliance import Alliance
from ..outbox.worker import OutboxWorker
from ..points.service import order_ref, resolve_members
from .service import request_create_campaign, request_grant, request_redeem
from .signing import redeem_coupon_typed_data


def seed_demo_coupons(alliance: Alliance, worker: OutboxWorker, *, store: int, cafe: int,
                      member_ids: Sequence[str], wallet_key: bytes) -> int:
    """Create the demo campaign (1,000 fen off a spend of 5,000, 30 days, the whole
    alliance), grant it, and redeem the wallet's coupon at the cafe; give the campaign id."""
    book = alliance.contracts.coupons
    if book is None:
        return 0
    wallet = Account.from_key(wallet_key)
    with alliance.store.session() as s:
        request_create_campaign(alliance, s, merchant_id=store, kind="fixed_off", value=1000,
                                budget=1_000_000, min_spend=5000, valid_days=30,
                                per_member_cap=2, all_merchants=True)
    worker.drain()
    campaign_id = book.campaign_count()
    with alliance.store.session() as s:
        members = resolve_members(alliance, s, [(None, m) for m in member_ids])
        request_grant(alliance, s, merchant_id=store, campaign_id=campaign_id,
                      members=[*members, wallet.address])
    worker.drain()
    coupon_id = _coupon_of(alliance, wallet.address, campaign_id)
    deadline = int(alliance.gateway.block("latest")["timestamp"]) + 3600
    typed = redeem_coupon_typed_data(
        chain_id=alliance.gateway.chain_id, book=book.address,
        registry=alliance.contracts.deployment.registry, holder=wallet.address,
        coupon_id=coupon_id, acceptor=cafe, order_ref=order_ref("demo-CAFE-coupon-1"),
        order_amount=6800, nonce=int(time.time()), deadline=deadline)
    sig = Account.sign_typed_data(wallet_key, full_message=typed).signature
    with alliance.store.session() as s:
        request_redeem(alliance, s, merchant_id=cafe, coupon_id=coupon_id,
                       order_id="demo-CAFE-coupon-1", order_amount=6800,
                       nonce=int(typed["message"]["nonce"]), deadline=deadline,
                       signature="0x" + bytes(sig).hex())
    worker.drain()
    return campaign_id


def _coupon_of(alliance: Alliance, holder: str, campaign_id: int) -> int:
    """The holder's coupon of the campaign, from the book's Transfer logs."""
    book = alliance.contracts.coupons
    assert book is not None
    topic = alliance.gateway.event_topic(book.abi, "Transfer")
    logs = alliance.gateway.rpc("eth_getLogs", [{
        "address": book.address, "fromBlock": hex(alliance.contracts.deployment.block),
        "toBlock": "latest",
        "topics": ["0x" + topic.hex(), None, "0x" + bytes.fromhex(holder[2:]).rjust(32,
                                                                                    b"\0").hex()]}])
    for _, args, _ in book.decode_logs(logs):
        if int(args["tokenId"]) >> 72 == campaign_id:
            return int(args["tokenId"])
    raise LookupError(f"{holder} holds no coupon of campaign {campaign_id}")
