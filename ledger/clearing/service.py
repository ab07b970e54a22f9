"""Cross-merchant clearing: positions, period close, settlement, caps and statements.

Operator actions (close, settle, sweep, statement anchors, off-chain confirmations for a
suspended creditor) are sent by the operator's key and wait for their receipt; caps and
acceptance are admin actions through the timelock; settlement tokens are minted by the
minter's key. Settlement is pulled: each creditor claims its pro-rata share of what debtors
paid, to its payout address; ``settle`` claims for every creditor of a period, in pages.
Merchant actions (escrow deposits, confirming an off-chain payment) go through the outbox
like every merchant mutation. Statements are rebuilt from the chain's logs alone: the
Clearing's ``Cleared`` events give every counterparty's value, the programs' events in the
same transactions give the underlying redemptions and conversions.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.address import is_hex_address, to_checksum_address
from sqlalchemy.orm import Session

from .. import limits
from ..alliance import Alliance
from ..errors import LedgerNotFoundError, LedgerValidationError
from ..limits import MAX_CAP, MAX_REDEEM_POINTS
from ..merchants.service import govern, require_merchant
from ..outbox import repos as outbox
from ..outbox.views import OperationView, operation_view
from ..points.service import order_ref
from ..types import Fen, MerchantId
from .kinds import CONFIRM_PAYMENT, DEPOSIT, ConfirmPaymentPayload, DepositPayload

KIND_NAMES = {1: "redemption", 2: "conversion", 3: "refund", 4: "coupon", 5: "coupon_rollback"}
# Creditors paid per claim transaction by ``settle`` (a claim costs ~40k gas per creditor).
CLAIM_PAGE = 200


@dataclass(frozen=True)
class PositionView:
    """A merchant's net in a period (positive: owed to it) and, for a closed period, what it
    still has to pay or receive."""

    merchant_id: MerchantId
    period: int
    net: Fen
    foreign_accepted: Fen
    paid: Fen
    received: Fen
    outstanding: Fen


@dataclass(frozen=True)
class PeriodView:
    """A clearing period (``closed_at`` None: the current, open one)."""

    period: int
    closed_at: int | None
    merchants: int
    total_owed: Fen
    total_received: Fen
    escrow: Fen
    positions: list[PositionView]
    total_paid: Fen = Fen(0)


_int = limits.value


def _merchant_ids(alliance: Alliance) -> list[int]:
    return list(range(1, alliance.contracts.registry.merchant_count() + 1))


# ---------------------------------------------------------------------- reads


def current_period(alliance: Alliance) -> int:
    return alliance.contracts.clearing.current_period()


def period_view(alliance: Alliance, period: int | None = None) -> PeriodView:
    """Every merchant's position in ``period`` (default: the open one)."""
    clearing = alliance.contracts.clearing
    cur = clearing.current_period()
    p = cur if period is None else _int(period, "period", low=1, high=cur)
    info = clearing.period(p)
    closed = info.closed_at != 0
    ids = _merchant_ids(alliance) if not closed else list(range(1, info.merchants + 1))
    out = [_position(alliance, p, mid, closed) for mid in ids]
    return PeriodView(p, info.closed_at or None, len(ids), Fen(info.total_owed),
                      Fen(info.total_received), Fen(info.escrow), out, Fen(info.total_paid))


def position(alliance: Alliance, *, merchant_id: MerchantId, period: int | None = None
             ) -> PositionView:
    """One merchant's position in ``period`` (default: the open one)."""
    clearing = alliance.contracts.clearing
    cur = clearing.current_period()
    p = cur if period is None else _int(period, "period", low=1, high=cur)
    info = clearing.period(p)
    closed = info.closed_at != 0
    count = info.merchants if closed else alliance.contracts.registry.merchant_count()
    if not 1 <= merchant_id <= count:
        raise LedgerNotFoundError(f"merchant {merchant_id} has no position in period {p}")
    return _position(alliance, p, merchant_id, closed)


def _position(alliance: Alliance, p: int, mid: int, closed: bool) -> PositionView:
    clearing = alliance.contracts.clearing
    net, accepted = clearing.position_of(p, mid)
    paid, received = clearing.settlement_of(p, mid) if closed else (0, 0)
    outstanding = clearing.outstanding(p, mid) if closed else net
    return PositionView(MerchantId(mid), p, Fen(net), Fen(accepted), Fen(paid), Fen(received),
                        Fen(outstanding))


# ---------------------------------------------------------------------- operator actions


def close_period(alliance: Alliance) -> PeriodView:
    """Close the open period on chain; give the closed period with every merchant's net."""
    clearing = alliance.contracts.clearing
    p = clearing.current_period()
    alliance.operator.transact(to=clearing.address, data=clearing.encode("closePeriod"))
    return period_view(alliance, p)


def settle(alliance: Alliance, *, period: int, page: int = CLAIM_PAGE) -> PeriodView:
    """Pay every creditor of a closed period what it can claim from escrow now (its net pro
    rata of what debtors paid, to its payout address), ``page`` creditors per transaction.
    Creditors with nothing to claim are skipped. The chain says why when nothing can be paid
    (``ClearingPeriodNotClosed``, ``ClearingNothingToClaim``: found by the gas estimate,
    before anything is sent)."""
    clearing = alliance.contracts.clearing
    p = _int(period, "period", low=1)
    info = clearing.period(p)
    ids = [m for m in range(1, info.merchants + 1) if clearing.claimable(p, m) > 0] or [1]
    for i in range(0, len(ids), page):
        alliance.operator.transact(to=clearing.address,
                                   data=clearing.encode("claim", p, ids[i:i + page]))
    return period_view(alliance, p)


