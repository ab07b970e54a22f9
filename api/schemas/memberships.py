"""Bodies and answers of the membership routes: cards (issue, earn with points, renew, a
member's cards), tiers (set, list, a member's tier), tier-locked campaigns and their grants,
and a points issue raised by the member's tier. Card ids are decimal strings (past 2^53)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from .common import Address, OrderId, Points, Strict
from .points import Spend

Tier = Annotated[int, Field(strict=True, ge=1, le=255, examples=[1])]
Days = Annotated[int, Field(strict=True, ge=1, le=3660, examples=[365])]
PaymentRef = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$",
                                  examples=["till-7/receipt-000123"])]


class CardIssueRequest(Strict):
    """Your card for a member, paid off chain (``payment_ref``: your payment's reference,
    usable once)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x5B38Da6a701c568545dCfcB03FcB875f56beddC4", "tier": 1, "days": 365,
         "payment_ref": "till-7/receipt-000123"}]})

    member: Address
    tier: Tier = 1
    days: Days = 365
    payment_ref: PaymentRef


class CardEarnRequest(Strict):
    """Your card for a member, paid with points: the member's signed redemption of at least
    ``price_points`` at you for order ``points_order_id`` must be confirmed first."""

    member: Address
    tier: Tier = 1
    days: Days = 365
    points_order_id: OrderId
    price_points: Points


class CardRenewRequest(Strict):
    """``days`` more for a member's card of yours (from its expiry, or from now if past)."""

    member: Address
    days: Days = 365
    payment_ref: PaymentRef
    tier: Tier | None = None


class CardOut(BaseModel):
    token_id: str
    merchant_id: int
    member: str
    tier: int
    expires_at: int
    status: Annotated[str, Field(pattern=r"^(valid|expired)$")]


class MemberCardsOut(BaseModel):
    cards: list[CardOut]


class TierIn(Strict):
    """One tier: reached with ``min_points`` earned over the last ``window_days``; points
    issued to its members are multiplied by ``multiplier_bps`` / 10,000."""

    level: Annotated[int, Field(strict=True, ge=1, le=16)]
    name: Annotated[str, Field(min_length=1, max_length=64)]
    min_points: Annotated[int, Field(strict=True, ge=0, le=2**128)]
    window_days: Annotated[int, Field(strict=True, ge=1, le=3660)] = 365
    multiplier_bps: Annotated[int, Field(strict=True, ge=10_000, le=100_000)] = 10_000


class TiersRequest(Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tiers": [
        {"level": 1, "name": "silver", "min_points": 1000, "window_days": 365,
         "multiplier_bps": 12_500},
        {"level": 2, "name": "gold", "min_points": 5000, "window_days": 365,
         "multiplier_bps": 15_000}]}]})

    tiers: Annotated[list[TierIn], Field(max_length=16)]


class TiersOut(BaseModel):
    merchant_id: int
    tiers: list[TierIn]


class MemberTierOut(BaseModel):
    merchant_id: int
    member: str
    level: int
    name: str | None
    points_in_window: int
    multiplier_bps: int


class TierLockRequest(Strict):
    """Lock one of your (indexed) campaigns to members of ``min_level`` or above of your tiers
    (or ``scope_merchant_id``'s; 0: the alliance-wide tiers)."""

    min_level: Annotated[int, Field(strict=True, ge=1, le=16)]
    scope_merchant_id: Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)] | None = None


class TierLockOut(BaseModel):
    campaign_id: int
    min_level: int
    scope_merchant_id: int


class TierGrantRequest(Strict):
    """Coupons of a campaign of yours, refused if a member is below its tier lock."""

    members: Annotated[list[Address], Field(min_length=1, max_length=1000)]


class TierIssueRequest(Strict):
    """Points for one of your orders, raised by the member's tier at you (or the alliance's
    tiers if you have none): ``points`` is the base amount."""

    member: Address
    points: Points
    order_id: OrderId
    spend: Spend | None = Field(
        default=None, description="what the order was worth, in minor units (off chain): "
        "purchase offers defined in spend compare this, whatever the tier multiplier")

