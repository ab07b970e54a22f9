"""The items read model: every ItemRegistry event into ``item_events`` (an item's history)
and each item's state into ``item_states`` (what verify reads: no chain call per scan), the
batch ids the chain gave to registered batches, and scan-to-earn: on ``ItemClaimed`` the
product's points are issued to the claimer through the points service, under an order id
derived from the serial, so a claim can never pay twice (the program refuses a used order)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..errors import LedgerError
from ..indexer.follower import ChainEvent, Head
from ..points import service as points_service
from ..types import MerchantId
from . import repos
from .clients import BizStep, ItemStatus, split_item_key, unpack_custody
from .codes import split_item_id
from .service import claim_order_id

log = logging.getLogger(__name__)

CURSOR = "items"
NEXT_STATUS = {BizStep.COMMISSIONING: ItemStatus.COMMISSIONED,
               BizStep.SHIPPING: ItemStatus.IN_TRANSIT,
               BizStep.RECEIVING: ItemStatus.IN_STOCK,
               BizStep.RETAIL_SELLING: ItemStatus.SOLD,
               BizStep.RETURNING: ItemStatus.IN_STOCK,
               BizStep.DESTROYING: ItemStatus.DESTROYED}


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


class ItemsProjection:
    name = CURSOR
    events = frozenset({"CustodyRecorded", "ItemClaimed", "ItemFlagged", "ItemRecalled",
                        "BatchRecalled", "BatchRegistered"})

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        items = self.alliance.contracts.items
        return {} if items is None else {items.address: items}

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        n = 0
        touched: set[str] = set()
        keys: dict[int, str | None] = {}
        for e in events:
            if repos.event_at(session, e.tx_hash, e.log_index):
                continue  # a chunk read again: rows (and scan-to-earn) happen once
            if e.name in ("ItemRecalled", "BatchRecalled"):
                # recall rows name who holds each item then: states up to date first
                self._settle(session, touched)
            row = self._row(session, e, keys)
            if row is None:
                continue
            session.add(row)
            touched.add(row.item_id)
            if e.name in ("ItemRecalled", "BatchRecalled"):
                self._recall_rows(session, e, row, touched)
            n += 1
        self._settle(session, touched)
        return n

    def _settle(self, session: Session, touched: set[str]) -> None:
        session.flush()
        for iid in sorted(touched):
            self._refold(session, iid)
        touched.clear()
        session.flush()

    def rollback(self, session: Session, after_block: int) -> None:
        touched = repos.delete_after(session, after_block)
        session.flush()
        for iid in touched:
            self._refold(session, iid)

    def on_head(self, session: Session, head: Head) -> int:
        return 0

    # ------------------------------------------------------------------

    def _item_of(self, session: Session, key: int, keys: dict[int, str | None]) -> str | None:
        """The item id of an on-chain item key, from the store's serials (cached per chunk)."""
        if key not in keys:
            chain_batch, index = split_item_key(key)
            batch = repos.batch_by_chain_id(session, chain_batch)
            serial = None if batch is None else repos.serial_at(session, batch.id, index)
            keys[key] = None if serial is None else serial.item_id
        return keys[key]

    def _row(self, session: Session, e: ChainEvent, keys: dict[int, str | None]
             ) -> repos.ItemEvent | None:
        a = e.args
        base: dict[str, Any] = {"tx_hash": e.tx_hash, "block_number": e.block_number,
                                "log_index": e.log_index, "block_time": e.block_time}
        if e.name == "BatchRegistered":
            batch = repos.batch_by_root(session, _hex(a["root"]))
            if batch is not None:
                batch.chain_batch_id = int(a["batchId"])
            return None
        if e.name == "BatchRecalled":
            batch = repos.batch_by_chain_id(session, int(a["batchId"]))
            if batch is not None:
                batch.recalled = True
            return repos.ItemEvent(item_id=f"batch:{int(a['batchId'])}", kind="batch_recalled",
                                   event_hash=_hex(a["eventHash"]), **base)
        if e.name == "ItemClaimed":
            self._pay(session, bytes(a["itemId"]), str(a["member"]))
            return repos.ItemEvent(item_id=_hex(a["itemId"]), kind="claimed",
                                   member=str(a["member"]), **base)
        key = int(a["item"])
        iid: str | None
        if e.name == "CustodyRecorded":
            step, disp, when, merchant = unpack_custody(int(a["packed"]))
            ref = _hex(a["ref"])
            if step == BizStep.COMMISSIONING:
                iid = ref  # the id the activation's proof bound to the key
                keys[key] = ref
            else:
                iid = self._item_of(session, key, keys)
            if iid is None:
                log.warning("custody event of item key %#x unknown to the store", key)
                return None
            return repos.ItemEvent(item_id=iid, kind=step.cbv, merchant_id=merchant,
                                   location=_hex(a["location"]),
                                   destination=ref if step == BizStep.SHIPPING else None,
                                   disposition=disp.cbv, event_time=when,
                                   event_hash=_hex(a["eventHash"]), **base)
        iid = self._item_of(session, key, keys)
        if iid is None:
            log.warning("%s of item key %#x unknown to the store", e.name, key)
            return None
        if e.name == "ItemFlagged":
            return repos.ItemEvent(item_id=iid, kind="flagged", reason=int(a["reason"]), **base)
        if e.name == "ItemRecalled":
            return repos.ItemEvent(item_id=iid, kind="recalled",
                                   event_hash=_hex(a["eventHash"]), **base)
        return None

    def _recall_rows(self, session: Session, e: ChainEvent, row: repos.ItemEvent,
                     touched: set[str]) -> None:
        """One ``item_recalls`` row per activated item a recall reached, with the merchant
        holding it then (what a webhook to merchants, and the member's items, derive from)."""
        if e.name == "BatchRecalled":
            chain_batch = int(e.args["batchId"])
            states = repos.states_of_batch(session, chain_batch)
        else:
            state = repos.state(session, row.item_id)
            chain_batch = split_item_key(int(e.args["item"]))[0]
            states = [state] if state is not None else []
            if state is None:  # recalled before its activation: no holder yet
                session.add(repos.ItemRecall(
                    item_id=row.item_id, event_hash=str(row.event_hash),
                    chain_batch_id=chain_batch, merchant_id=None,
                    status=ItemStatus.UNKNOWN.value, claimed_by=None, tx_hash=e.tx_hash,
                    block_number=e.block_number, log_index=e.log_index,
                    block_time=e.block_time))
        for st in states:
            holder = st.destination if st.status == ItemStatus.IN_TRANSIT.value else st.custodian
            session.add(repos.ItemRecall(
                item_id=st.item_id, event_hash=str(row.event_hash), chain_batch_id=chain_batch,
                merchant_id=holder or None, status=st.status, claimed_by=st.claimed_by,
                tx_hash=e.tx_hash, block_number=e.block_number, log_index=e.log_index,
                block_time=e.block_time))
            touched.add(st.item_id)

    def _refold(self, session: Session, iid: str) -> None:
        """An item's state from its whole history (the rules are the contract's)."""
        if iid.startswith("batch:"):
            return
        history = repos.history(session, iid)
        state = repos.state(session, iid)
        if not history:
            if state is not None:
                session.delete(state)
            return
        status, custodian, destination = ItemStatus.UNKNOWN, 0, None
        recalled = flagged = False
        claimed_by: str | None = None
        locations: dict[str, int] = {}
        for ev in history:
            if ev.kind == "claimed":
                claimed_by = ev.member
            elif ev.kind == "flagged":
                flagged = True
            elif ev.kind == "recalled":
                recalled = True
            else:
                step = BizStep[ev.kind.upper()]
                if step in NEXT_STATUS:
                    status = NEXT_STATUS[step]
                if step == BizStep.SHIPPING and ev.destination:
                    if ev.destination not in locations:
                        loc = repos.location(session, ev.destination)
                        locations[ev.destination] = loc.merchant_id if loc else 0
                    destination = locations[ev.destination]
                elif step in (BizStep.COMMISSIONING, BizStep.RECEIVING):
                    custodian, destination = int(ev.merchant_id or 0), None
        serial = repos.serial(session, iid)
        batch = repos.batch(session, serial.batch_id) if serial is not None else None
        if state is None:
            state = repos.ItemState(item_id=iid)
            session.add(state)
        state.status = status.value
        state.custodian = custodian
        state.destination = destination
        state.chain_batch_id = batch.chain_batch_id if batch is not None else None
        state.recalled = recalled or bool(batch is not None and batch.recalled)
        state.claimed_by = claimed_by
        state.flagged = flagged
        state.block_number = history[-1].block_number

    def _pay(self, session: Session, item_id: bytes, member: str) -> None:
        """Scan to earn: the product's points to the claimer, once per item (order id from
        the serial; the program refuses a second issue of one order)."""
        gtin, serial = split_item_id(item_id)
        prod = repos.product(session, gtin)
        if prod is None or prod.claim_points <= 0:
            return
        try:
            points_service.request_issue(self.alliance, session,
                                         merchant_id=MerchantId(prod.brand_id),
                                         member=member, points=prod.claim_points,
                                         order_id=claim_order_id(gtin, serial))
        except LedgerError:
            log.exception("scan-to-earn issue for %s:%s not queued", gtin, serial)
