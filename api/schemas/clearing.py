"""Bodies of the clearing: deposits, off-chain payments, caps, acceptance, minting, sweeps,
and statements."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ledger import limits

from .common import Address, Amount, MerchantId, Strict


class DepositRequest(Strict):
    """Pay settlement tokens into escrow for a closed period you owe in."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"period": 1, "amount": 12_000}]})

    period: MerchantId
    amount: Amount


class OffChainPaymentRequest(Strict):
    """Confirm that a debtor paid you off chain (bank transfer) for a closed period."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"period": 1, "debtor": 1, "amount": 5_000}]})

    period: MerchantId
    debtor: MerchantId
    amount: Amount


class CapsUpdate(Strict):
    """A merchant's caps in settlement units; 0 lifts a cap."""

    liability_cap: Annotated[int, Field(strict=True, ge=0, lt=limits.MAX_CAP + 1)]
    foreign_cap: Annotated[int, Field(strict=True, ge=0, lt=limits.MAX_CAP + 1)]


class AcceptanceUpdate(Strict):
    """Whether ``acceptor`` takes ``program_merchant``'s points (default: yes)."""

    acceptor: MerchantId
    program_merchant: MerchantId
    accepted: Annotated[bool, Field(strict=True)]


class MintRequest(Strict):
    """Mint settlement tokens to a merchant against cash the operator received."""

    merchant_id: MerchantId
    amount: Amount


class StatementOut(BaseModel):
    hash: str
    anchored_hash: str | None
    matches_anchor: bool
    statement: dict[str, Any]
    as_of_block: int = Field(
        description="the block the statement reflects (read model and views alike)")


class SweepRequest(Strict):
    to: Address


class OperatorOffChainPayment(Strict):
    """The operator records an off-chain payment to a suspended creditor."""

    debtor: MerchantId
    creditor: MerchantId
    amount: Amount
