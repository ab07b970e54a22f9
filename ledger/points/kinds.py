"""The point program's operation kinds: issue, redeem, reverse, convert, refund, cancel
signatures and sweep expired lots, each with its typed payload, batch key, gas bound and
encoder (see :mod:`ledger.outbox.kinds`).

Payloads keep the JSON the outbox has always stored (``items`` lists for the many-line kinds,
``0x`` hex for bytes), so stored operations and the operation views read the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any

from ..deployment import Contracts
from ..outbox.kinds import (
    ADDRESS,
    UINT,
    AddressField,
    AnyBytes,
    Bytes32,
    Call,
    JsonPayload,
    Many,
    NonEmpty,
    OperationKind,
    TextField,
    Uint,
    Uint64,
    Uint256,
)
from .clients import Conversion, IssueItem, Redemption

# Gas bounds per line, above the worst case each path can take (measured: a new member's
# line costs ~52k, a pending line ~100k, a lot moving out of the account slot +22k), so the
# happy path needs no eth_estimateGas: estimating runs the batch several times over, sending
# runs it once. A transaction that fails anyway is retried through simulation.
GAS_BASE = 80_000
GAS_PER_LINE = 90_000
GAS_PER_PENDING_LINE = 140_000
# A redemption line costs ~67-75k (signature, a member's first nonce, record, one lot); the
# bound leaves room for a walk over a few lots while a 200-line batch stays far below a 30M
# block. A line that needs more (many pending orders to scan) makes the batch fail once; the
# retry estimates its gas.
GAS_PER_REDEEM_LINE = 110_000
GAS_REDEEM_BASE = 200_000
# sweepExpired: per member its account slot, per lot a PointsExpired and a Transfer log (and
# the lot's slot cleared when it is not the account's head lot). Measured: 9,118 gas per
# one-lot member in a 200-member sweep, against a floor of 8,905 (1.02x;
# tests/ledger/test_expiry_sweep.py); each further lot adds ~9k. The bound leaves room for
# ~6 lots a member (a sweeper that was down over several boundaries); a batch that needs more
# fails once and its retry estimates its gas. 200 members stay below 12.1M gas.
GAS_SWEEP_BASE = 60_000
GAS_PER_SWEPT_MEMBER = 60_000
# The kinds sent one per transaction.
GAS_REVERSE = 250_000
GAS_CONVERT = 600_000
GAS_REFUND_REDEMPTION = 300_000
GAS_CANCEL_NONCES = 120_000
# moveAccount: a signature (~6k), the move record (~22k), per lot moved a cleared slot and a
# written one (~25k; the head lot rides in the account slot), two logs. A custodial account
# with a few lots and pending orders stays well under this; one with many more fails once and
# its retry estimates its gas.
GAS_MOVE_ACCOUNT = 400_000


# ---------------------------------------------------------------------- payloads
# Their checks and JSON come from the field annotations (``JsonPayload``); the JSON keeps
# the shape the outbox has always stored.


@dataclass(frozen=True)
class IssueLinePayload(JsonPayload):
    """One line of an issue: points to a member for a merchant's order."""

    member: AddressField
    points: Uint256
    order_id: TextField
    order_ref: Bytes32
    release_at: Uint64 = 0

    def item(self) -> IssueItem:
        return IssueItem(self.member, self.points, self.order_ref, self.release_at)


@dataclass(frozen=True)
class IssuePayload(JsonPayload):
    """``issue`` / ``issue_batch``: lines issued all or none, in the merchant's program."""

    items: Annotated[tuple[IssueLinePayload, ...], NonEmpty("an issue needs at least one line")]


@dataclass(frozen=True)
class RedeemLinePayload(JsonPayload):
    """One signed redemption, relayed by the acceptor ``merchant_id``, spending points of
    ``program`` (merchant ``program_merchant_id``'s)."""

    member: AddressField
    points: Uint256
    order_id: TextField
    order_ref: Bytes32
    nonce: Uint256
    deadline: Uint256
    signature: AnyBytes
    merchant_id: Uint256
    program_merchant_id: Uint256
    program: AddressField

    def redemption(self) -> Redemption:
        return Redemption(self.member, self.points, self.merchant_id, self.order_ref,
                          self.nonce, self.deadline)


@dataclass(frozen=True)
class RedeemPayload(JsonPayload):
    """``redeem`` / ``redeem_batch``: signed redemptions of one program, all or none."""

    program: AddressField
    items: Annotated[tuple[RedeemLinePayload, ...],
                     NonEmpty("a redemption needs at least one line")]


