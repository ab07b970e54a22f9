"""Webhook events from the chain, as the indexer confirms it: one ``webhook_events`` row per
(merchant, chain event) for every merchant with an endpoint that wants its type, with a
stable id, in chain order, and a pending delivery per such endpoint.

It is a projection of the indexer like the read models (its own cursor, the same confirmed
head, the same reorg rollback), so an event is announced only once the read model shows it.
Events of merchants with no endpoint for them are not written: an endpoint receives events
from when it was registered (replay goes back as far as events were kept for the merchant).

Reorg: the follower calls :meth:`WebhookProjection.rollback` with a block at or below the
common ancestor. An event whose log the chain still has (same transaction, block and index)
is kept as it is. An event of the blocks undone that no endpoint has received yet is
withdrawn (dropped with its deliveries: no one ever sees it; if the same log comes back in
the new chain, it comes back with the same id). One already delivered somewhere cannot be
taken back (delivery is at least once): it is marked reverted, its undelivered copies are
dropped, and every endpoint that received it gets an ``event.reverted`` event naming it. If
the same log comes back after that, it is a new event (its id gets a ``.2`` suffix), so a
receiver that de-duplicates by id takes it again.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..coupons.clients import campaign_of, granted_at_of
from ..indexer.follower import ChainEvent, Head
from ..indexer.repos import round_merchants
from ..items.clients import BizStep, unpack_custody
from ..items.codes import split_item_id
from ..store.models import (
    CouponCampaign,
    ItemBatch,
    ItemLocation,
    ItemProduct,
    ItemRecall,
    ItemSerial,
    ItemState,
    utcnow,
)
from . import repos
from .events import ALL, DeliveryState, EventType, event_id

log = logging.getLogger(__name__)

CURSOR = "webhooks"
PROGRAM_EVENTS = frozenset({"PointsIssued", "PointsReversed", "PointsRedeemed",
                            "RedemptionRefunded", "PointsConvertedIn"})
CLEARING_EVENTS = frozenset({"PeriodClosed", "NetRecorded", "StatementAnchored"})
COUPON_EVENTS = frozenset({"CouponRedeemed", "CouponRedemptionRolledBack", "Transfer",
                           "VoucherClaimed", "VoucherCancelled"})
ITEM_EVENTS = frozenset({"ItemRecalled", "BatchRecalled", "ItemFlagged", "ItemClaimed",
                         "CustodyRecorded"})
ZERO_ADDRESS = "0x" + "00" * 20
# Chain events that give one type only and need store look-ups to address: skipped at once
# when no endpoint wants that type (an item's custody events are many).
ONLY_TYPE = {"CustodyRecorded": EventType.ITEMS_CUSTODY_RECORDED,
             "Transfer": EventType.COUPONS_GRANTED,
             "VoucherClaimed": EventType.COUPONS_VOUCHER_CLAIMED,
             "VoucherCancelled": EventType.COUPONS_VOUCHER_CANCELLED}


def _hex(b: Any) -> str:
    return "0x" + bytes(b).hex()


# One addressed event: (merchant, type, payload).
Addressed = tuple[int, EventType, dict[str, Any]]
# What an event's addressing needs of the other events of its chunk: the net of each
# merchant in a PeriodClosed's transaction, the holder each coupon minted in a transaction.
Nets = Mapping[tuple[str, int], int]
Mints = Mapping[tuple[str, int], str]


class WebhookProjection:
    """Chain events into per-merchant webhook events and their pending deliveries."""

    name = CURSOR
    events = PROGRAM_EVENTS | CLEARING_EVENTS | COUPON_EVENTS | ITEM_EVENTS

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        c = self.alliance.contracts
        out: dict[str, ContractClient] = {c.clearing.address: c.clearing}
        if c.coupons is not None:
            out[c.coupons.address] = c.coupons
        if c.items is not None:
            out[c.items.address] = c.items
        for m in round_merchants(session):
            if m.program_address:
                out[m.program_address] = c.program(m.program_address)
        return out

    def events_at(self, address: str) -> frozenset[str]:
        """The events wanted of the contract at ``address`` (the follower asks, so that a
        point program's ERC-20 Transfer logs are not read for the coupon book's)."""
        c = self.alliance.contracts
        address = address.lower()
        if address == c.clearing.address.lower():
            return CLEARING_EVENTS
        if c.coupons is not None and address == c.coupons.address.lower():
            return COUPON_EVENTS
        if c.items is not None and address == c.items.address.lower():
            return ITEM_EVENTS
        return PROGRAM_EVENTS

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        if not events:
            return 0
        endpoints = repos.live_endpoints(session)
        if not endpoints:
            return 0
        by_merchant: dict[int, list[repos.WebhookEndpoint]] = defaultdict(list)
        for ep in endpoints:
            by_merchant[ep.merchant_id].append(ep)
        programs = {m.program_address.lower(): m.id
                    for m in round_merchants(session) if m.program_address}
        nets: dict[tuple[str, int], int] = {}
        mints: dict[tuple[str, int], str] = {}
        for e in events:
            if e.name == "NetRecorded":
                nets[(e.tx_hash, int(e.args["merchantId"]))] = int(e.args["net"])
            elif e.name == "Transfer" and str(e.args["from"]).lower() == ZERO_ADDRESS:
                mints[(e.tx_hash, int(e.args["tokenId"]))] = str(e.args["to"])
        now = utcnow()
        wanted: list[tuple[str, ChainEvent, int, EventType, dict[str, Any],
                           list[repos.WebhookEndpoint]]] = []
        subscribed = {t for ep in endpoints for t in ep.events}
        for e in events:
            only = ONLY_TYPE.get(e.name)
            if only is not None and ALL not in subscribed and only not in subscribed:
                continue
            for merchant, type_, payload in self._address(session, e, programs, nets, mints,
                                                          by_merchant):
                wanting = [ep for ep in by_merchant.get(merchant, ())
                           if repos.wants(ep, type_)]
                if wanting:
                    wanted.append((event_id(tx_hash=e.tx_hash, log_index=e.log_index,
                                            merchant_id=merchant, type_=type_),
                                   e, merchant, type_, payload, wanting))
        # One query for the whole chunk: a log's event is stored already only when its
        # chunk is read again or a reorg brought it back (an id with a suffix exists only
        # beside its reverted base id), so the per-id look-up below is the rare case.
        stored = repos.existing_ids(session, [w[0] for w in wanted])
        new: list[tuple[dict[str, Any], Sequence[repos.WebhookEndpoint]]] = []
        written: set[str] = set()
        for base, e, merchant, type_, payload, wanting in wanted:
            if base in written:
                continue
            eid = base
            if base in stored:
                taken = repos.ids_like(session, base)
                if any(not reverted for reverted in taken.values()):
                    continue  # a chunk read again: written once
                n = 1
                while eid in taken:
                    n += 1
                    eid = f"{base}.{n}"
            written.add(base)
            new.append(({
                "id": eid, "merchant_id": merchant, "type": str(type_),
                "payload": payload, "tx_hash": e.tx_hash, "block_number": e.block_number,
                "log_index": e.log_index, "block_time": e.block_time}, wanting))
        if new:
            repos.add_events(session, new, now)
        return len(new)

    def rollback(self, session: Session, after_block: int) -> None:
        now = utcnow()
        events = repos.events_after(session, after_block)
        # The follower rewinds further than the reorg reached (REORG_DEPTH blocks): an event
        # whose log is still on the chain, in the same block, at the same index, was not
        # undone; it stays as it is (and is not written again when its block is re-read).
        kept = self._still_on_chain({(e.tx_hash, e.block_number, e.log_index)
                                     for e in events})
        for ev in events:
            if (ev.tx_hash, ev.block_number, ev.log_index) in kept:
                continue
            deliveries = repos.deliveries_of_event(session, ev.seq)
            got = [d.endpoint_id for d in deliveries if d.state == DeliveryState.DELIVERED]
            if not got:
                repos.drop_event(session, ev)
                continue
            for d in deliveries:
                if d.state != DeliveryState.DELIVERED:
                    session.delete(d)
            ev.reverted = True
            receivers = [ep for ep in (repos.endpoint(session, i) for i in got)
                         if ep is not None]
            repos.add_event(session, {
                "id": f"{ev.id}.reverted", "merchant_id": ev.merchant_id,
                "type": str(EventType.EVENT_REVERTED),
                "payload": {"event_id": ev.id, "type": ev.type, "block": ev.block_number,
                            "tx_hash": ev.tx_hash, "common_ancestor": after_block},
                "tx_hash": ev.tx_hash, "block_number": ev.block_number,
                "log_index": ev.log_index, "block_time": ev.block_time}, receivers, now)
            log.warning("webhook event %s (%s, block %d) was delivered and is undone by a "
                        "reorg: event.reverted sent to %s", ev.id, ev.type, ev.block_number,
                        ", ".join(got))
        session.flush()

    def on_head(self, session: Session, head: Head) -> int:
        return 0

    def _still_on_chain(self, logs: set[tuple[str, int, int]]) -> set[tuple[str, int, int]]:
        """Which of ``logs`` (tx hash, block, log index) the chain has now, as they were
        (the receipts of their transactions, in one JSON-RPC batch)."""
        hashes = sorted({tx for tx, _, _ in logs})
        if not hashes:
            return set()
        receipts = self.alliance.gateway.rpc_batch(
            [("eth_getTransactionReceipt", [h]) for h in hashes])
        now: set[tuple[str, int, int]] = set()
        for h, r in zip(hashes, receipts, strict=True):
            if isinstance(r, Exception):
                raise r  # the round fails and is retried: never revert on a lost answer
            if not r:
                continue
            block = int(r["blockNumber"], 16)
            now.update((h, block, int(lg["logIndex"], 16)) for lg in r.get("logs", []))
        return logs & now

    # ------------------------------------------------------------------ addressing

    def _address(self, session: Session, e: ChainEvent, programs: Mapping[str, int],
                 nets: Nets, mints: Mints, by_merchant: Mapping[int, Sequence[Any]]
                 ) -> list[Addressed]:
        """Which merchants an event concerns, as which type, with what payload."""
        a = e.args
        c = self.alliance.contracts
        address = e.address.lower()
        base = {"tx_hash": e.tx_hash, "block_number": e.block_number,
                "log_index": e.log_index, "block_time": e.block_time}
        if address in programs and e.name in PROGRAM_EVENTS:
            owner = programs[address]
            member = str(a["member"])
            if e.name == "PointsIssued":
                return [(owner, EventType.POINTS_ISSUED, {
                    **base, "member": member, "order_ref": _hex(a["orderRef"]),
                    "points": int(a["amount"]), "earn_period": int(a["earnPeriod"]),
                    "release_day": int(a["releaseDay"])})]
            if e.name == "PointsReversed":
                return [(owner, EventType.POINTS_REVERSED, {
                    **base, "member": member, "order_ref": _hex(a["orderRef"]),
                    "points": int(a["amount"]), "burned": int(a["burned"])})]
            if e.name == "PointsRedeemed":
                at = int(a["merchantId"])
                body = {**base, "member": member, "order_ref": _hex(a["orderRef"]),
                        "points": int(a["amount"]), "program_merchant_id": owner,
                        "accepted_by": at}
                if at == owner:
                    return [(owner, EventType.POINTS_REDEEMED, body)]
                return [(at, EventType.POINTS_FOREIGN_ACCEPTED, body)]
            if e.name == "RedemptionRefunded":
                return [(int(a["merchantId"]), EventType.POINTS_REFUNDED, {
                    **base, "member": member, "order_ref": _hex(a["orderRef"]),
                    "points": int(a["amount"]), "program_merchant_id": owner})]
            if e.name == "PointsConvertedIn":
                return [(owner, EventType.POINTS_CONVERTED_IN, {
                    **base, "member": member, "conversion_id": _hex(a["conversionId"]),
                    "points": int(a["amount"]), "from_merchant_id": int(a["fromMerchantId"])})]
            return []
        if address == c.clearing.address.lower():
            if e.name == "PeriodClosed":
                period = int(a["period"])
                return [(m, EventType.CLEARING_PERIOD_CLOSED, {
                    **base, "period": period, "merchants": int(a["merchants"]),
                    "total_owed": str(int(a["totalOwed"])),
                    "net": str(nets.get((e.tx_hash, m), 0))}) for m in sorted(by_merchant)]
            if e.name == "StatementAnchored":
                return [(int(a["merchantId"]), EventType.CLEARING_STATEMENT_READY, {
                    **base, "period": int(a["period"]),
                    "statement_hash": _hex(a["statementHash"])})]
            return []
        if c.coupons is not None and address == c.coupons.address.lower():
            if e.name in ("Transfer", "VoucherClaimed", "VoucherCancelled"):
                return _coupon_issuance(session, e, base, mints)
            coupon = int(a["couponId"])
            campaign = campaign_of(coupon)
            row = session.get(CouponCampaign, campaign)
            acceptor = int(a["acceptor"])
            body = {**base, "coupon_id": str(coupon), "campaign_id": campaign,
                    "issuer": row.issuer if row is not None else None, "accepted_by": acceptor,
                    "order_ref": _hex(a["orderRef"]), "discount": str(int(a["discount"]))}
            type_ = (EventType.COUPONS_REDEEMED if e.name == "CouponRedeemed"
                     else EventType.COUPONS_ROLLED_BACK)
            if e.name == "CouponRedeemed":
                body["holder"] = str(a["holder"])
                body["order_amount"] = str(int(a["orderAmount"]))
            to = {acceptor} | ({row.issuer} if row is not None else set())
            return [(m, type_, body) for m in sorted(to)]
        if c.items is not None and address == c.items.address.lower():
            if e.name == "BatchRecalled":
                batch = session.scalars(select(ItemBatch).where(
                    ItemBatch.chain_batch_id == int(a["batchId"]))).first()
                if batch is None:
                    return []
                # The brand, and each merchant holding items of the batch then (from the
                # items read model's recall rows), with the ids of the items it holds.
                held: dict[int, list[str]] = defaultdict(list)
                for r in session.scalars(select(ItemRecall).where(
                        ItemRecall.tx_hash == e.tx_hash, ItemRecall.log_index == e.log_index)
                        .order_by(ItemRecall.item_id)):
                    if r.merchant_id:
                        held[r.merchant_id].append(r.item_id)
                return [(m, EventType.ITEMS_RECALLED, {
                    **base, "batch_id": int(a["batchId"]), "gtin": batch.gtin,
                    "item_id": None, "item_ids": held.get(m, []),
                    "event_hash": _hex(a["eventHash"])})
                    for m in sorted({batch.brand_id, *held})]
            custody = None
            if e.name == "ItemClaimed":
                item_id: str | None = _hex(a["itemId"])
            elif e.name == "CustodyRecorded":
                custody = unpack_custody(int(a["packed"]))
                item_id = (_hex(a["ref"]) if custody[0] == BizStep.COMMISSIONING
                           else _item_of_key(session, int(a["item"])))
            else:
                item_id = _item_of_key(session, int(a["item"]))
            if item_id is None:
                log.warning("%s of item key %#x unknown to the store: no webhook event",
                            e.name, int(a["item"]))
                return []
            gtin, serial = split_item_id(bytes.fromhex(item_id[2:]))
            product = session.get(ItemProduct, gtin)
            brand = product.brand_id if product is not None else None
            body = {**base, "item_id": item_id, "gtin": gtin, "serial": serial}
            if custody is not None:
                return _custody(session, a, custody, body, brand)
            if e.name == "ItemRecalled":
                to = {m for m in (brand, _holder_at_recall(session, e, item_id)) if m}
                body["event_hash"] = _hex(a["eventHash"])
                return [(m, EventType.ITEMS_RECALLED, body) for m in sorted(to)]
            if brand is None:
                return []
            if e.name == "ItemFlagged":
                return [(brand, EventType.ITEMS_FLAGGED, {**body, "reason": int(a["reason"])})]
            if e.name == "ItemClaimed":
                return [(brand, EventType.ITEMS_CLAIMED, {**body, "member": str(a["member"])})]
        return []


def _item_of_key(session: Session, key: int) -> str | None:
    """The item id of an on-chain item key (``batchId << 32 | index``), from the items read
    model: the store's batch the chain gave that id, and its serial at that index."""
    batch = session.scalars(select(ItemBatch.id).where(
        ItemBatch.chain_batch_id == key >> 32)).first()
    if batch is None:
        return None
    return session.scalars(select(ItemSerial.item_id).where(
        ItemSerial.batch_id == batch, ItemSerial.batch_index == key & 0xFFFFFFFF)).first()


