"""Gifts in the member app: the alliance's gift catalogue as the member sees it, and the
member's own redemption of points for a gift.

The catalogue lists every active gift of every merchant with what is left, its price in
points of the merchant's program, the per-member limit, how many the member has had and the
member's spendable points of that program, and says plainly whether the member can take it
now (``available``: ``ok``, ``out_of_stock``, ``member_limit``, ``insufficient_points``,
``paused``).

Redeeming is the app's usual signed flow: the quote names a fresh request id and gives the
exact EIP-712 ``Redeem`` to sign (the gift's points of its merchant's program, at that
merchant, for the order id ``gift-<gift id>-<request id>``); the signed redemption goes to the
offers service, which reserves a unit of stock and queues the redemption relayed by the gift's
merchant; the gift coupon is granted once the redemption is confirmed. Each refusal (out of
stock, over the limit, not enough points, withdrawn) is a 409 with its ``offers-…`` code and
changes nothing. Sending the same signed request again (an answer lost on the way) gives the
same redemption back: the request id is its idempotency key, so nothing is paid twice.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import limits, signing
from ..alliance import Alliance
from ..coupons import repos as coupons_repos
from ..errors import LedgerConflictError, LedgerNotFoundError
from ..merchants.repos import get_merchant
from ..merchants.service import program_of, require_merchant
from ..offers import repos as offers_repos
from ..offers import service as offers
from ..outbox import repos as outbox_repos
from ..points import service as points
from ..store.models import Gift, GiftRedemption, OperationStatus
from ..types import MerchantId
from .payments import SignRequest, free_nonce, signature_deadline

# A request id made by the app: "app-" and 24 hex digits (within the offers' 40 characters).
REQUEST_PREFIX = "app-"


class GiftAvailability(StrEnum):
    """Whether the member can take a gift now, and if not, why."""

    OK = "ok"
    OUT_OF_STOCK = "out_of_stock"
    MEMBER_LIMIT = "member_limit"
    INSUFFICIENT_POINTS = "insufficient_points"
    PAUSED = "paused"


class MyGiftStatus(StrEnum):
    """A member's gift redemption as the app shows it: ``paying`` (the points redemption is
    queued or sent), ``granting`` (points taken; the coupon grant is queued or sent),
    ``done`` (the coupon is the member's, on chain), ``failed`` (nothing was taken, or the
    grant failed: ``error_code`` says which)."""

    PAYING = "paying"
    GRANTING = "granting"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class CatalogueGift:
    gift_id: int
    merchant_id: int
    merchant_name: str
    name: str
    points: int
    value: int | None
    left: int
    per_member_limit: int
    taken: int
    my_points: int
    available: GiftAvailability


@dataclass(frozen=True)
class GiftQuote:
    """What the member signs for a gift, and the request id to send back with it."""

    gift_id: int
    request_id: str
    sign: SignRequest


@dataclass(frozen=True)
class MyGiftRedemption:
    gift_id: int
    gift_name: str
    merchant_name: str
    request_id: str
    points: int
    status: MyGiftStatus
    error_code: str | None
    tx_hash: str | None
    created_at: int
    """When the member asked for it (unix seconds)."""


def _coupon_value(session: Session, campaign_id: int) -> tuple[int | None, bool]:
    """(face value in settlement units, paused) of the gift's campaign, as indexed."""
    c = coupons_repos.campaign(session, campaign_id)
    if c is None:
        return None, False
    value = c.terms.get("value")
    return (int(value) if isinstance(value, int) else None), c.paused


def _availability(g: Gift, *, taken: int, my_points: int, paused: bool) -> GiftAvailability:
    if g.reserved >= g.stock:
        return GiftAvailability.OUT_OF_STOCK
    if g.per_member_limit and taken >= g.per_member_limit:
        return GiftAvailability.MEMBER_LIMIT
    if paused:
        return GiftAvailability.PAUSED
    if my_points < g.points:
        return GiftAvailability.INSUFFICIENT_POINTS
    return GiftAvailability.OK


def catalogue(alliance: Alliance, session: Session, *, member: str) -> list[CatalogueGift]:
    """Every active gift of the alliance (by merchant, then listing order) as ``member``
    sees it: what is left, the price, the limit, what the member had and holds."""
    account = limits.address(member)
    gifts = session.scalars(select(Gift).where(Gift.active.is_(True))
                            .order_by(Gift.merchant_id, Gift.id)).all()
    spendable: dict[int, int] = {}
    out: list[CatalogueGift] = []
    for g in gifts:
        merchant = get_merchant(session, g.merchant_id)
        if merchant is None or merchant.program_address is None:
            continue
        if g.merchant_id not in spendable:
            spendable[g.merchant_id] = alliance.contracts.program(
                program_of(merchant)).spendable_of(account)
        taken = offers_repos.member_gift_count(session, gift_id=g.id, member=account)
        value, paused = _coupon_value(session, g.campaign_id)
        mine = spendable[g.merchant_id]
        out.append(CatalogueGift(
            gift_id=g.id, merchant_id=g.merchant_id, merchant_name=merchant.name, name=g.name,
            points=g.points, value=value, left=g.stock - g.reserved,
            per_member_limit=g.per_member_limit, taken=taken, my_points=mine,
            available=_availability(g, taken=taken, my_points=mine, paused=paused)))
    return out


def _gift(session: Session, gift_id: int) -> Gift:
    g = offers_repos.gift(session, limits.bounded_int(gift_id, "gift_id", low=1,
                                                      high=2**31 - 1))
    if g is None or not g.active:
        raise LedgerNotFoundError("no such gift", gift_id=gift_id)
    return g