@dataclass(frozen=True)
class ReversePayload(JsonPayload):
    """``reverse``: take back points the merchant's order issued (a refund)."""

    order_id: TextField
    order_ref: Bytes32
    points: Uint256


@dataclass(frozen=True)
class ConvertPayload(JsonPayload):
    """``convert``: a member's signed conversion of ``program``'s points (merchant
    ``from_merchant_id``) into the relaying merchant ``merchant_id``'s."""

    program: AddressField
    member: AddressField
    points: Uint256
    min_out: Uint256
    order_id: TextField
    order_ref: Bytes32
    nonce: Uint256
    deadline: Uint256
    signature: AnyBytes
    merchant_id: Uint256
    from_merchant_id: Uint256

    def conversion(self) -> Conversion:
        return Conversion(self.member, self.points, self.merchant_id, self.min_out,
                          self.order_ref, self.nonce, self.deadline)


@dataclass(frozen=True)
class RefundRedemptionPayload(JsonPayload):
    """``refund_redemption``: give back what a redemption took for the acceptor
    ``merchant_id``'s order, in ``program`` (merchant ``program_merchant_id``'s)."""

    program: AddressField
    merchant_id: Uint256
    program_merchant_id: Uint256
    order_id: TextField
    order_ref: Bytes32
    points: Uint256


@dataclass(frozen=True)
class CancelNoncesPayload(JsonPayload):
    """``cancel_nonces``: a member's signed cancellation of the nonces ``word_pos * 256 + b``
    for every bit ``b`` of ``mask`` in ``program``. The mask is stored as hex text: JSON
    numbers lose precision above 2^53."""

    program: AddressField
    program_merchant_id: Uint256
    member: AddressField
    word_pos: Annotated[int, Uint(248)]
    mask: Annotated[int, Uint(256, as_hex=True)]
    deadline: Uint256
    signature: AnyBytes


@dataclass(frozen=True)
class SweepPayload(JsonPayload):
    """``sweep_expired``: the members whose lots of ``periods`` (first, last) expired in
    ``program``; queued by :class:`ledger.points.expiry.ExpirySweeper`."""

    program: AddressField
    items: Annotated[tuple[str, ...], Many(ADDRESS)]
    periods: Annotated[tuple[int, int], Many(UINT, length=2)]


@dataclass(frozen=True)
class MoveAccountPayload(JsonPayload):
    """``move_account``: every point of the custodial ``account`` in ``program``
    (merchant ``program_merchant_id``'s) moves to the member's ``wallet``, authorised by
    the custodial key's signature (EIP-712 ``MoveAccount``), relayed by that merchant."""

    program: AddressField
    program_merchant_id: Uint256
    account: AddressField
    wallet: AddressField
    deadline: Uint256
    signature: AnyBytes


# ---------------------------------------------------------------------- kinds


class IssueKind(OperationKind[IssuePayload]):
    """Issues share one ``issueBatch`` call of the merchant's own program, ``batch_max``
    lines at most, whether queued one by one or as a batch."""

    payload_type = IssuePayload

    def lines(self, payload: IssuePayload) -> int:
        return len(payload.items)

    def batch_key(self, payload: IssuePayload, home: str | None) -> Hashable | None:
        return ("issue", home)

    def gas_bound(self, payloads: Sequence[IssuePayload]) -> int:
        lines = [line for p in payloads for line in p.items]
        pending = sum(1 for line in lines if line.release_at > 0)
        return GAS_BASE + GAS_PER_LINE * (len(lines) - pending) + GAS_PER_PENDING_LINE * pending

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[IssuePayload]) -> Call:
        assert home is not None, "an issue is sent by a merchant with a program"
        program = contracts.program(home)
        items = [line.item() for p in payloads for line in p.items]
        return Call(program.address, program.encode_issue_batch(items))

    def prefix(self, payload: IssuePayload, lines: int) -> IssuePayload:
        return replace(payload, items=payload.items[:lines])

    def describe_line(self, payload: IssuePayload, index: int) -> str:
        line = payload.items[index]
        return f"items[{index}] (member {line.member}, order {line.order_id})"


