"""Coupons' store access: the read model the projection fills, and redemption locks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from ..store.models import (
    CouponCampaign,
    CouponEvent,
    CouponRedemptionLock,
    Operation,
    OperationStatus,
)
from ..store.tables import insert_for


class EventKind(StrEnum):
    """What a ``coupon_events`` row records."""

    GRANTED = "granted"
    TRANSFERRED = "transferred"
    REDEEMED = "redeemed"
    ROLLED_BACK = "rolled_back"
    PAUSED = "paused"
    RESUMED = "resumed"
    VOUCHER_CLAIMED = "voucher_claimed"
    VOUCHER_CANCELLED = "voucher_cancelled"
    REVOKED = "revoked"


def _insert(session: Session, model: type[CouponEvent] | type[CouponCampaign],
            rows: Sequence[dict[str, Any]], keys: list[str]) -> int:
    if not rows:
        return 0
    insert_fn = insert_for(session)
    added = 0
    for start in range(0, len(rows), 500):
        stmt = insert_fn(model).values(list(rows[start:start + 500])).on_conflict_do_nothing(
            index_elements=keys)
        added += session.execute(stmt).rowcount or 0  # type: ignore[attr-defined]
    return added


def insert_campaigns(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    return _insert(session, CouponCampaign, rows, ["campaign_id"])


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    return _insert(session, CouponEvent, rows, ["tx_hash", "log_index"])


def delete_after(session: Session, block: int) -> None:
    session.execute(delete(CouponEvent).where(CouponEvent.block_number > block))
    session.execute(delete(CouponCampaign).where(CouponCampaign.block_number > block))


# ---------------------------------------------------------------------- reads


@dataclass(frozen=True)
class CampaignRecord:
    campaign_id: int
    issuer: int
    terms: dict[str, Any]
    paused: bool


@dataclass(frozen=True)
class CampaignStats:
    """Live counts of one campaign, from the indexed events."""

    granted: int
    claimed: int
    redeemed: int
    rolled_back: int
    budget_used: int
    revoked: int = 0


def campaigns(session: Session, *, issuer: int | None = None) -> list[CampaignRecord]:
    q = select(CouponCampaign).order_by(CouponCampaign.campaign_id)
    if issuer is not None:
        q = q.where(CouponCampaign.issuer == issuer)
    rows = list(session.scalars(q))
    return [CampaignRecord(r.campaign_id, r.issuer, dict(r.terms), _paused(session, r.campaign_id))
            for r in rows]


def campaign(session: Session, campaign_id: int) -> CampaignRecord | None:
    r = session.get(CouponCampaign, campaign_id)
    if r is None:
        return None
    return CampaignRecord(r.campaign_id, r.issuer, dict(r.terms), _paused(session, campaign_id))


def _paused(session: Session, campaign_id: int) -> bool:
    last = session.scalar(
        select(CouponEvent.kind).where(CouponEvent.campaign_id == campaign_id,
                                       CouponEvent.kind.in_([EventKind.PAUSED,
                                                             EventKind.RESUMED]))
        .order_by(CouponEvent.block_number.desc(), CouponEvent.log_index.desc()).limit(1))
    return last == EventKind.PAUSED


def stats(session: Session, campaign_id: int) -> CampaignStats:
    counts = dict(session.execute(
        select(CouponEvent.kind, func.count()).where(CouponEvent.campaign_id == campaign_id)
        .group_by(CouponEvent.kind)).all())
    amounts: dict[str, int] = {}
    for kind in (EventKind.REDEEMED, EventKind.ROLLED_BACK):
        amounts[kind] = sum(int(a or 0) for a in session.scalars(
            select(CouponEvent.amount).where(CouponEvent.campaign_id == campaign_id,
                                             CouponEvent.kind == kind)))
    redeemed = int(counts.get(EventKind.REDEEMED, 0))
    rolled = int(counts.get(EventKind.ROLLED_BACK, 0))
    return CampaignStats(granted=int(counts.get(EventKind.GRANTED, 0)),
                         claimed=int(counts.get(EventKind.VOUCHER_CLAIMED, 0)),
                         redeemed=redeemed - rolled, rolled_back=rolled,
                         budget_used=amounts[EventKind.REDEEMED] - amounts[EventKind.ROLLED_BACK],
                         revoked=int(counts.get(EventKind.REVOKED, 0)))


@dataclass(frozen=True)
class HeldCoupon:
    """A coupon a member holds now, with its latest redemption (if not rolled back)."""

    coupon_id: int
    campaign_id: int
    granted_at: int
    used: bool
    used_at: int | None
    used_by: int | None
    discount: int | None


def held_by(session: Session, holder: str) -> list[HeldCoupon]:
    """Coupons whose latest holder-changing event names ``holder``."""
    ids = set(session.scalars(select(CouponEvent.coupon_id).where(
        func.lower(CouponEvent.holder) == holder.lower(),
        CouponEvent.kind.in_([EventKind.GRANTED, EventKind.TRANSFERRED]))))
    out: list[HeldCoupon] = []
    for cid in sorted(ids, key=lambda c: int(c or 0)):
        if cid is None:
            continue
        evs = list(session.scalars(select(CouponEvent).where(CouponEvent.coupon_id == cid)
                                   .order_by(CouponEvent.block_number, CouponEvent.log_index)))
        owner = [e for e in evs if e.kind in (EventKind.GRANTED, EventKind.TRANSFERRED)][-1]
        if (owner.holder or "").lower() != holder.lower():
            continue
        uses = [e for e in evs if e.kind in (EventKind.REDEEMED, EventKind.ROLLED_BACK)]
        last = uses[-1] if uses else None
        used = last is not None and last.kind == EventKind.REDEEMED
        granted = next(e for e in evs if e.kind == EventKind.GRANTED)
        out.append(HeldCoupon(int(cid), granted.campaign_id, granted.block_time, used,
                              last.block_time if used and last else None,
                              last.merchant_id if used and last else None,
                              int(last.amount or 0) if used and last else None))
    return out


def holder_of(session: Session, coupon_id: int) -> str | None:
    """The coupon's holder as indexed (its latest grant or transfer), None if not indexed."""
    return session.scalar(select(CouponEvent.holder).where(
        CouponEvent.coupon_id == str(coupon_id),
        CouponEvent.kind.in_([EventKind.GRANTED, EventKind.TRANSFERRED]))
        .order_by(CouponEvent.block_number.desc(), CouponEvent.log_index.desc()).limit(1))


