"""Clearing's operation kinds, sent by merchants through the outbox: a debtor's escrow
deposit and a creditor's confirmation of an off-chain payment (see :mod:`ledger.outbox.kinds`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode

from ..deployment import Contracts
from ..errors import LedgerValidationError
from ..outbox.kinds import Call, OperationKind

GAS_DEPOSIT = 300_000
GAS_CONFIRM_PAYMENT = 250_000


def _uint(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**256:
        raise LedgerValidationError(f"{field} must be an integer of 0 to 2^256 - 1",
                                    field=field)
    return value


def _address(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) != 42 or not value.startswith("0x"):
        raise LedgerValidationError(f"{field} must be an address", field=field)
    return value


@dataclass(frozen=True)
class DepositPayload:
    """``deposit``: ``amount`` settlement tokens into the Clearing's escrow for ``period``
    (``to``: the token, which the deposit calls)."""

    to: str
    period: int
    amount: int

    def __post_init__(self) -> None:
        _address(self.to, "to")
        _uint(self.period, "period")
        _uint(self.amount, "amount")

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "period": self.period, "amount": self.amount}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DepositPayload:
        return cls(data["to"], data["period"], data["amount"])


@dataclass(frozen=True)
class ConfirmPaymentPayload:
    """``confirm_payment``: the creditor confirms ``debtor`` paid it ``amount`` for
    ``period`` off chain (``to``: the Clearing)."""

    to: str
    period: int
    debtor: int
    amount: int

    def __post_init__(self) -> None:
        _address(self.to, "to")
        _uint(self.period, "period")
        _uint(self.debtor, "debtor")
        _uint(self.amount, "amount")

    def to_json(self) -> dict[str, Any]:
        return {"to": self.to, "period": self.period, "debtor": self.debtor,
                "amount": self.amount}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ConfirmPaymentPayload:
        return cls(data["to"], data["period"], data["debtor"], data["amount"])


class DepositKind(OperationKind[DepositPayload]):
    payload_type = DepositPayload

    def gas_bound(self, payloads: Sequence[DepositPayload]) -> int:
        return GAS_DEPOSIT

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[DepositPayload]) -> Call:
        (p,) = payloads
        token = contracts.settlement_token
        data = token.encode("transferAndCall(address,uint256,bytes)", contracts.clearing.address,
                            p.amount, abi_encode(["uint256"], [p.period]))
        return Call(token.address, data)


class ConfirmPaymentKind(OperationKind[ConfirmPaymentPayload]):
    payload_type = ConfirmPaymentPayload

    def gas_bound(self, payloads: Sequence[ConfirmPaymentPayload]) -> int:
        return GAS_CONFIRM_PAYMENT

    def encode(self, contracts: Contracts, home: str | None,
               payloads: Sequence[ConfirmPaymentPayload]) -> Call:
        (p,) = payloads
        clearing = contracts.clearing
        return Call(clearing.address, clearing.encode("confirmOffChainPayment", p.period,
                                                      p.debtor, p.amount))


DEPOSIT = DepositKind("deposit")
CONFIRM_PAYMENT = ConfirmPaymentKind("confirm_payment")

KINDS: tuple[OperationKind[Any], ...] = (DEPOSIT, CONFIRM_PAYMENT)
