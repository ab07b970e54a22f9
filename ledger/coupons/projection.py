"""The coupons read model: campaigns as created, and one ``coupon_events`` row per grant,
transfer, redemption, rollback, pause, resume and voucher event of the coupon book. Stats and
a member's coupons are read from these (``ledger.coupons.repos``); a reorg drops the rows of
the blocks it undoes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..contracts.client import ContractClient
from ..indexer.follower import ChainEvent, Head
from . import repos
from .clients import CouponKind, campaign_of
from .repos import EventKind

CURSOR = "coupons"
ZERO = "0x0000000000000000000000000000000000000000"


def _ref(value: Any) -> str:
    return "0x" + bytes(value).hex()


def terms_json(t: Any) -> dict[str, Any]:
    """A ``CampaignCreated`` event's terms tuple as stored JSON."""
    (issuer, kind, value, max_discount, min_spend, starts_at, ends_at, valid_days, supply_cap,
     per_member_cap, budget, transferable, stackable, all_merchants, acceptors) = (
        t[k] for k in ("issuer", "kind", "value", "maxDiscount", "minSpend", "startsAt",
                       "endsAt", "validDays", "supplyCap", "perMemberCap", "budget",
                       "transferable", "stackable", "allMerchants", "acceptors")
    ) if isinstance(t, Mapping) else tuple(t)
    return {"issuer": int(issuer), "kind": CouponKind(int(kind)).name.lower(),
            "value": int(value), "max_discount": int(max_discount),
            "min_spend": int(min_spend), "starts_at": int(starts_at), "ends_at": int(ends_at),
            "valid_days": int(valid_days), "supply_cap": int(supply_cap),
            "per_member_cap": int(per_member_cap), "budget": int(budget),
            "transferable": bool(transferable), "stackable": bool(stackable),
            "all_merchants": bool(all_merchants), "acceptors": [int(a) for a in acceptors]}


class CouponsProjection:
    """Events of the deployment's coupon book into ``coupon_campaigns`` / ``coupon_events``."""

    name = CURSOR
    events = frozenset({"CampaignCreated", "CampaignPauseSet", "Transfer", "CouponRedeemed",
                        "CouponRedemptionRolledBack", "VoucherClaimed", "VoucherCancelled",
                        "CouponRevoked"})

    def __init__(self, alliance: Alliance) -> None:
        self.alliance = alliance

    def follows(self, session: Session) -> Mapping[str, ContractClient]:
        book = self.alliance.contracts.coupons
        return {book.address: book} if book is not None else {}

    def apply(self, session: Session, events: Sequence[ChainEvent]) -> int:
        book = self.alliance.contracts.coupons
        if book is None:
            return 0
        campaigns: list[dict[str, Any]] = []
        rows: list[dict[str, Any]] = []
        for e in events:
            if e.address.lower() != book.address.lower():
                continue
            a = e.args
            base = {"tx_hash": e.tx_hash, "block_number": e.block_number,
                    "log_index": e.log_index, "block_time": e.block_time, "coupon_id": None,
                    "holder": None, "merchant_id": None, "order_ref": None, "amount": None}
            if e.name == "CampaignCreated":
                cid = int(a["campaignId"])
                campaigns.append({"campaign_id": cid, "issuer": int(a["issuer"]),
                                  "terms": terms_json(a["terms"]),
                                  "block_number": e.block_number})
                continue
            if e.name == "CampaignPauseSet":
                rows.append({**base, "campaign_id": int(a["campaignId"]),
                             "kind": EventKind.PAUSED if a["paused"] else EventKind.RESUMED})
            elif e.name == "Transfer":
                tid = int(a["tokenId"])
                frm, to = str(a["from"]), str(a["to"])
                kind = EventKind.GRANTED if frm.lower() == ZERO else EventKind.TRANSFERRED
                rows.append({**base, "campaign_id": campaign_of(tid), "kind": kind,
                             "coupon_id": str(tid), "holder": to})
            elif e.name == "CouponRedeemed":
                tid = int(a["couponId"])
                rows.append({**base, "campaign_id": campaign_of(tid),
                             "kind": EventKind.REDEEMED, "coupon_id": str(tid),
                             "holder": str(a["holder"]), "merchant_id": int(a["acceptor"]),
                             "order_ref": _ref(a["orderRef"]), "amount": int(a["discount"])})
            elif e.name == "CouponRedemptionRolledBack":
                tid = int(a["couponId"])
                rows.append({**base, "campaign_id": campaign_of(tid),
                             "kind": EventKind.ROLLED_BACK, "coupon_id": str(tid),
                             "merchant_id": int(a["acceptor"]),
                             "order_ref": _ref(a["orderRef"]), "amount": int(a["discount"])})
            elif e.name == "VoucherClaimed":
                rows.append({**base, "campaign_id": int(a["campaignId"]),
                             "kind": EventKind.VOUCHER_CLAIMED,
                             "coupon_id": str(int(a["couponId"])),
                             "amount": int(a["voucherId"])})
            elif e.name == "CouponRevoked":
                tid = int(a["couponId"])
                rows.append({**base, "campaign_id": campaign_of(tid), "kind": EventKind.REVOKED,
                             "coupon_id": str(tid), "holder": str(a["holder"])})
            elif e.name == "VoucherCancelled":
                rows.append({**base, "campaign_id": int(a["campaignId"]),
                             "kind": EventKind.VOUCHER_CANCELLED,
                             "amount": int(a["voucherId"])})
        repos.insert_campaigns(session, campaigns)
        return repos.insert_events(session, rows)

    def rollback(self, session: Session, after_block: int) -> None:
        repos.delete_after(session, after_block)

    def on_head(self, session: Session, head: Head) -> int:
        return 0
