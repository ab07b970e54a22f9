"""The point program's operation kinds: issue, redeem, reverse, convert, refund, cancel
signatures and sweep expired lots, each with its typed payload, batch key, gas bound and
encoder (see :mod:`ledger.outbox.kinds`).

Payloads keep the JSON the outbox has always stored (``items`` lists for the many-line kinds,
``0x`` hex for bytes), so stored operations and the operation views read the same.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from ..deployment import Contracts
from ..errors import LedgerValidationError
from ..outbox.kinds import Call, OperationKind, hex_bytes, parse_hex
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


# ---------------------------------------------------------------------- field checks


def _uint(value: Any, field: str, bits: int = 256) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
        raise LedgerValidationError(f"{field} must be an integer of 0 to 2^{bits} - 1",
                                    field=field)
    return value


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise LedgerValidationError(f"{field} must be an address", field=field)
    return value


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise LedgerValidationError(f"{field} must be text", field=field)
    return value


def _bytes(value: Any, field: str, size: int | None = None) -> bytes:
    if not isinstance(value, bytes) or (size is not None and len(value) != size):
        raise LedgerValidationError(f"{field} must be {size or 'some'} bytes", field=field)
    return value


# ---------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class IssueLinePayload:
    """One line of an issue: points to a member for a merchant's order."""

    member: str
    points: int
    order_id: str
    order_ref: bytes
    release_at: int = 0

    def __post_init__(self) -> None:
        _address(self.member, "member")
        _uint(self.points, "points", 256)
        _text(self.order_id, "order_id")
        _bytes(self.order_ref, "order_ref", 32)
        _uint(self.release_at, "release_at", 64)

    def to_json(self) -> dict[str, Any]:
        return {"member": self.member, "points": self.points, "order_id": self.order_id,
                "order_ref": hex_bytes(self.order_ref), "release_at": self.release_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IssueLinePayload:
        return cls(data["member"], data["points"], data["order_id"],
                   parse_hex(data["order_ref"], "order_ref", size=32),
                   data.get("release_at") or 0)

    def item(self) -> IssueItem:
        return IssueItem(self.member, self.points, self.order_ref, self.release_at)


@dataclass(frozen=True)
class IssuePayload:
    """``issue`` / ``issue_batch``: lines issued all or none, in the merchant's program."""

    items: tuple[IssueLinePayload, ...]

    def __post_init__(self) -> None:
        if not self.items:
            raise LedgerValidationError("an issue needs at least one line", field="items")

    def to_json(self) -> dict[str, Any]:
        return {"items": [line.to_json() for line in self.items]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> IssuePayload:
        return cls(tuple(IssueLinePayload.from_json(line) for line in data["items"]))


@dataclass(frozen=True)
class RedeemLinePayload:
    """One signed redemption, relayed by the acceptor ``merchant_id``, spending points of
    ``program`` (merchant ``program_merchant_id``'s)."""

    member: str
    points: int
    order_id: str
    order_ref: bytes
    nonce: int
    deadline: int
    signature: bytes
    merchant_id: int
    program_merchant_id: int
    program: str

    def __post_init__(self) -> None:
        _address(self.member, "member")
        _uint(self.points, "points", 256)
        _text(self.order_id, "order_id")
        _bytes(self.order_ref, "order_ref", 32)
        _uint(self.nonce, "nonce")
        _uint(self.deadline, "deadline")
        _bytes(self.signature, "signature")
        _uint(self.merchant_id, "merchant_id")
        _uint(self.program_merchant_id, "program_merchant_id")
        _address(self.program, "program")

    def to_json(self) -> dict[str, Any]:
        return {"member": self.member, "points": self.points, "order_id": self.order_id,
                "order_ref": hex_bytes(self.order_ref), "nonce": self.nonce,
                "deadline": self.deadline, "signature": hex_bytes(self.signature),
                "merchant_id": self.merchant_id,
                "program_merchant_id": self.program_merchant_id, "program": self.program}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RedeemLinePayload:
        return cls(data["member"], data["points"], data["order_id"],
                   parse_hex(data["order_ref"], "order_ref", size=32), data["nonce"],
                   data["deadline"], parse_hex(data["signature"], "signature"),
                   data["merchant_id"], data["program_merchant_id"], data["program"])

    def redemption(self) -> Redemption:
        return Redemption(self.member, self.points, self.merchant_id, self.order_ref,
                          self.nonce, self.deadline)


@dataclass(frozen=True)
class RedeemPayload:
    """``redeem`` / ``redeem_batch``: signed redemptions of one program, all or none."""

    program: str
    items: tuple[RedeemLinePayload, ...]

    def __post_init__(self) -> None:
        _address(self.program, "program")
        if not self.items:
            raise LedgerValidationError("a redemption needs at least one line", field="items")

    def to_json(self) -> dict[str, Any]:
        return {"program": self.program, "items": [line.to_json() for line in self.items]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RedeemPayload:
        return cls(data["program"],
                   tuple(RedeemLinePayload.from_json(line) for line in data["items"]))


@dataclass(frozen=True)
class ReversePayload:
    """``reverse``: take back points the merchant's order issued (a refund)."""

    order_id: str
    order_ref: bytes
    points: int

    def __post_init__(self) -> None:
        _text(self.order_id, "order_id")
        _bytes(self.order_ref, "order_ref", 32)
        _uint(self.points, "points")

    def to_json(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "order_ref": hex_bytes(self.order_ref),
                "points": self.points}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReversePayload:
        return cls(data["order_id"], parse_hex(data["order_ref"], "order_ref", size=32),
                   data["points"])


@dataclass(frozen=True)
class ConvertPayload:
    """``convert``: a member's signed conversion of ``program``'s points (merchant
    ``from_merchant_id``) into the relaying merchant ``merchant_id``'s."""

    program: str
    member: str
    points: int
    min_out: int
    order_id: str
    order_ref: bytes
    nonce: int
    deadline: int
    signature: bytes
    merchant_id: int
    from_merchant_id: int

    def __post_init__(self) -> None:
        _address(self.program, "program")
        _address(self.member, "member")
        _uint(self.points, "points")
        _uint(self.min_out, "min_out")
        _text(self.order_id, "order_id")
        _bytes(self.order_ref, "order_ref", 32)
        _uint(self.nonce, "nonce")
        _uint(self.deadline, "deadline")
        _bytes(self.signature, "signature")
        _uint(self.merchant_id, "merchant_id")
        _uint(self.from_merchant_id, "from_merchant_id")

    def to_json(self) -> dict[str, Any]:
        return {"program": self.program, "member": self.member, "points": self.points,
                "min_out": self.min_out, "order_id": self.order_id,
                "order_ref": hex_bytes(self.order_ref), "nonce": self.nonce,
                "deadline": self.deadline, "signature": hex_bytes(self.signature),
                "merchant_id": self.merchant_id, "from_merchant_id": self.from_merchant_id}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConvertPayload:
        return cls(data["program"], data["member"], data["points"], data["min_out"],
                   data["order_id"], parse_hex(data["order_ref"], "order_ref", size=32),
                   data["nonce"], data["deadline"], parse_hex(data["signature"], "signature"),
                   data["merchant_id"], data["from_merchant_id"])

    def conversion(self) -> Conversion:
        return Conversion(self.member, self.points, self.merchant_id, self.min_out,
                          self.order_ref, self.nonce, self.deadline)


@dataclass(frozen=True)
class RefundRedemptionPayload:
    """``refund_redemption``: give back what a redemption took for the acceptor
    ``merchant_id``'s order, in ``program`` (merchant ``program_merchant_id``'s)."""

    program: str
    merchant_id: int
    program_merchant_id: int
    order_id: str
    order_ref: bytes
    points: int

    def __post_init__(self) -> None:
        _address(self.program, "program")
        _uint(self.merchant_id, "merchant_id")
        _uint(self.program_merchant_id, "program_merchant_id")
        _text(self.order_id, "order_id")
        _bytes(self.order_ref, "order_ref", 32)
        _uint(self.points, "points")

    def to_json(self) -> dict[str, Any]:
        return {"program": self.program, "merchant_id": self.merchant_id,
                "program_merchant_id": self.program_merchant_id, "order_id": self.order_id,
                "order_ref": hex_bytes(self.order_ref), "points": self.points}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RefundRedemptionPayload:
        return cls(data["program"], data["merchant_id"], data["program_merchant_id"],
                   data["order_id"], parse_hex(data["order_ref"], "order_ref", size=32),
                   data["points"])


@dataclass(frozen=True)
class CancelNoncesPayload:
    """``cancel_nonces``: a member's signed cancellation of the nonces ``word_pos * 256 + b``
    for every bit ``b`` of ``mask`` in ``program``."""

    program: str
    program_merchant_id: int
    member: str
    word_pos: int
    mask: int
    deadline: int
    signature: bytes

    def __post_init__(self) -> None:
        _address(self.program, "program")
        _uint(self.program_merchant_id, "program_merchant_id")
        _address(self.member, "member")
        _uint(self.word_pos, "word_pos", 248)
        _uint(self.mask, "mask")
        _uint(self.deadline, "deadline")
        _bytes(self.signature, "signature")

    def to_json(self) -> dict[str, Any]:
        # The mask is stored as hex text: JSON numbers lose precision above 2^53.
        return {"program": self.program, "program_merchant_id": self.program_merchant_id,
                "member": self.member, "word_pos": self.word_pos, "mask": hex(self.mask),
                "deadline": self.deadline, "signature": hex_bytes(self.signature)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CancelNoncesPayload:
        return cls(data["program"], data["program_merchant_id"], data["member"],
                   data["word_pos"], int(data["mask"], 16), data["deadline"],
                   parse_hex(data["signature"], "signature"))


@dataclass(frozen=True)
class SweepPayload:
    """``sweep_expired``: the members whose lots of ``periods`` (first, last) expired in
    ``program``; queued by :class:`ledger.points.expiry.ExpirySweeper`."""

    program: str
    items: tuple[str, ...]
    periods: tuple[int, int]

    def __post_init__(self) -> None:
        _address(self.program, "program")
        for member in self.items:
            _address(member, "items")
        if len(self.periods) != 2:
            raise LedgerValidationError("periods is (first, last)", field="periods")
        for period in self.periods:
            _uint(period, "periods")

    def to_json(self) -> dict[str, Any]:
        return {"program": self.program, "items": list(self.items),
                "periods": list(self.periods)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SweepPayload:
        first, last = data["periods"]
        return cls(data["program"], tuple(data["items"]), (first, last))


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


ISSUE = IssueKind("issue")
ISSUE_BATCH = IssueKind("issue_batch")
REDEEM = RedeemKind("redeem")
REDEEM_BATCH = RedeemKind("redeem_batch")
REVERSE = ReverseKind("reverse")
CONVERT = ConvertKind("convert")
REFUND_REDEMPTION = RefundRedemptionKind("refund_redemption")
CANCEL_NONCES = CancelNoncesKind("cancel_nonces")
SWEEP_EXPIRED = SweepKind("sweep_expired")

KINDS: tuple[OperationKind[Any], ...] = (ISSUE, ISSUE_BATCH, REDEEM, REDEEM_BATCH, REVERSE,
                                         CONVERT, REFUND_REDEMPTION, CANCEL_NONCES,
                                         SWEEP_EXPIRED)