_REFUSALS = {
    GiftAvailability.OUT_OF_STOCK: ("offers-gift-out-of-stock", "this gift is out of stock"),
    GiftAvailability.MEMBER_LIMIT: ("offers-gift-member-limit",
                                    "you have had this gift as often as a member may"),
    GiftAvailability.INSUFFICIENT_POINTS: ("offers-insufficient-points",
                                           "you do not hold enough points of this program"),
    GiftAvailability.PAUSED: ("coupon-campaign-paused",
                              "this gift is paused by the shop for now"),
}


def quote(alliance: Alliance, session: Session, *, member: str, gift_id: int) -> GiftQuote:
    """What the member signs to redeem the gift: a fresh request id and the exact points
    redemption. Refused before anything is signed (409, the offers service's codes) when the
    gift is out of stock, the member is at its limit or holds too few points."""
    account = limits.address(member)
    g = _gift(session, gift_id)
    merchant = require_merchant(session, g.merchant_id, program=True)
    program = program_of(merchant)
    taken = offers_repos.member_gift_count(session, gift_id=g.id, member=account)
    _, paused = _coupon_value(session, g.campaign_id)
    mine = alliance.contracts.program(program).spendable_of(account)
    state = _availability(g, taken=taken, my_points=mine, paused=paused)
    if state is not GiftAvailability.OK:
        code, text = _REFUSALS[state]
        raise LedgerConflictError(text, code=code, gift_id=g.id)
    request_id = REQUEST_PREFIX + secrets.token_hex(12)
    order_id = offers.gift_order_id(g.id, request_id)
    nonce = free_nonce(alliance, merchant_id=MerchantId(merchant.id), member=account)
    deadline = signature_deadline(alliance)
    rate = alliance.contracts.registry.rate_of(merchant.id)
    typed = signing.redeem_typed_data(
        chain_id=alliance.gateway.chain_id, program=program,
        registry=alliance.contracts.deployment.registry, member=account, amount=g.points,
        merchant_id=merchant.id, order_ref=points.order_ref(order_id), nonce=nonce,
        deadline=deadline)
    return GiftQuote(g.id, request_id,
                     SignRequest(typed, g.points, g.points * rate, nonce, deadline, order_id))


def redeem(alliance: Alliance, session: Session, *, member: str, gift_id: int,
           request_id: str, nonce: int, deadline: int, signature: str) -> MyGiftRedemption:
    """Hand the member's signed redemption to the offers service (relayed by the gift's
    merchant), once: the same request again gives the same redemption back."""
    account = limits.address(member)
    if not isinstance(request_id, str) or not request_id.startswith(REQUEST_PREFIX):
        raise LedgerNotFoundError("no such quote: ask for a new one", field="request_id")
    g = _gift(session, gift_id)
    done = offers_repos.gift_redemption_by_request(session, gift_id=g.id,
                                                   request_id=request_id)
    if done is not None:
        if done.member != account:
            raise LedgerNotFoundError("no such quote: ask for a new one", field="request_id")
        return _mine(session, done)
    offers.request_gift_redemption(alliance, session, merchant_id=g.merchant_id,
                                   gift_id=g.id, member=account, request_id=request_id,
                                   nonce=nonce, deadline=deadline, signature=signature)
    made = offers_repos.gift_redemption_by_request(session, gift_id=g.id,
                                                   request_id=request_id)
    assert made is not None
    return _mine(session, made)


def _mine(session: Session, gr: GiftRedemption) -> MyGiftRedemption:
    g = offers_repos.gift(session, gr.gift_id)
    assert g is not None
    merchant = get_merchant(session, g.merchant_id)
    redeem_op = outbox_repos.get_operation(session, gr.redeem_operation_id)
    grant_op = (outbox_repos.get_operation(session, gr.grant_operation_id)
                if gr.grant_operation_id else None)
    error: str | None = None
    tx = redeem_op.tx_hash if redeem_op is not None else None
    if redeem_op is not None and redeem_op.status == OperationStatus.FAILED:
        status, error = MyGiftStatus.FAILED, redeem_op.error_code or "failed"
    elif gr.status == offers_repos.GiftRedemptionStatus.FAILED:
        status, error = MyGiftStatus.FAILED, "failed"
    elif grant_op is None:
        status = MyGiftStatus.PAYING if gr.status == offers_repos.GiftRedemptionStatus.PAYING \
            else MyGiftStatus.GRANTING
    elif grant_op.status == OperationStatus.CONFIRMED:
        status, tx = MyGiftStatus.DONE, grant_op.tx_hash
    elif grant_op.status == OperationStatus.FAILED:
        status, error = MyGiftStatus.FAILED, grant_op.error_code or "failed"
    else:
        status = MyGiftStatus.GRANTING
    return MyGiftRedemption(
        gift_id=g.id, gift_name=g.name, merchant_name=merchant.name if merchant else "",
        request_id=gr.request_id, points=g.points, status=status, error_code=error,
        tx_hash=tx, created_at=int(gr.created_at.timestamp()))


def my_redemption(session: Session, *, member: str, gift_id: int,
                  request_id: str) -> MyGiftRedemption:
    """One of the member's gift redemptions (someone else's is not found)."""
    account = limits.address(member)
    gr = offers_repos.gift_redemption_by_request(
        session, gift_id=limits.bounded_int(gift_id, "gift_id", low=1, high=2**31 - 1),
        request_id=request_id) if isinstance(request_id, str) else None
    if gr is None or gr.member != account:
        raise LedgerNotFoundError("no such gift redemption of yours")
    return _mine(session, gr)


def my_redemptions(session: Session, *, member: str) -> list[MyGiftRedemption]:
    """The member's gift redemptions, newest first."""
    rows = offers_repos.gift_redemptions(session, member=limits.address(member))
    return [_mine(session, gr) for gr in reversed(rows)]
