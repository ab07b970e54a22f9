"""Request and response bodies, with the examples /docs shows.

Bodies are strict: unknown fields are refused, and amounts must be JSON integers (no floats,
no strings); bounds match the contracts'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

MAX_POINTS = 2**48 - 1
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
ORDER_ID = r"^[A-Za-z0-9._:/#-]{1,64}$"

Points = Annotated[int, Field(strict=True, ge=1, le=MAX_POINTS, examples=[120])]
Address = Annotated[str, Field(pattern=ADDRESS,
                               examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"])]
OrderId = Annotated[str, Field(pattern=ORDER_ID, examples=["POS-20261124-0001"])]
# Printable text only: no control characters (they end up in logs and in exports).
MemberId = Annotated[str, Field(min_length=1, max_length=128,
                                pattern=r"^[^\x00-\x1f\x7f-\x9f]{1,128}$",
                                examples=["member-0001"])]
UnixTime = Annotated[int, Field(strict=True, ge=0, lt=2**40, examples=[1764000000])]


# ---------------------------------------------------------------------- path and query
# Every path and query parameter is bounded here, so nothing unbounded reaches the database
# (SQLite integers are 64-bit) or the ABI encoder. tests/api check the OpenAPI document:
# an integer parameter without both bounds fails the suite.
MAX_ID = 2**48 - 1
AddressPath = Annotated[str, Path(pattern=ADDRESS, examples=[
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"])]
MerchantIdPath = Annotated[int, Path(ge=1, le=MAX_ID, examples=[2])]
PeriodPath = Annotated[int, Path(ge=1, le=MAX_ID, examples=[1])]
PeriodQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Cursor = Annotated[int | None, Query(ge=0, le=2**63 - 1,
                                     description="``next_cursor`` of the previous page")]
OperationIdPath = Annotated[str, Path(min_length=1, max_length=64,
                                      pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueRequest(Strict):
    """Issue points for one of the merchant's orders, to a wallet or an alliance member id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        # Exactly one of member (a wallet) and member_id (null counts as absent).
        "oneOf": [{"required": ["member"], "properties": {"member": {"type": "string"}}},
                  {"required": ["member_id"],
                   "properties": {"member_id": {"type": "string"}}}],
        "examples": [
        {"member_id": "member-0001", "points": 120, "order_id": "POS-20261124-0001"},
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "points": 50,
         "order_id": "WEB-778", "release_at": 1764604800}]})

    member: Address | None = Field(default=None, description="the member's wallet (or "
                                   "``member_id``, not both)")
    member_id: MemberId | None = Field(default=None, description="the alliance member id (or "
                                       "``member``, not both); never put on chain")
    points: Points
    order_id: OrderId
    release_at: UnixTime | None = Field(
        default=None, description="keep the points pending (refund window) until this time")


class IssueBatchRequest(Strict):
    """Many issue lines in one operation: they land in one transaction, all or none."""

    items: Annotated[list[IssueRequest], Field(min_length=1, max_length=1000)]


class ReverseRequest(Strict):
    """Take back points an order issued (a refund)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "POS-20261124-0001", "points": 60}]})

    order_id: OrderId
    points: Points


MAX_REDEEM_POINTS = 2**24 - 1
RedeemPoints = Annotated[int, Field(strict=True, ge=1, le=MAX_REDEEM_POINTS, examples=[30])]
Nonce = Annotated[int, Field(strict=True, ge=0, lt=2**64)]
# 65 bytes for a wallet's ECDSA signature; longer ones (a contract wallet's ERC-1271) up to 2 KiB.
Signature = Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{2}){65,2048}$")]
MerchantId = Annotated[int, Field(strict=True, ge=1, lt=2**48, examples=[2])]
Amount = Annotated[int, Field(strict=True, ge=1, le=2**100, examples=[12_000])]


class RedeemRequest(Strict):
    """Relay a member's signed redemption (EIP-712 ``Redeem``; see README). With
    ``program_merchant_id`` the member spends another merchant's points here; the value
    clears between the two merchants in the same transaction."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "points": 30,
         "order_id": "CAFE-0001", "nonce": 0, "deadline": 1764000600,
         "signature": "0x" + "ab" * 65, "program_merchant_id": 1}]})

    member: Address
    points: RedeemPoints
    order_id: OrderId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature
    program_merchant_id: MerchantId | None = Field(
        default=None, description="whose points (default: yours)")


class RedeemBatchRequest(Strict):
    """Many signed redemptions relayed at once: one operation per program they spend."""

    items: Annotated[list[RedeemRequest], Field(min_length=1, max_length=1000)]