def _holder_at_recall(session: Session, e: ChainEvent, item_id: str) -> int | None:
    """The merchant holding the item when this recall happened, as the items read model
    recorded it (in transit: the merchant it was shipped to); else its current state's."""
    row = session.scalars(select(ItemRecall).where(
        ItemRecall.tx_hash == e.tx_hash, ItemRecall.log_index == e.log_index,
        ItemRecall.item_id == item_id)).first()
    if row is not None:
        return row.merchant_id
    state = session.get(ItemState, item_id)
    if state is None:
        return None
    return state.destination if state.status == "in_transit" else state.custodian


def _coupon_issuance(session: Session, e: ChainEvent, base: Mapping[str, Any],
                     mints: Mints) -> list[Addressed]:
    """A coupon granted (Transfer from zero; a transfer between holders is no event), a
    voucher claimed or cancelled: to the campaign's issuer."""
    a = e.args
    if e.name == "Transfer":
        if str(a["from"]).lower() != ZERO_ADDRESS:
            return []
        coupon = int(a["tokenId"])
        campaign = campaign_of(coupon)
        type_ = EventType.COUPONS_GRANTED
        body: dict[str, Any] = {**base, "coupon_id": str(coupon), "campaign_id": campaign,
                                "holder": str(a["to"]), "granted_at": granted_at_of(coupon)}
    else:
        campaign = int(a["campaignId"])
        body = {**base, "campaign_id": campaign, "voucher_id": str(int(a["voucherId"]))}
        if e.name == "VoucherClaimed":
            coupon = int(a["couponId"])
            type_ = EventType.COUPONS_VOUCHER_CLAIMED
            body.update(coupon_id=str(coupon), holder=mints.get((e.tx_hash, coupon)))
        else:
            type_ = EventType.COUPONS_VOUCHER_CANCELLED
    row = session.get(CouponCampaign, campaign)
    if row is None:
        log.warning("%s of campaign %d unknown to the store: no webhook event", e.name,
                    campaign)
        return []
    return [(row.issuer, type_, {**body, "issuer": row.issuer})]


def _custody(session: Session, a: Mapping[str, Any],
             custody: tuple[BizStep, Any, int, int], body: Mapping[str, Any],
             brand: int | None) -> list[Addressed]:
    """A custody event: to the merchant that recorded it, the item's brand and, for a
    shipment, the merchant owning the destination."""
    step, disposition, event_time, recorder = custody
    destination = _hex(a["ref"]) if step == BizStep.SHIPPING else None
    to_merchant: int | None = None
    if destination is not None:
        loc = session.get(ItemLocation, destination)
        to_merchant = loc.merchant_id if loc is not None else None
    payload = {**body, "biz_step": step.cbv, "disposition": disposition.cbv,
               "event_time": event_time, "merchant_id": recorder,
               "location": _hex(a["location"]), "destination": destination,
               "destination_merchant_id": to_merchant, "event_hash": _hex(a["eventHash"])}
    to = {m for m in (recorder, brand, to_merchant) if m}
    return [(m, EventType.ITEMS_CUSTODY_RECORDED, payload) for m in sorted(to)]
