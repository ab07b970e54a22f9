"""Paying with points from the member app: a merchant's payment request, the member's signed
redemption against it, and conversions between programs quoted before they are signed.

A payment request (created by the merchant's API: amount in settlement units, its order id,
an expiry) is paid at most once: the first accepted signature queues one redemption relayed
by the requesting merchant and the request keeps its operation; asking again gives that same
operation back (the request id is the idempotency key), and only a redemption that failed
lets the member try again. The member picks which program's points pay: ``points =
ceil(amount / rate)`` of that program, so the merchant is never paid less than asked (at most
``rate - 1`` units more; the quote shows it).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from .. import limits, signing
from ..alliance import Alliance
from ..errors import (
    LedgerConflictError,
    LedgerExpiredError,
    LedgerNotFoundError,
    LedgerValidationError,
)
from ..merchants.repos import get_merchant
from ..merchants.service import program_of, require_merchant
from ..outbox import repos as outbox_repos
from ..points import reads as point_reads
from ..points import service as points
from ..store.models import OperationStatus, PaymentRequest
from ..types import MerchantId

# A payment request lives 1 minute to 1 day; 15 minutes unless the merchant says.
MIN_TTL_S = 60
MAX_TTL_S = 86_400
DEFAULT_TTL_S = 900
# How long a member's signature over a quote stays good (a payment is signed at the till).
SIGNATURE_TTL_S = 600
MAX_AMOUNT = 10**12  # settlement units (fen): ten billion yuan, far above any till


class PaymentStatus(StrEnum):
    """``open`` (waiting to be paid), ``paying`` (redemption queued or sent), ``paid``
    (confirmed on chain), ``expired`` (not paid in time)."""

    OPEN = "open"
    PAYING = "paying"
    PAID = "paid"
    EXPIRED = "expired"


@dataclass(frozen=True)
class PaymentRequestView:
    id: str
    merchant_id: int
    merchant_name: str
    order_id: str
    amount: int
    expires_at: int
    status: PaymentStatus
    program_merchant_id: int | None
    points: int | None
    operation_id: str | None
    tx_hash: str | None
    error_code: str | None


@dataclass(frozen=True)
class SignRequest:
    """What the member signs (EIP-712 typed data) and what the quote means in plain words."""

    typed_data: dict[str, Any]
    points: int
    value: int
    nonce: int
    deadline: int
    order_id: str
    min_out: int = 0
    points_spent: int = 0


def _unix(dt: datetime) -> int:
    return int(dt.timestamp())


def _request(session: Session, request_id: str, *, lock: bool = False) -> PaymentRequest:
    """The payment request (``lock``: its row locked until the transaction ends, so two
    payments of one request queue one after the other on PostgreSQL as on SQLite, whose
    writers already take the database's lock at BEGIN IMMEDIATE)."""
    if not isinstance(request_id, str) or not 8 <= len(request_id) <= 32:
        raise LedgerNotFoundError("no such payment request")
    row = session.get(PaymentRequest, request_id, with_for_update=lock)
    if row is None:
        raise LedgerNotFoundError("no such payment request")
    return row


def _view(session: Session, row: PaymentRequest) -> PaymentRequestView:
    merchant = get_merchant(session, row.merchant_id)
    name = merchant.name if merchant is not None else str(row.merchant_id)
    op = outbox_repos.get_operation(session, row.operation_id) if row.operation_id else None
    if op is not None and op.status == OperationStatus.CONFIRMED:
        status = PaymentStatus.PAID
    elif op is not None and op.status != OperationStatus.FAILED:
        status = PaymentStatus.PAYING
    elif row.expires_at < datetime.now(UTC):
        status = PaymentStatus.EXPIRED
    else:
        status = PaymentStatus.OPEN
    return PaymentRequestView(
        id=row.id, merchant_id=row.merchant_id, merchant_name=name, order_id=row.order_id,
        amount=row.amount, expires_at=_unix(row.expires_at), status=status,
        program_merchant_id=row.program_merchant_id, points=row.points,
        operation_id=row.operation_id, tx_hash=op.tx_hash if op is not None else None,
        error_code=op.error_code if op is not None else None)


def create_payment_request(session: Session, *, merchant_id: int, order_id: str, amount: int,
                           ttl_s: int = DEFAULT_TTL_S) -> PaymentRequestView:
    """A new payment request of ``amount`` settlement units for one of the merchant's orders.

    Raises LedgerConflictError (``payment-request-exists``) if the order already has one."""
    require_merchant(session, merchant_id)
    oid = limits.order_id(order_id)
    amt = limits.bounded_int(amount, "amount", low=1, high=MAX_AMOUNT,
                             message=f"amount must be 1 to {MAX_AMOUNT} settlement units")
    ttl = limits.bounded_int(ttl_s, "ttl_s", low=MIN_TTL_S, high=MAX_TTL_S,
                             message=f"ttl_s must be {MIN_TTL_S} to {MAX_TTL_S} seconds")
    if session.query(PaymentRequest).filter_by(merchant_id=merchant_id,
                                               order_id=oid).first() is not None:
        raise LedgerConflictError(f"order {oid} already has a payment request",
                                  code="payment-request-exists")
    row = PaymentRequest(id=secrets.token_urlsafe(16)[:22], merchant_id=merchant_id,
                         order_id=oid, amount=amt,
                         expires_at=datetime.now(UTC) + timedelta(seconds=ttl))
    session.add(row)
    session.flush()
    return _view(session, row)


def payment_request(session: Session, *, request_id: str,
                    merchant_id: int | None = None) -> PaymentRequestView:
    """A payment request and where its payment is (a merchant sees only its own)."""
    row = _request(session, request_id)
    if merchant_id is not None and row.merchant_id != merchant_id:
        raise LedgerNotFoundError("no such payment request")
    return _view(session, row)


def points_for(amount: int, rate: int) -> int:
    """Points of a program of ``rate`` units per point that cover ``amount`` units."""
    return -(-amount // rate)


def signature_deadline(alliance: Alliance, cap: int | None = None) -> int:
    """The deadline a member's signature gets: the chain's time plus
    :data:`SIGNATURE_TTL_S` (``cap`` seconds at most, one minute at least)."""
    now = point_reads.chain_now(alliance)
    ahead = SIGNATURE_TTL_S if cap is None else max(60, min(SIGNATURE_TTL_S, cap))
    return now + ahead


def free_nonce(alliance: Alliance, *, merchant_id: MerchantId, member: str) -> int:
    """An unused nonce of the member in the merchant's program (nonces are unordered)."""
    return point_reads.member_nonces(alliance, merchant_id=merchant_id,
                                     member=member).suggested[0]


def quote_payment(alliance: Alliance, session: Session, *, request_id: str, member: str,
                  program_merchant_id: int) -> SignRequest:
    """What the member signs to pay a request with ``program_merchant_id``'s points."""
    row = _request(session, request_id)
    view = _view(session, row)
    if view.status == PaymentStatus.EXPIRED:
        raise LedgerExpiredError("this payment request has expired: ask the cashier for a "
                                 "new one", code="payment-request-expired")
    program_merchant = require_merchant(session, limits.merchant_id(program_merchant_id))
    rate = alliance.contracts.registry.rate_of(program_merchant.id)
    pts = points_for(row.amount, rate)
    address = limits.address(member)
    nonce = free_nonce(alliance, merchant_id=MerchantId(program_merchant.id), member=address)
    deadline = signature_deadline(alliance,
                                  _unix(row.expires_at) - int(datetime.now(UTC).timestamp()))
    typed = signing.redeem_typed_data(
        chain_id=alliance.gateway.chain_id, program=program_of(program_merchant),
        registry=alliance.contracts.deployment.registry, member=address, amount=pts,
        merchant_id=row.merchant_id, order_ref=points.order_ref(row.order_id), nonce=nonce,
        deadline=deadline)
    return SignRequest(typed, pts, pts * rate, nonce, deadline, row.order_id)


def pay(alliance: Alliance, session: Session, *, request_id: str, member: str,
        program_merchant_id: int, points_signed: int, nonce: int, deadline: int,
        signature: str) -> PaymentRequestView:
    """Queue the member's signed redemption for a payment request, once.

    A request already being paid (or paid) gives its payment back unchanged, whoever asks
    again: nothing is paid twice. Raises LedgerExpiredError (``payment-request-expired``),
    LedgerValidationError (too few points signed), or LedgerSignatureError (the signature
    cannot land: see :class:`ledger.points.service.SignatureCheck`)."""
    row = _request(session, request_id, lock=True)
    view = _view(session, row)
    if view.status in (PaymentStatus.PAYING, PaymentStatus.PAID):
        return view
    if view.status == PaymentStatus.EXPIRED:
        raise LedgerExpiredError("this payment request has expired: ask the cashier for a "
                                 "new one", code="payment-request-expired")
    pm = limits.merchant_id(program_merchant_id, "program_merchant_id")
    rate = alliance.contracts.registry.rate_of(require_merchant(session, pm).id)
    if limits.redeem_points(points_signed) * rate < row.amount:
        raise LedgerValidationError(f"{points_signed} points at {rate} units a point do not "
                                    f"cover {row.amount} units", field="points")
    op = points.request_redeem(alliance, session, merchant_id=MerchantId(row.merchant_id),
                               member=member,
                               points=points_signed, order_id=row.order_id, nonce=nonce,
                               deadline=deadline, signature=signature,
                               program_merchant_id=pm)
    row.operation_id = op.id
    row.payer = limits.address(member)
    row.program_merchant_id = pm
    row.points = points_signed
    session.flush()
    return _view(session, row)


def quote_convert(alliance: Alliance, session: Session, *, member: str, from_merchant_id: int,
                  to_merchant_id: int, points_in: int) -> SignRequest:
    """What the member signs to convert ``points_in`` of one program into another, with the
    rounding spelled out: ``points`` credited = floor(in x rateA / rateB), ``points_spent`` =
    ceil(out x rateB / rateA) <= in (the rest stays), ``value`` = out x rateB units."""
    source = require_merchant(session, limits.merchant_id(from_merchant_id, "from_merchant_id"))
    target = require_merchant(session, limits.merchant_id(to_merchant_id, "to_merchant_id"))
    if source.id == target.id:
        raise LedgerValidationError("convert into another merchant's program",
                                    field="to_merchant_id")
    amount = limits.redeem_points(points_in)
    registry = alliance.contracts.registry
    rate_a, rate_b = registry.rate_of(source.id), registry.rate_of(target.id)
    out = amount * rate_a // rate_b
    if out == 0:
        raise LedgerValidationError(f"{amount} points are worth less than one point of the "
                                    "other program", field="points")
    spent = -(-out * rate_b // rate_a)
    address = limits.address(member)
    nonce = free_nonce(alliance, merchant_id=MerchantId(source.id), member=address)
    deadline = signature_deadline(alliance)
    order_id = "app-cv-" + secrets.token_hex(12)
    typed = signing.convert_typed_data(
        chain_id=alliance.gateway.chain_id, program=program_of(source),
        registry=alliance.contracts.deployment.registry, member=address, amount=amount,
        to_merchant_id=target.id, min_out=out, order_ref=points.order_ref(order_id),
        nonce=nonce, deadline=deadline)
    return SignRequest(typed, out, out * rate_b, nonce, deadline, order_id, min_out=out,
                       points_spent=spent)


def convert(alliance: Alliance, session: Session, *, member: str, from_merchant_id: int,
            to_merchant_id: int, points_in: int, min_out: int, order_id: str, nonce: int,
            deadline: int, signature: str) -> str:
    """Queue the member's signed conversion (relayed by the target merchant); its operation
    id. The same signature can land once (its nonce), so a repeat cannot convert twice."""
    if not isinstance(order_id, str) or not order_id.startswith("app-cv-"):
        raise LedgerValidationError("order_id must be the quote's", field="order_id")
    op = points.request_convert(alliance, session,
                                merchant_id=limits.merchant_id(to_merchant_id, "to_merchant_id"),
                                member=member,
                                from_merchant_id=limits.merchant_id(from_merchant_id,
                                                                    "from_merchant_id"),
                                points=points_in,
                                min_out=min_out, order_id=order_id, nonce=nonce,
                                deadline=deadline, signature=signature)
    return op.id


@dataclass(frozen=True)
class MemberOperation:
    """An operation carrying the member's own signature, as the member app shows it."""

    id: str
    kind: str
    status: OperationStatus
    tx_hash: str | None
    block_number: int | None
    error_code: str | None


def member_operation(session: Session, *, operation_id: str, member: str) -> MemberOperation:
    """Status of an operation carrying the member's own signature (else not found)."""
    op = outbox_repos.get_operation(session, operation_id) if isinstance(
        operation_id, str) and len(operation_id) <= 36 else None
    payload = op.payload if op is not None else {}
    members = {payload.get("member")} | {i.get("member") for i in payload.get("items", [])}
    if op is None or member not in members:
        raise LedgerNotFoundError("no such operation of yours")
    return MemberOperation(op.id, op.kind, OperationStatus(op.status), op.tx_hash,
                           op.block_number, op.error_code)