def granted_in_tx(session: Session, *, tx_hash: str, campaign_id: int) -> list[int]:
    """The coupons of ``campaign_id`` a transaction minted (indexed), in serial order: a
    ``grantBatch`` mints its members' coupons in the order it lists them."""
    ids = session.scalars(select(CouponEvent.coupon_id).where(
        CouponEvent.tx_hash == tx_hash, CouponEvent.campaign_id == campaign_id,
        CouponEvent.kind == EventKind.GRANTED)).all()
    return sorted(int(i) for i in ids if i is not None)


# ---------------------------------------------------------------------- redemption locks


def lock_redemption(session: Session, *, coupon_id: int, operation_id: str, merchant_id: int,
                    order_id: str) -> bool:
    """Take the coupon's redemption lock for ``operation_id``; False if another operation
    that has not failed holds it. A lock whose operation failed is taken over (compare and
    swap on its operation id, so two takers cannot both win)."""
    key = str(coupon_id)
    held = session.get(CouponRedemptionLock, key)
    if held is None:
        insert_fn = insert_for(session)
        stmt = insert_fn(CouponRedemptionLock).values(
            coupon_id=key, operation_id=operation_id, merchant_id=merchant_id,
            order_id=order_id).on_conflict_do_nothing(index_elements=["coupon_id"])
        return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]
    status = session.scalar(select(Operation.status).where(Operation.id == held.operation_id))
    if status != OperationStatus.FAILED:
        return False
    res = session.execute(update(CouponRedemptionLock).where(
        CouponRedemptionLock.coupon_id == key,
        CouponRedemptionLock.operation_id == held.operation_id).values(
        operation_id=operation_id, merchant_id=merchant_id, order_id=order_id))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def release_redemption(session: Session, coupon_id: int) -> None:
    session.execute(delete(CouponRedemptionLock).where(
        CouponRedemptionLock.coupon_id == str(coupon_id)))
