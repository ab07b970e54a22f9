"""Memberships' store access: the card events the projection fills, tiers, tier locks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ..store.models import (
    CampaignTierLock,
    MemberClaimMove,
    MembershipEvent,
    MembershipTier,
    PointEvent,
)
from ..store.tables import insert_for


class CardEventKind(StrEnum):
    """What a ``membership_events`` row records."""

    ISSUED = "issued"
    RENEWED = "renewed"


def insert_events(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    if not rows:
        return 0
    insert_fn = insert_for(session)
    added = 0
    for start in range(0, len(rows), 500):
        stmt = insert_fn(MembershipEvent).values(list(rows[start:start + 500])
                                                 ).on_conflict_do_nothing(
            index_elements=["tx_hash", "log_index"])
        added += session.execute(stmt).rowcount or 0  # type: ignore[attr-defined]
    return added


def delete_after(session: Session, block: int) -> None:
    session.execute(delete(MembershipEvent).where(MembershipEvent.block_number > block))


# ---------------------------------------------------------------------- cards


@dataclass(frozen=True)
class CardRecord:
    """A card as its latest event leaves it."""

    token_id: str
    merchant_id: int
    member: str
    tier: int
    expires_at: int
    issued_block_time: int


def _cards(session: Session, *where: Any) -> list[CardRecord]:
    rows = session.scalars(select(MembershipEvent).where(*where).order_by(
        MembershipEvent.block_number, MembershipEvent.log_index)).all()
    latest: dict[str, CardRecord] = {}
    for r in rows:
        first = latest.get(r.token_id)
        latest[r.token_id] = CardRecord(r.token_id, r.merchant_id,
                                        first.member if first else r.member, r.tier,
                                        r.expires_at,
                                        first.issued_block_time if first else r.block_time)
    return list(latest.values())


def cards_of(session: Session, member: str) -> list[CardRecord]:
    """Every card ``member`` holds, in the order they were issued."""
    return _cards(session, func.lower(MembershipEvent.member) == member.lower())


def card(session: Session, token_id: int) -> CardRecord | None:
    found = _cards(session, MembershipEvent.token_id == str(token_id))
    return found[0] if found else None


# ---------------------------------------------------------------------- tiers


def tiers(session: Session, merchant_id: int) -> list[MembershipTier]:
    """The tiers of ``merchant_id`` (0: alliance-wide), lowest level first."""
    return list(session.scalars(select(MembershipTier).where(
        MembershipTier.merchant_id == merchant_id).order_by(MembershipTier.level)).all())


def replace_tiers(session: Session, merchant_id: int, rows: Sequence[dict[str, Any]]) -> None:
    session.execute(delete(MembershipTier).where(MembershipTier.merchant_id == merchant_id))
    session.flush()
    for r in rows:
        session.add(MembershipTier(merchant_id=merchant_id, **r))
    session.flush()


def points_earned(session: Session, *, member: str, merchant_id: int | None,
                  since: int) -> int:
    """Points ``member`` was issued since ``since`` (block time), less those reversed, at
    ``merchant_id``'s program (None: every program). Points issued to a custodial account
    whose holdings a claim moved to ``member`` count as the member's: the same person
    earned them before linking a wallet."""
    total = 0
    moved_from = select(func.lower(MemberClaimMove.account)).where(
        func.lower(MemberClaimMove.wallet) == member.lower())
    where = [or_(func.lower(PointEvent.member) == member.lower(),
                 func.lower(PointEvent.member).in_(moved_from)),
             PointEvent.kind.in_(("issued", "reversed")), PointEvent.block_time > since]
    if merchant_id is not None:
        where.append(PointEvent.merchant_id == merchant_id)
    for kind, amount in session.execute(select(PointEvent.kind, PointEvent.amount)
                                        .where(*where)).all():
        total += amount if kind == "issued" else -amount
    return max(total, 0)


def points_redeemed(session: Session, *, member: str, merchant_id: int, order_ref: str) -> int:
    """Points ``member`` redeemed at ``merchant_id`` for the order ``order_ref`` (indexed),
    less what was refunded of them."""
    total = 0
    for kind, amount in session.execute(select(PointEvent.kind, PointEvent.amount).where(
            func.lower(PointEvent.member) == member.lower(),
            PointEvent.merchant_id == merchant_id, PointEvent.order_ref == order_ref,
            PointEvent.kind.in_(("redeemed", "refunded")))).all():
        total += amount if kind == "redeemed" else -amount
    return max(total, 0)


def tier_lock(session: Session, campaign_id: int) -> CampaignTierLock | None:
    return session.get(CampaignTierLock, campaign_id)


def set_tier_lock(session: Session, *, campaign_id: int, scope_merchant_id: int,
                  min_level: int) -> None:
    row = session.get(CampaignTierLock, campaign_id)
    if row is None:
        session.add(CampaignTierLock(campaign_id=campaign_id,
                                     scope_merchant_id=scope_merchant_id, min_level=min_level))
    else:
        row.scope_merchant_id, row.min_level = scope_merchant_id, min_level
    session.flush()
