"""Request and response bodies, with the examples /docs shows.

Bodies are strict: unknown fields are refused, and amounts must be JSON integers (no floats,
no strings); bounds match the contracts'.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MAX_POINTS = 2**48 - 1
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
ORDER_ID = r"^[A-Za-z0-9._:/#-]{1,64}$"

Points = Annotated[int, Field(strict=True, ge=1, le=MAX_POINTS, examples=[120])]
Address = Annotated[str, Field(pattern=ADDRESS,
                               examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"])]
OrderId = Annotated[str, Field(pattern=ORDER_ID, examples=["POS-20261124-0001"])]
UnixTime = Annotated[int, Field(strict=True, ge=0, lt=2**40, examples=[1764000000])]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IssueRequest(Strict):
    """Issue points for one of the merchant's orders, to a wallet or an alliance member id."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member_id": "member-0001", "points": 120, "order_id": "POS-20261124-0001"},
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "points": 50,
         "order_id": "WEB-778", "release_at": 1764604800}]})

    member: Address | None = None
    member_id: Annotated[str | None, Field(min_length=1, max_length=128)] = None
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
Signature = Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{2}){65,}$")]
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


class HistoryOut(BaseModel):
    member: str
    events: list[dict[str, Any]]
    next_cursor: int | None


class MerchantCreate(Strict):
    """Admit a merchant: its program is created and its credentials returned once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Starlight Cinema", "symbol": "STAR", "rate": 5}]})

    name: Annotated[str, Field(min_length=1, max_length=120)]
    symbol: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,11}$")]
    rate: Annotated[int, Field(strict=True, ge=1, description="settlement units per point")]
    expiry_periods: Annotated[int, Field(strict=True, ge=0, le=600)] = 0
    period_days: Annotated[int, Field(strict=True, ge=1, le=3660)] = 30
    max_pending_days: Annotated[int, Field(strict=True, ge=0, le=366)] = 30


class RateUpdate(Strict):
    rate: Annotated[int, Field(strict=True, ge=1)]


class MerchantOut(BaseModel):
    merchant_id: int
    name: str
    status: str
    account: str
    program: str | None
    rate: int


class MerchantCreated(MerchantOut):
    key_id: str
    secret: str = Field(description="shown once; store it now")
