"""Bodies and answers of the offers routes: triggered-offer rules, birth months, invite codes
and referrals, the gift catalogue and gift redemptions."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from pydantic.config import JsonDict

from .common import Address, MemberId, Nonce, Points, Signature, Strict, UnixTime
from .coupons import CampaignId
from .points import Spend

RequestId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,40}$", examples=["till-3-0042"])]
InviteCode = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
Stock = Annotated[int, Field(strict=True, ge=0, le=1_000_000)]

MEMBER_ONE_OF: JsonDict = {"oneOf": [
    {"required": ["member"], "properties": {"member": {"type": "string"}}},
    {"required": ["member_id"], "properties": {"member_id": {"type": "string"}}}]}


class RuleCreateRequest(Strict):
    """A triggered offer of yours: ``purchase`` (an order whose points issue is at least
    ``min_points``, or whose spend, as the issue request gave it, is at least ``min_spend``:
    one of the two), ``birthday`` (in the member's birth month, once a year) or ``referral``
    (both members, on the invitee's first purchase); each grants a coupon of ``campaign_id``,
    one of your campaigns."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"kind": "purchase", "campaign_id": 1, "min_points": 200},
        {"kind": "purchase", "campaign_id": 1, "min_spend": 20000},
        {"kind": "birthday", "campaign_id": 2}]})

    kind: Annotated[str, Field(pattern=r"^(purchase|birthday|referral)$",
                               examples=["purchase"])]
    campaign_id: CampaignId
    min_points: Points | None = Field(default=None, description="purchase rules: the least "
                                      "points an order's issue must carry to fire")
    min_spend: Spend | None = Field(
        default=None, description="purchase rules: the least spend (minor units, the issue "
        "request's ``spend``) an order must have to fire; a tier multiplier does not move it")


class RuleOut(BaseModel):
    rule_id: int
    merchant_id: int
    kind: str
    campaign_id: int
    min_points: int | None
    min_spend: int | None = None
    active: bool
    fired: int | None = None
    skipped: int | None = None
    failed: int | None = None
    revoked: int | None = None
    kept: int | None = None
    kept_coupons: list[str] | None = Field(
        default=None, description="coupons of reversed orders that stay: used before the "
        "reversal")


class RulesOut(BaseModel):
    rules: list[RuleOut]


class MemberRef(Strict):
    """A member by wallet (``member``) or alliance member id (``member_id``), not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=MEMBER_ONE_OF)

    member: Address | None = None
    member_id: MemberId | None = None


class BirthMonthRequest(MemberRef):
    """A member's birth month (1-12), kept encrypted by the service, never on chain."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        **MEMBER_ONE_OF, "examples": [{"member_id": "member-0001", "month": 5}]})

    month: Annotated[int, Field(strict=True, ge=1, le=12)]


class BirthMonthOut(BaseModel):
    member: str


class InviteOut(BaseModel):
    code: str
    inviter: str


class ReferralRequest(MemberRef):
    """A new member who came with an invite code of yours."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        **MEMBER_ONE_OF, "examples": [{"member_id": "member-0002", "code": "x7Q2mN0aZ1bC"}]})

    code: InviteCode


class ReferralOut(BaseModel):
    inviter: str
    invitee: str


class GiftCreateRequest(Strict):
    """A gift for points of your program; ``campaign_id`` is one of your campaigns of kind
    gift (the coupon the member collects in store)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "Umbrella", "points": 500, "campaign_id": 3, "stock": 100,
         "per_member_limit": 1}]})

    name: Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")]
    points: Points
    campaign_id: CampaignId
    stock: Stock
    per_member_limit: Stock = 0


class GiftUpdateRequest(Strict):
    """Restock, reprice, withdraw (``active`` false) or relist a gift."""

    stock: Stock | None = None
    points: Points | None = None
    active: bool | None = None


class GiftOut(BaseModel):
    gift_id: int
    merchant_id: int
    name: str
    points: int
    campaign_id: int
    stock: int
    left: int
    per_member_limit: int
    active: bool


class GiftsOut(BaseModel):
    gifts: list[GiftOut]


class GiftRedeemRequest(Strict):
    """A member's points redemption for a gift, signed as any redemption (EIP-712
    ``Redeem`` in your program's domain) for ``points`` = the gift's price and the order id
    ``gift-<gift_id>-<request_id>``; the request id makes each redemption pay once."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"member": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "request_id": "till-3-0042",
         "nonce": 7, "deadline": 1764604800, "signature": "0x" + "11" * 65}]})

    member: Address
    request_id: RequestId
    nonce: Nonce
    deadline: UnixTime
    signature: Signature


class GiftRedemptionOut(BaseModel):
    gift_id: int
    request_id: str
    member: str
    order_id: str
    status: str
    redeem_operation_id: str
    grant_operation_id: str | None