def sweep_stray(alliance: Alliance, *, to: str) -> int:
    """Send the settlement tokens the clearing holds beyond escrow (sent with a plain
    transfer) to ``to``; give the amount. Escrowed tokens cannot be swept."""
    if not isinstance(to, str) or not is_hex_address(to):
        raise LedgerValidationError("to must be an address", field="to")
    clearing = alliance.contracts.clearing
    stray = alliance.contracts.settlement_token.balance_of(clearing.address) - clearing.escrowed()
    if stray <= 0:
        raise LedgerValidationError("the clearing holds no stray settlement tokens", field="to")
    alliance.operator.transact(to=clearing.address,
                               data=clearing.encode("sweep", to_checksum_address(to)))
    return stray


def confirm_for_suspended(alliance: Alliance, *, period: int, debtor: MerchantId,
                          creditor: MerchantId, amount: int) -> PositionView:
    """Record, as the operator, that ``debtor`` paid a suspended ``creditor`` off chain."""
    clearing = alliance.contracts.clearing
    alliance.operator.transact(to=clearing.address, data=clearing.encode(
        "confirmOffChainPaymentFor", _int(period, "period", low=1),
        _int(debtor, "debtor", low=1), _int(creditor, "creditor", low=1),
        _int(amount, "amount", low=1)))
    return position(alliance, merchant_id=creditor, period=period)


def set_caps(alliance: Alliance, *, merchant_id: MerchantId, liability_cap: int,
             foreign_cap: int) -> bool:
    """Set a merchant's liability cap and per-period foreign cap (settlement units; 0: none),
    through the timelock. True once in effect, False while pending."""
    reg = alliance.contracts.registry
    mid = _int(merchant_id, "merchant_id", low=1)
    return govern(alliance, kind="set_caps", target=reg.address, data=reg.encode(
        "setCaps", mid, _int(liability_cap, "liability_cap", high=MAX_CAP),
        _int(foreign_cap, "foreign_cap", high=MAX_CAP)),
        summary=f"caps of merchant {mid}: liability {liability_cap}, foreign {foreign_cap}",
        details={"merchant_id": mid}) is None


def set_acceptance(alliance: Alliance, *, acceptor: MerchantId, program_merchant: MerchantId,
                   accepted: bool) -> bool:
    """Whether ``acceptor`` takes ``program_merchant``'s points, through the timelock. True
    once in effect, False while pending."""
    if not isinstance(accepted, bool):
        raise LedgerValidationError("accepted must be true or false", field="accepted")
    reg = alliance.contracts.registry
    acc = _int(acceptor, "acceptor", low=1)
    prog = _int(program_merchant, "program_merchant", low=1)
    return govern(alliance, kind="set_acceptance", target=reg.address, data=reg.encode(
        "setAcceptance", acc, prog, accepted),
        summary=f"merchant {acc} {'accepts' if accepted else 'refuses'} the points of "
                f"merchant {prog}") is None


def mint_settlement_tokens(alliance: Alliance, *, merchant_id: MerchantId, amount: int) -> int:
    """Mint settlement tokens (the minter's key) to a merchant's account against cash
    received; give its new token balance."""
    account = alliance.contracts.registry.merchant(_int(merchant_id, "merchant_id", low=1)).account
    token = alliance.contracts.settlement_token
    alliance.minter.transact(to=token.address, data=token.encode(
        "mint", account, _int(amount, "amount", low=1)))
    return token.balance_of(account)


def operator_refund(alliance: Alliance, *, program_merchant: MerchantId, acceptor: MerchantId,
                    order_id: str, points: int) -> None:
    """Refund, as the operator, what a redemption of ``program_merchant``'s points took for
    ``acceptor``'s order ``order_id`` (for an acceptor suspended since)."""
    record = alliance.contracts.registry.merchant(_int(program_merchant, "program_merchant",
                                                       low=1))
    if record.program is None:
        raise LedgerNotFoundError(f"merchant {program_merchant} has no point program")
    program = alliance.contracts.program(record.program)
    alliance.operator.transact(to=program.address, data=program.encode(
        "refundRedemption", _int(acceptor, "acceptor", low=1),
        order_ref(limits.order_id(order_id)),
        _int(points, "points", low=1, high=MAX_REDEEM_POINTS)))


# ---------------------------------------------------------------------- merchant requests


def request_deposit(alliance: Alliance, session: Session, *, merchant_id: MerchantId, period: int,
                    amount: int) -> OperationView:
    """Queue a debtor's escrow deposit of settlement tokens for a closed period."""
    merchant = require_merchant(session, merchant_id)
    payload = DepositPayload(alliance.contracts.settlement_token.address,
                             _int(period, "period", low=1), _int(amount, "amount", low=1))
    op = outbox.enqueue(session, kind=DEPOSIT, payload=payload, merchant_id=merchant_id,
                        signer=merchant.account_address)
    return operation_view(op)


def request_confirm_payment(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                            period: int, debtor: MerchantId, amount: int) -> OperationView:
    """Queue a creditor's confirmation that ``debtor`` paid it ``amount`` off chain."""
    merchant = require_merchant(session, merchant_id)
    if debtor == merchant_id:
        raise LedgerValidationError("a merchant cannot pay itself", field="debtor")
    payload = ConfirmPaymentPayload(alliance.contracts.clearing.address,
                                    _int(period, "period", low=1),
                                    _int(debtor, "debtor", low=1), _int(amount, "amount", low=1))
    op = outbox.enqueue(session, kind=CONFIRM_PAYMENT, payload=payload, merchant_id=merchant_id,
                        signer=merchant.account_address)
    return operation_view(op)

