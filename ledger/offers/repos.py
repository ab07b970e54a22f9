"""Offers in the store: rules, firings (one per rule and cause), birth months, invites,
referrals, gifts and gift redemptions."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TypeVar

from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..store.models import (
    Gift,
    GiftRedemption,
    OfferFiring,
    OfferReversal,
    OfferRule,
    Operation,
    OperationStatus,
)
from ..store.tables import insert_for

A = TypeVar("A")
B = TypeVar("B")


class RuleKind(StrEnum):
    """What makes a rule fire."""

    PURCHASE = "purchase"
    BIRTHDAY = "birthday"
    REFERRAL = "referral"


class FiringStatus(StrEnum):
    """A firing's grant: ``queued`` in the outbox (then on chain), ``skipped`` (the coupons
    service refused it when the rule fired: ``reason`` says why) or ``failed`` (queued, but
    the chain refused it: ``reason`` is the revert). Both are final: a rule grants for a cause
    when the cause happens, never later (a campaign paused meanwhile meant "no grants now").

    A purchase firing whose order is reversed below the rule's threshold goes ``revoking``
    (its coupon is being taken back), then ``revoked``, or ``kept`` if the member had used
    the coupon already (reported, not taken back)."""

    QUEUED = "queued"
    SKIPPED = "skipped"
    FAILED = "failed"
    REVOKING = "revoking"
    REVOKED = "revoked"
    KEPT = "kept"


class GiftRedemptionStatus(StrEnum):
    PAYING = "paying"
    PAID = "paid"
    FAILED = "failed"


def rule(session: Session, rule_id: int) -> OfferRule | None:
    return session.get(OfferRule, rule_id)


def rules(session: Session, *, merchant_id: int | None = None, kind: RuleKind | None = None,
          active: bool | None = None) -> Sequence[OfferRule]:
    q = select(OfferRule).order_by(OfferRule.id)
    if merchant_id is not None:
        q = q.where(OfferRule.merchant_id == merchant_id)
    if kind is not None:
        q = q.where(OfferRule.kind == kind.value)
    if active is not None:
        q = q.where(OfferRule.active == active)
    return session.scalars(q).all()


def fired_causes(session: Session, rule_id: int, causes: Sequence[str]) -> set[str]:
    """Which of ``causes`` the rule already fired for."""
    if not causes:
        return set()
    return set(session.scalars(select(OfferFiring.cause).where(
        OfferFiring.rule_id == rule_id, OfferFiring.cause.in_(list(causes)))).all())


def insert_firing(session: Session, *, rule_id: int, cause: str, members: list[str],
                  order_ref: str | None = None, order_points: int | None = None,
                  order_spend: int | None = None) -> OfferFiring | None:
    """Record that the rule fires for ``cause``; None if it already did (the unique pair
    decides, also against a concurrent run in another process)."""
    try:
        with session.begin_nested():
            row = OfferFiring(rule_id=rule_id, cause=cause, members=members,
                              status=FiringStatus.QUEUED.value, order_ref=order_ref,
                              order_points=order_points, order_spend=order_spend,
                              reversed_points=0)
            session.add(row)
    except IntegrityError:
        return None
    return row


def firings(session: Session, rule_id: int) -> Sequence[OfferFiring]:
    return session.scalars(select(OfferFiring).where(OfferFiring.rule_id == rule_id)
                           .order_by(OfferFiring.id)).all()


def _pairs(session: Session, query: Select[A, B]) -> list[tuple[A, B]]:
    return [(a, b) for a, b in session.execute(query)]


def order_firings(session: Session, *, merchant_id: int,
                  order_ref: str) -> list[tuple[OfferFiring, OfferRule]]:
    """The merchant's purchase firings for one order (0x-hex ref), with their rules."""
    return _pairs(session, select(OfferFiring, OfferRule).join(
        OfferRule, OfferRule.id == OfferFiring.rule_id).where(
        OfferFiring.order_ref == order_ref, OfferRule.merchant_id == merchant_id,
        OfferRule.kind == RuleKind.PURCHASE.value).order_by(OfferFiring.id))


