"""Bodies and answers of the coupon routes: campaigns, grants, vouchers, validate, redeem,
rollback, a member's coupons, coupon metadata. Coupon ids are decimal strings (they pass
2^53, past what a JSON number carries exactly)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger import limits

from .common import Address, MerchantId, Nonce, OrderId, Signature, Strict, UnixTime

CouponId = Annotated[str, Field(pattern=r"^[1-9][0-9]{0,77}$",
                                examples=["4722366482869645213697"])]
# Campaign ids count up from 1 on chain; the store keeps them as signed 64-bit integers.
CampaignId = Annotated[int, Field(strict=True, ge=1, le=2**63 - 1, examples=[1])]
OrderAmount = Annotated[int, Field(strict=True, ge=1, le=2**64 - 1, examples=[12_000])]
Count = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]
VoucherCode = Annotated[str, Field(min_length=1, max_length=400, pattern=r"^[A-Za-z0-9_-]+$")]


class CampaignCreateRequest(Strict):
    """A campaign of the calling merchant. ``value``: settlement units off (fixed_off), basis
    points (percent_off, <= 10000) or a gift's worth (gift)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "fixed_off", "value": 1000, "budget": 1_000_000, "min_spend": 5000,
         "valid_days": 30, "all_merchants": True}]})

    kind: Annotated[str, Field(pattern=r"^(fixed_off|percent_off|gift)$",
                               examples=["fixed_off"])]
    value: Annotated[int, Field(strict=True, ge=1, le=2**80 - 1)]
    budget: Annotated[int, Field(strict=True, ge=1, le=2**128 - 1)]
    max_discount: Annotated[int, Field(strict=True, ge=0, le=2**80 - 1)] = 0
    min_spend: Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)] = 0
    starts_at: UnixTime = 0
    ends_at: UnixTime = 0
    valid_days: Annotated[int, Field(strict=True, ge=0, le=3660)] = 0
    supply_cap: Count = 0
    per_member_cap: Count = 0
    transferable: bool = True
    stackable: bool = False
    all_merchants: bool = False
    acceptors: Annotated[list[MerchantId], Field(max_length=64)] = []


class GrantRequest(Strict):
    """Coupons of one of your campaigns, one per member, in one transaction."""

    campaign_id: CampaignId
    members: Annotated[list[Address], Field(min_length=1, max_length=limits.MAX_BATCH_ITEMS)]


class VoucherCreateRequest(Strict):
    campaign_id: CampaignId
    expires_at: UnixTime


class VoucherOut(BaseModel):
    campaign_id: int
    voucher_id: str
    expires_at: int
    code: str


class VoucherClaimRequest(Strict):
    """Claim a voucher of your campaign for a member's wallet (the coupon is minted)."""

    code: VoucherCode
    to: Address


class VoucherCancelRequest(Strict):
    code: VoucherCode


class ValidateRequest(Strict):
    coupon_id: CouponId
    order_id: OrderId
    order_amount: OrderAmount


class ValidateOut(BaseModel):
    coupon_id: str
    applies: bool
    reason: str | None
    discount: int


class CouponRedeemRequest(Strict):
    """Relay a holder's signed redemption (EIP-712 ``RedeemCoupon`` in the coupon book's
    domain) of a coupon for one of your orders."""

    coupon_id: CouponId
    order_id: OrderId
    order_amount: OrderAmount
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class RollbackRequest(Strict):
    coupon_id: CouponId
    order_id: OrderId


class CampaignOut(BaseModel):
    campaign_id: int
    issuer: int
    paused: bool
    kind: str
    value: int
    budget: int
    max_discount: int
    min_spend: int
    starts_at: int
    ends_at: int
    valid_days: int
    supply_cap: int
    per_member_cap: int
    transferable: bool
    stackable: bool
    all_merchants: bool
    acceptors: list[int]


class CampaignsOut(BaseModel):
    campaigns: list[CampaignOut]


class CampaignStatsOut(BaseModel):
    campaign_id: int
    granted: int
    claimed: int
    redeemed: int
    rolled_back: int
    revoked: int = 0
    budget: int
    budget_used: int
    budget_left: int


class MemberCouponOut(BaseModel):
    coupon_id: str
    campaign_id: int
    status: Literal["valid", "used", "expired"]
    granted_at: int
    expires_at: int | None
    used_at: int | None
    used_at_merchant: int | None
    discount: int | None
    kind: str | None
    value: int | None
    issuer: int | None


class MemberCouponsOut(BaseModel):
    coupons: list[MemberCouponOut]
