"""Showing a coupon at the till: the member app's coupon QR and the cashier's side of it.

A coupon's redemption must carry its holder's EIP-712 signature over the exact order (the
accepting merchant, order ref, order amount, nonce, deadline: ``RedeemCoupon`` of the coupon
book), which the member cannot sign before the cashier knows the order. So the QR carries no
signature and no key, only a one-time **presentation code** (128 random bits, five minutes):

1. the member taps a coupon: ``present`` makes a code bound to that holder and coupon (an
   older open code of the same coupon is dropped); the page shows it as a QR;
2. the cashier's till scans it and calls ``scan`` with its order id and amount: the first
   merchant to scan takes the code (another merchant, or another order, gets a conflict),
   and the coupon is checked against the order on chain (``validate``: nothing is used);
3. the page (polling) shows the merchant, the order amount and the discount; the member
   signs that exact redemption; ``redeem`` queues it through ``coupons.service``, relayed by
   the scanning merchant, once (asking again gives the same operation);
4. the code reads ``used`` once the redemption is confirmed on chain.

Replay: a photographed QR is worth nothing on its own: it names no order, and a redemption
needs the member's signature over the scanning merchant's order, whose unordered nonce lands
once on chain. Only a hash of the code is stored (a read of the table cannot present it).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import delete
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..coupons import kinds as coupons_kinds
from ..coupons import repos as coupons_repos
from ..coupons import service as coupons
from ..coupons.signing import redeem_coupon_typed_data
from ..errors import LedgerConflictError, LedgerExpiredError, LedgerNotFoundError
from ..memberships import service as memberships
from ..merchants.repos import get_merchant
from ..outbox import repos as outbox_repos
from ..points import reads as point_reads
from ..points.service import order_ref
from ..store.models import CouponPresentation, OperationStatus
from .payments import SIGNATURE_TTL_S, MemberOperation, SignRequest

PRESENTATION_TTL_S = 300
CODE_PREFIX = "ALC-"  # what a till's scanner sees first: an alliance coupon presentation


class PresentationStatus(StrEnum):
    """``shown`` (waiting for the till), ``scanned`` (the till asks: the member confirms),
    ``redeeming`` (signed, queued or sent), ``used`` (confirmed on chain), ``failed`` (the
    redemption reverted: show it again), ``expired`` (not scanned or signed in time)."""

    SHOWN = "shown"
    SCANNED = "scanned"
    REDEEMING = "redeeming"
    USED = "used"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class PresentationView:
    code: str | None  # only to the member who made it, right after
    coupon_id: str
    holder: str
    status: PresentationStatus
    expires_at: int
    merchant_id: int | None
    merchant_name: str | None
    order_id: str | None
    order_amount: int | None
    discount: int | None
    operation_id: str | None
    tx_hash: str | None
    error_code: str | None


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _find(session: Session, code: object, *, lock: bool = False) -> CouponPresentation:
    if not isinstance(code, str) or not code.startswith(CODE_PREFIX) or len(code) > 64:
        raise LedgerNotFoundError("no such coupon code")
    row = session.get(CouponPresentation, _hash(code), with_for_update=lock)
    if row is None:
        raise LedgerNotFoundError("no such coupon code")
    return row


def _view(session: Session, row: CouponPresentation, code: str | None = None
          ) -> PresentationView:
    op = outbox_repos.get_operation(session, row.operation_id) if row.operation_id else None
    if op is not None and op.status == OperationStatus.CONFIRMED:
        status = PresentationStatus.USED
    elif op is not None and op.status == OperationStatus.FAILED:
        status = PresentationStatus.FAILED
    elif op is not None:
        status = PresentationStatus.REDEEMING
    elif row.expires_at < datetime.now(UTC):
        status = PresentationStatus.EXPIRED
    elif row.merchant_id is not None:
        status = PresentationStatus.SCANNED
    else:
        status = PresentationStatus.SHOWN
    merchant = get_merchant(session, row.merchant_id) if row.merchant_id is not None else None
    return PresentationView(
        code=code, coupon_id=row.coupon_id, holder=row.holder, status=status,
        expires_at=int(row.expires_at.timestamp()), merchant_id=row.merchant_id,
        merchant_name=merchant.name if merchant is not None else None, order_id=row.order_id,
        order_amount=row.order_amount, discount=row.discount, operation_id=row.operation_id,
        tx_hash=op.tx_hash if op is not None else None,
        error_code=op.error_code if op is not None else None)


def present(alliance: Alliance, session: Session, *, holder: str,
            coupon_id: object) -> PresentationView:
    """A fresh one-time code for the till to scan, for a valid coupon the member holds.

    Raises LedgerNotFoundError (not the member's coupon) or LedgerConflictError
    (``coupon-not-valid``: used or expired)."""
    addr = limits.address(holder)
    cid = str(coupons.coupon_id_of(coupon_id))
    mine = {c["coupon_id"]: c for c in coupons.member_coupons(alliance, session, holder=addr)}
    if cid not in mine:
        raise LedgerNotFoundError(f"you hold no coupon {cid}", coupon_id=cid)
    if mine[cid]["status"] != coupons.CouponStatus.VALID:
        raise LedgerConflictError(f"coupon {cid} is {mine[cid]['status']}",
                                  code="coupon-not-valid")
    session.execute(delete(CouponPresentation).where(
        CouponPresentation.coupon_id == cid, CouponPresentation.operation_id.is_(None)))
    code = CODE_PREFIX + secrets.token_urlsafe(16)
    row = CouponPresentation(code_hash=_hash(code), holder=addr, coupon_id=cid,
                             expires_at=datetime.now(UTC)
                             + timedelta(seconds=PRESENTATION_TTL_S))
    session.add(row)
    session.flush()
    return _view(session, row, code)


def member_presentation(session: Session, *, holder: str, code: object) -> PresentationView:
    """Where one of the member's own codes is (else not found)."""
    row = _find(session, code)
    if row.holder != holder:
        raise LedgerNotFoundError("no such coupon code")
    return _view(session, row)


def scan(alliance: Alliance, session: Session, *, merchant_id: int, code: object,
         order_id: str, order_amount: int) -> PresentationView:
    """The till's scan: the code is taken for this merchant's order and the coupon is checked
    against it (nothing is used until the member signs).

    Scanning again for the same order answers the same; for another order or by another
    merchant: LedgerConflictError ``coupon-code-taken``. An expired code:
    LedgerExpiredError ``coupon-code-expired``; a coupon that does not apply: the coupon
    book's refusal (LedgerConflictError, ``coupon-…``)."""
    row = _find(session, code, lock=True)
    oid = limits.order_id(order_id)
    view = _view(session, row)
    if row.merchant_id is not None:
        if row.merchant_id == merchant_id and row.order_id == oid \
                and row.order_amount == order_amount:
            return view
        raise LedgerConflictError("this coupon code was scanned for another order",
                                  code="coupon-code-taken")
    if view.status == PresentationStatus.EXPIRED:
        raise LedgerExpiredError("this coupon code has expired: ask the member to show it "
                                 "again", code="coupon-code-expired")
    check = coupons.validate(alliance, session, merchant_id=merchant_id,
                             coupon_id=row.coupon_id, order_id=oid, order_amount=order_amount)
    if not check.applies:
        raise LedgerConflictError(f"coupon {row.coupon_id} does not apply: {check.reason}",
                                  code=check.reason or "coupon-refused")
    row.merchant_id = merchant_id
    row.order_id = oid
    row.order_amount = order_amount
    row.discount = check.discount
    # The member now has the signature's lifetime to confirm at the till.
    row.expires_at = datetime.now(UTC) + timedelta(seconds=PRESENTATION_TTL_S)
    session.flush()
    return _view(session, row)


def merchant_presentation(session: Session, *, merchant_id: int,
                          code: object) -> PresentationView:
    """A code this merchant scanned, and where its redemption is."""
    row = _find(session, code)
    if row.merchant_id != merchant_id:
        raise LedgerNotFoundError("no such coupon code")
    return _view(session, row)


def _scanned(session: Session, holder: str, code: object, *,
             lock: bool = False) -> CouponPresentation:
    row = _find(session, code, lock=lock)
    if row.holder != holder:
        raise LedgerNotFoundError("no such coupon code")
    view = _view(session, row)
    if view.status == PresentationStatus.EXPIRED:
        raise LedgerExpiredError("this coupon code has expired: show the coupon again",
                                 code="coupon-code-expired")
    if row.merchant_id is None or row.order_id is None or row.order_amount is None:
        raise LedgerConflictError("the cashier has not scanned this code yet",
                                  code="coupon-code-not-scanned")
    return row


def quote(alliance: Alliance, session: Session, *, holder: str, code: object) -> SignRequest:
    """What the member signs to use the coupon on the scanned order (``RedeemCoupon``)."""
    row = _scanned(session, holder, code)
    assert row.merchant_id is not None and row.order_id is not None \
        and row.order_amount is not None
    book = coupons_kinds.book(alliance.contracts)
    # Unordered nonces (a bitmap per holder): a random 64-bit one is unused with certainty
    # for all practical purposes; the service checks the bit again before queueing.
    nonce = secrets.randbits(52)  # 52 bits: exact as a JavaScript number in the page
    deadline = point_reads.chain_now(alliance) + SIGNATURE_TTL_S
    typed = redeem_coupon_typed_data(
        chain_id=alliance.gateway.chain_id, book=book.address,
        registry=alliance.contracts.deployment.registry, holder=holder,
        coupon_id=int(row.coupon_id), acceptor=row.merchant_id,
        order_ref=order_ref(row.order_id), order_amount=row.order_amount, nonce=nonce,
        deadline=deadline)
    # A coupon id is a 256-bit number: the page gets it as a decimal string (ethers takes
    # either), since a JSON number would lose it in JavaScript.
    typed["message"]["couponId"] = row.coupon_id
    return SignRequest(typed, 0, row.discount or 0, nonce, deadline, row.order_id)


def redeem(alliance: Alliance, session: Session, *, holder: str, code: object, nonce: int,
           deadline: int, signature: str) -> PresentationView:
    """Queue the member's signed redemption of the scanned order, once: asking again gives
    the same redemption back (only a failed one can be signed again)."""
    row = _scanned(session, holder, code, lock=True)
    view = _view(session, row)
    if view.status in (PresentationStatus.REDEEMING, PresentationStatus.USED):
        return view
    assert row.merchant_id is not None and row.order_id is not None \
        and row.order_amount is not None
    op = coupons.request_redeem(alliance, session, merchant_id=row.merchant_id,
                                coupon_id=row.coupon_id, order_id=row.order_id,
                                order_amount=row.order_amount, nonce=nonce,
                                deadline=deadline, signature=signature)
    row.operation_id = op.id
    session.flush()
    return _view(session, row)


# ---------------------------------------------------------------------- the member's coupons


def my_coupons(alliance: Alliance, session: Session, *, holder: str) -> list[dict[str, object]]:
    """The member's coupons (valid, used, expired) with the issuer's name, valid ones first
    and soonest to expire first."""
    out: list[dict[str, object]] = []
    for c in coupons.member_coupons(alliance, session, holder=holder):
        issuer = get_merchant(session, c["issuer"]) if c.get("issuer") is not None else None
        out.append({**c, "issuer_name": issuer.name if issuer is not None else None})
    order = {coupons.CouponStatus.VALID: 0, coupons.CouponStatus.USED: 1,
             coupons.CouponStatus.EXPIRED: 2}
    out.sort(key=lambda c: (order.get(coupons.CouponStatus(str(c["status"])), 3),
                            c["expires_at"] or 2**63))
    return out


def claim_voucher(alliance: Alliance, session: Session, *, holder: str, code: object) -> str:
    """Queue the claim of a voucher (a merchant's signed link or QR) into the member's own
    wallet, relayed by the voucher's issuer; the operation's id."""
    addr = limits.address(holder)
    voucher = coupons.Voucher.parse(code)
    campaign = coupons_repos.campaign(session, voucher.campaign_id)
    if campaign is None:
        raise LedgerNotFoundError("no such voucher", campaign_id=voucher.campaign_id)
    # Through the tier gate: a tier-locked campaign's voucher refuses a member below it.
    op = memberships.request_tier_claim_voucher(alliance, session, merchant_id=campaign.issuer,
                                                code=voucher.code, to=addr)
    return op.id


def voucher_claim(session: Session, *, holder: str, operation_id: str) -> MemberOperation:
    """Where the member's voucher claim is (else not found)."""
    op = outbox_repos.get_operation(session, operation_id) if isinstance(
        operation_id, str) and len(operation_id) <= 36 else None
    if op is None or op.kind != coupons_kinds.CLAIM_VOUCHER.name \
            or op.payload.get("to") != holder:
        raise LedgerNotFoundError("no such claim of yours")
    return MemberOperation(op.id, op.kind, OperationStatus(op.status), op.tx_hash,
                           op.block_number, op.error_code)
