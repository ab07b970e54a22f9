"""A member's balances and history, as a merchant or the operator reads them."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ledger import limits
from ledger.members import payments

from .common import MerchantId, Nonce, OrderId, RedeemPoints, Signature, UnixTime


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


# ---------------------------------------------------------------------- the member app
# (cookie session routes under /app/api and the merchant's payment requests)

class SignInChallengeOut(BaseModel):
    """What the page puts in its Sign-In with Ethereum (EIP-4361) message."""

    nonce: str
    expires_at: int
    domain: str
    uri: str
    chain_id: int
    statement: str


class SignInRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: Annotated[str, Field(min_length=1, max_length=2048)]
    signature: Signature


class SessionOut(BaseModel):
    address: str
    expires_at: int


class PaymentRequestCreate(BaseModel):
    """A request to be paid with points for one of your orders: the member opens its link
    (or scans its QR) in the member app and signs."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "CAFE-20261126-0042", "amount": 3600, "ttl_s": 900}]})

    order_id: OrderId
    amount: Annotated[int, Field(strict=True, ge=1, le=payments.MAX_AMOUNT,
                                 description="settlement units (fen)", examples=[3600])]
    ttl_s: Annotated[int, Field(strict=True, ge=payments.MIN_TTL_S, le=payments.MAX_TTL_S)] = \
        payments.DEFAULT_TTL_S


class PaymentRequestOut(BaseModel):
    id: str
    merchant_id: int
    merchant_name: str
    order_id: str
    amount: int = Field(description="settlement units (fen)")
    expires_at: int
    status: str = Field(description="open, paying, paid or expired")
    program_merchant_id: int | None
    points: int | None
    operation_id: str | None
    tx_hash: str | None
    error_code: str | None
    link: str = Field(description="path of the member app page that pays it")
    url: str | None = Field(default=None, description="the same as an absolute URL, for the "
                            "till's QR code (from the host this request was sent to)")


class PayQuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_merchant_id: MerchantId


class SignRequestOut(BaseModel):
    typed_data: dict[str, Any]
    points: int
    value: int
    nonce: int
    deadline: int
    order_id: str
    min_out: int
    points_spent: int


class PayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program_merchant_id: MerchantId
    points: RedeemPoints
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class ConvertQuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_merchant_id: MerchantId
    to_merchant_id: MerchantId
    points: RedeemPoints


class MemberConvertRequest(ConvertQuoteRequest):
    min_out: Annotated[int, Field(strict=True, ge=1, le=limits.MAX_POINTS)]
    order_id: OrderId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class MemberOperationOut(BaseModel):
    id: str
    kind: str
    status: str
    tx_hash: str | None
    block_number: int | None
    error_code: str | None


class ProgramValueOut(BaseModel):
    merchant_id: int
    merchant_name: str
    symbol: str
    rate: int = Field(description="settlement units per point")
    balance: int
    spendable: int
    pending: int
    expired: int
    value: int = Field(description="spendable x rate, settlement units")
    releases: list[ReleaseOut]
    lots: list[LotOut]


class MyBalancesOut(BaseModel):
    member: str
    settlement_unit: str
    programs: list[ProgramValueOut]
    total_value: int
    as_of_block: int


class ErasedOut(BaseModel):
    sessions: int
    wallet_links: int
    payments_forgotten: int


# ---------------------------------------------------------------------- coupons at the till


class CouponPresentationOut(BaseModel):
    """A coupon shown at a till as a one-time code (``code``: only in the answer that makes
    it; the QR carries it) and where its redemption is."""

    code: str | None
    coupon_id: str
    status: str = Field(description="shown, scanned, redeeming, used, failed or expired")
    expires_at: int
    merchant_id: int | None
    merchant_name: str | None
    order_id: str | None
    order_amount: int | None
    discount: int | None
    operation_id: str | None
    tx_hash: str | None
    error_code: str | None


class CouponScanRequest(BaseModel):
    """The order the scanned coupon code is for (settlement units)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "POS-20261126-0042", "order_amount": 12800}]})

    order_id: OrderId
    order_amount: Annotated[int, Field(strict=True, ge=1, le=2**64 - 1)]


class CouponRedeemSigned(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class VoucherClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=400)]


class ItemCodeIn(BaseModel):
    """A product label's code as scanned (a GS1 Digital Link URI, with ``?s=`` to claim)."""

    model_config = ConfigDict(extra="forbid")

    code: Annotated[str, Field(min_length=1, max_length=300)]


class ItemClaimSigned(ItemCodeIn):
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class ConsentQuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchant_id: MerchantId
    kind: Annotated[str, Field(pattern=r"^(birth_month|phone|history)$")]
    grant: bool


class ConsentSigned(ConsentQuoteIn):
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    birth_month: Annotated[int | None, Field(strict=True, ge=1, le=12)] = None
    phone: Annotated[str | None, Field(pattern=r"^\+?[0-9 -]{5,20}$")] = None


class MemberProfileOut(BaseModel):
    """The profile fields the member granted you (each under a live on-chain consent of its
    kind; a field not granted is absent)."""

    member: str
    birth_month: int | None = None
    phone: str | None = None


class ConsentRewardIn(BaseModel):
    """Points of your program for a member's grant of this consent kind (0: none); paid once
    per member and kind when the grant is on chain."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"points": 200}]})

    points: Annotated[int, Field(strict=True, ge=0, le=1_000_000)]


class ConsentRewardOut(BaseModel):
    kind: str
    points: int


# ---------------------------------------------------------------------- claim (issue 12)


class LinkCodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"member_id": "member-0001"}]})
    member_id: Annotated[str, Field(min_length=1, max_length=limits.MAX_MEMBER_ID_LENGTH,
                                    pattern=limits.MEMBER_ID_PATTERN,
                                    description="the alliance member id at your counter")]


class LinkCodeOut(BaseModel):
    code: str = Field(description="the one-time code to hand the member (shown once)")
    expires_at: int = Field(description="unix time the code stops working")


class ClaimRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: Annotated[str, Field(min_length=1, max_length=40)]


class ClaimMoveOut(BaseModel):
    merchant_id: int
    program: str
    operation_id: str
    status: str
    tx_hash: str | None
    error_code: str | None
    asset: str = Field(default="points", description="``points``: one program's (the "
                       "merchant's, at ``program``); ``coupons``: every coupon held, at the "
                       "coupon book ``program``, relayed by the merchant")


class ClaimOut(BaseModel):
    """``state``: ``none``, ``moving``, ``done`` or ``failed`` (retry sends failed moves
    again)."""

    wallet: str
    state: str
    moves: list[ClaimMoveOut]
