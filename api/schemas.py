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


class RedeemRequest(Strict):
    """Relay a member's signed redemption (EIP-712 ``Redeem``; see README)."""

    member: Address
    points: Points
    order_id: OrderId
    nonce: Annotated[int, Field(strict=True, ge=0, lt=2**64)]
    deadline: UnixTime
    signature: Annotated[str, Field(pattern=r"^0x([0-9a-fA-F]{2}){65,}$")]


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


class ProgramBalanceOut(BaseModel):
    merchant_id: int
    merchant_name: str
    program: str
    symbol: str
    spendable: int
    pending: int
    lots: list[LotOut]
    next_nonce: int


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