class RedeemKind(OperationKind[RedeemPayload]):
    """Redemptions relayed by one merchant share one ``redeemBatch`` call per program (a
    single line goes as ``redeem``)."""

    payload_type = RedeemPayload

    def lines(self, payload: RedeemPayload) -> int:
        return len(payload.items)

    def batch_key(self, payload: RedeemPayload, home: str | None) -> Hashable | None:
        return ("redeem", payload.program)

    def gas_bound(self, payloads: Sequence[RedeemPayload]) -> int:
        return GAS_REDEEM_BASE + GAS_PER_REDEEM_LINE * sum(len(p.items) for p in payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RedeemPayload]) -> Call:
        program = contracts.program(payloads[0].program)
        lines = [(line.redemption(), line.signature) for p in payloads for line in p.items]
        if len(lines) == 1:
            r, sig = lines[0]
            return Call(program.address, program.encode("redeem", r.as_tuple(), sig))
        return Call(program.address, program.encode_redeem_batch(lines))

    def prefix(self, payload: RedeemPayload, lines: int) -> RedeemPayload:
        return replace(payload, items=payload.items[:lines])

    def describe_line(self, payload: RedeemPayload, index: int) -> str:
        line = payload.items[index]
        return f"items[{index}] (member {line.member}, order {line.order_id})"


class ReverseKind(OperationKind[ReversePayload]):
    payload_type = ReversePayload

    def gas_bound(self, payloads: Sequence[ReversePayload]) -> int:
        return GAS_REVERSE

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[ReversePayload]) -> Call:
        assert home is not None, "a reversal is sent by a merchant with a program"
        (p,) = payloads
        program = contracts.program(home)
        return Call(program.address, program.encode("reverse", p.order_ref, p.points))


class ConvertKind(OperationKind[ConvertPayload]):
    payload_type = ConvertPayload

    def gas_bound(self, payloads: Sequence[ConvertPayload]) -> int:
        return GAS_CONVERT

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[ConvertPayload]) -> Call:
        (p,) = payloads
        program = contracts.program(p.program)
        return Call(program.address,
                    program.encode("convert", p.conversion().as_tuple(), p.signature))


class RefundRedemptionKind(OperationKind[RefundRedemptionPayload]):
    payload_type = RefundRedemptionPayload

    def gas_bound(self, payloads: Sequence[RefundRedemptionPayload]) -> int:
        return GAS_REFUND_REDEMPTION

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[RefundRedemptionPayload]) -> Call:
        (p,) = payloads
        program = contracts.program(p.program)
        return Call(program.address, program.encode("refundRedemption", p.merchant_id,
                                                    p.order_ref, p.points))


class CancelNoncesKind(OperationKind[CancelNoncesPayload]):
    payload_type = CancelNoncesPayload

    def gas_bound(self, payloads: Sequence[CancelNoncesPayload]) -> int:
        return GAS_CANCEL_NONCES

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[CancelNoncesPayload]) -> Call:
        (p,) = payloads
        program = contracts.program(p.program)
        return Call(program.address, program.encode("cancelNonces", p.member, p.word_pos,
                                                    p.mask, p.deadline, p.signature))


class SweepKind(OperationKind[SweepPayload]):
    """One ``sweepExpired`` call per operation (the sweeper already cuts them to
    ``SWEEP_BATCH`` members); its members count as lines."""

    payload_type = SweepPayload

    def lines(self, payload: SweepPayload) -> int:
        return max(1, len(payload.items))

    def gas_bound(self, payloads: Sequence[SweepPayload]) -> int:
        return GAS_SWEEP_BASE + GAS_PER_SWEPT_MEMBER * sum(len(p.items) for p in payloads)

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[SweepPayload]) -> Call:
        (p,) = payloads
        program = contracts.program(p.program)
        return Call(program.address, program.encode("sweepExpired", list(p.items)))


class MoveAccountKind(OperationKind[MoveAccountPayload]):
    payload_type = MoveAccountPayload

    def gas_bound(self, payloads: Sequence[MoveAccountPayload]) -> int:
        return GAS_MOVE_ACCOUNT

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[MoveAccountPayload]) -> Call:
        (p,) = payloads
        program = contracts.program(p.program)
        return Call(program.address, program.encode(
            "moveAccount", (p.account, p.wallet, p.deadline), p.signature))


ISSUE = IssueKind("issue")
ISSUE_BATCH = IssueKind("issue_batch")
REDEEM = RedeemKind("redeem")
REDEEM_BATCH = RedeemKind("redeem_batch")
REVERSE = ReverseKind("reverse")
CONVERT = ConvertKind("convert")
REFUND_REDEMPTION = RefundRedemptionKind("refund_redemption")
CANCEL_NONCES = CancelNoncesKind("cancel_nonces")
SWEEP_EXPIRED = SweepKind("sweep_expired")
MOVE_ACCOUNT = MoveAccountKind("move_account")

KINDS: tuple[OperationKind[Any], ...] = (ISSUE, ISSUE_BATCH, REDEEM, REDEEM_BATCH, REVERSE,
                                         CONVERT, REFUND_REDEMPTION, CANCEL_NONCES,
                                         SWEEP_EXPIRED, MOVE_ACCOUNT)