def record_reversal(session: Session, *, merchant_id: int, order_ref: str, points: int,
                    tx_hash: str, log_index: int, block_number: int) -> bool:
    """Record a reversal as counted; False if this log was counted already (read again)."""
    insert_fn = insert_for(session)
    stmt = insert_fn(OfferReversal).values(
        merchant_id=merchant_id, order_ref=order_ref, points=points, tx_hash=tx_hash,
        log_index=log_index, block_number=block_number).on_conflict_do_nothing(
        index_elements=["tx_hash", "log_index"])
    return bool(session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def take_reversals_after(session: Session, block: int) -> list[OfferReversal]:
    """The counted reversals read above ``block``, deleted (a reorg undid them)."""
    rows = list(session.scalars(select(OfferReversal).where(OfferReversal.block_number > block)
                                .order_by(OfferReversal.id)))
    session.execute(delete(OfferReversal).where(OfferReversal.block_number > block))
    return rows


def queued_whose_grant_failed(session: Session) -> list[tuple[OfferFiring, Operation]]:
    """Firings still ``queued`` or ``revoking`` whose grant operation failed on chain."""
    return _pairs(session, select(OfferFiring, Operation).join(
        Operation, Operation.id == OfferFiring.operation_id).where(
        OfferFiring.status.in_([FiringStatus.QUEUED.value, FiringStatus.REVOKING.value]),
        Operation.status == OperationStatus.FAILED))


def revoking(session: Session) -> list[tuple[OfferFiring, OfferRule]]:
    return _pairs(session, select(OfferFiring, OfferRule).join(
        OfferRule, OfferRule.id == OfferFiring.rule_id).where(
        OfferFiring.status == FiringStatus.REVOKING.value)
        .order_by(OfferFiring.id))


def operation(session: Session, operation_id: str | None) -> Operation | None:
    if operation_id is None:
        return None
    return session.scalar(select(Operation).where(Operation.id == operation_id))


def gift(session: Session, gift_id: int) -> Gift | None:
    return session.get(Gift, gift_id)


def gifts(session: Session, *, merchant_id: int) -> Sequence[Gift]:
    return session.scalars(select(Gift).where(Gift.merchant_id == merchant_id)
                           .order_by(Gift.id)).all()


def reserve_stock(session: Session, gift_id: int) -> bool:
    """Take one unit of a gift's stock (an atomic conditional update: two concurrent requests
    for the last unit cannot both get it)."""
    res = session.execute(update(Gift).where(Gift.id == gift_id, Gift.reserved < Gift.stock)
                          .values(reserved=Gift.reserved + 1))
    return bool(res.rowcount)  # type: ignore[attr-defined]


def release_stock(session: Session, gift_id: int) -> None:
    session.execute(update(Gift).where(Gift.id == gift_id, Gift.reserved > 0)
                    .values(reserved=Gift.reserved - 1))


def member_gift_count(session: Session, *, gift_id: int, member: str) -> int:
    return len(session.scalars(select(GiftRedemption.id).where(
        GiftRedemption.gift_id == gift_id, GiftRedemption.member == member,
        GiftRedemption.status != GiftRedemptionStatus.FAILED.value)).all())


def gift_redemption_by_request(session: Session, *, gift_id: int,
                               request_id: str) -> GiftRedemption | None:
    return session.scalar(select(GiftRedemption).where(GiftRedemption.gift_id == gift_id,
                                                       GiftRedemption.request_id == request_id))


def paying_by_refs(session: Session, refs: Sequence[str]) -> Sequence[GiftRedemption]:
    if not refs:
        return []
    return session.scalars(select(GiftRedemption).where(
        GiftRedemption.order_ref.in_(list(refs)),
        GiftRedemption.status == GiftRedemptionStatus.PAYING.value)).all()


def paying_whose_redemption_failed(session: Session) -> Sequence[GiftRedemption]:
    return session.scalars(select(GiftRedemption).join(
        Operation, Operation.id == GiftRedemption.redeem_operation_id).where(
        GiftRedemption.status == GiftRedemptionStatus.PAYING.value,
        Operation.status == OperationStatus.FAILED)).all()


def gift_redemptions(session: Session, *, member: str) -> Sequence[GiftRedemption]:
    return session.scalars(select(GiftRedemption).where(GiftRedemption.member == member)
                           .order_by(GiftRedemption.id)).all()
