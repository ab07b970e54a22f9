"""Clearing's operation kinds, sent by merchants through the outbox: a debtor's escrow
deposit and a creditor's confirmation of an off-chain payment (see :mod:`ledger.outbox.kinds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode

from ..deployment import Contracts
from ..outbox.kinds import AddressField, Call, JsonPayload, OperationKind, Uint256

GAS_DEPOSIT = 300_000
GAS_CONFIRM_PAYMENT = 250_000


@dataclass(frozen=True)
class DepositPayload(JsonPayload):
    """``deposit``: ``amount`` settlement tokens into the Clearing's escrow for ``period``
    (``to``: the token, which the deposit calls)."""

    to: AddressField
    period: Uint256
    amount: Uint256


@dataclass(frozen=True)
class ConfirmPaymentPayload(JsonPayload):
    """``confirm_payment``: the creditor confirms ``debtor`` paid it ``amount`` for
    ``period`` off chain (``to``: the Clearing)."""

    to: AddressField
    period: Uint256
    debtor: Uint256
    amount: Uint256


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