class ConvertRequest(Strict):
    """Relay a member's signed conversion (EIP-712 ``Convert``) of another merchant's points
    into yours: you take on the liability, that merchant owes you the value."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "from_merchant_id": 1,
         "points": 100, "min_out": 40, "order_id": "CONV-0001", "nonce": 1,
         "deadline": 1764000600, "signature": "0x" + "ab" * 65}]})

    member: Address
    from_merchant_id: MerchantId
    points: RedeemPoints
    min_out: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)]
    order_id: OrderId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class CancelSignaturesRequest(Strict):
    """Relay a member's signed ``CancelNonces`` (EIP-712; see README): nonces
    ``word_pos * 256 + b`` for each bit ``b`` set in ``mask`` can never be used, so signatures
    carrying them can never land. In ``program_merchant_id``'s program (default: yours)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "word_pos": 0,
         "mask": "0x6", "deadline": 1764000600, "signature": "0x" + "ab" * 65}]})

    member: Address
    word_pos: Annotated[int, Field(strict=True, ge=0, lt=2**248)]
    mask: Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{1,64}$",
                               description="bits of the nonces to cancel, as 0x-hex")]
    deadline: UnixTime
    signature: Signature
    program_merchant_id: MerchantId | None = Field(
        default=None, description="whose program the nonces belong to (default: yours)")


class RefundRedemptionRequest(Strict):
    """Give back points a redemption took for one of your orders (within the refund window);
    a cleared redemption's value moves back."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "CAFE-0001", "points": 10, "program_merchant_id": 1}]})

    order_id: OrderId
    points: RedeemPoints
    program_merchant_id: MerchantId | None = None


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

    liability_cap: Annotated[int, Field(strict=True, ge=0, lt=2**112)]
    foreign_cap: Annotated[int, Field(strict=True, ge=0, lt=2**112)]


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


class OperationsOut(BaseModel):
    operations: list[OperationOut]


class OperationOut(BaseModel):
    """An operation's progress: queued → submitted → confirmed, or failed with a reason."""

    id: str
    kind: str
    status: str
    merchant_id: int
    items: int
    tx_hash: str | None
    block_number: int | None
    error_code: str | None
    error_message: str | None
    created_at: datetime
    updated_at: datetime


class LotOut(BaseModel):
    period: int
    points: int
    expires_at: int | None = Field(description="unix time the lot expires (null: never)")


class ReleaseOut(BaseModel):
    order_ref: str | None
    points: int
    release_at: int = Field(description="unix time the pending points become spendable")


class ProgramBalanceOut(BaseModel):
    """``balance`` (ERC-20 ``balanceOf``, what the Transfer logs say) = ``spendable`` +
    ``pending`` + ``expired`` (expired, not swept yet)."""

    merchant_id: int
    merchant_name: str
    program: str
    symbol: str
    balance: int
    spendable: int
    pending: int
    expired: int
    releases: list[ReleaseOut]
    lots: list[LotOut]
    next_nonce: int = Field(description="an unused signature nonce (nonces are unordered)")


class BalancesOut(BaseModel):
    member: str
    programs: list[ProgramBalanceOut]
    as_of_block: int = Field(description="the block every program's views were read at")


class HistoryOut(BaseModel):
    member: str
    events: list[dict[str, Any]]
    next_cursor: int | None
    as_of_block: int | None = Field(
        default=None, description="the block the indexed history reflects (None: not yet "
                                  "indexed)")


# The registry keeps a rate in 24 bits (AllianceRegistry.setRate refuses more).
MAX_RATE = 2**24 - 1
Rate = Annotated[int, Field(strict=True, ge=1, le=MAX_RATE,
                            description="settlement units per point", examples=[5])]


class MerchantCreate(Strict):
    """Admit a merchant: its program is created and its credentials returned once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Starlight Cinema", "symbol": "STAR", "rate": 5}]})

    name: Annotated[str, Field(min_length=1, max_length=120)]
    symbol: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,11}$")]
    rate: Rate
    expiry_periods: Annotated[int, Field(strict=True, ge=0, le=600)] = 0
    period_days: Annotated[int, Field(strict=True, ge=1, le=3660)] = 30
    max_pending_days: Annotated[int, Field(strict=True, ge=0, le=366)] = 30


class RateUpdate(Strict):
    rate: Rate


class MerchantOut(BaseModel):
    merchant_id: int
    name: str
    status: str
    account: str
    program: str | None
    rate: int
    payout: str | None = None


class MerchantCreated(MerchantOut):
    key_id: str
    secret: str = Field(description="shown once; store it now")


# ---------------------------------------------------------------------- trust model (admin
# actions through the timelock, payout addresses, settlement claims and sweeps)


class MerchantAdmission(MerchantCreate):
    """Admit a merchant (program, rate and payout address in one admin action). ``payout``:
    where the clearing pays it (default: a new address the service keeps)."""

    payout: Address | None = None


class PayoutUpdate(Strict):
    payout: Address


class AdminActionOut(BaseModel):
    """An admin action scheduled in the timelock, executable from ``ready_at`` (unix time)."""

    id: str
    kind: str
    summary: str
    ready_at: int


class SweepRequest(Strict):
    to: Address


class OperatorOffChainPayment(Strict):
    """The operator records an off-chain payment to a suspended creditor."""

    debtor: MerchantId
    creditor: MerchantId
    amount: Amount
