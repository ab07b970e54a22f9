"""Memberships: cards (issue, earn with points, renew, a member's cards), tiers (set, list, a
member's tier), tier-locked campaigns and their grants, and a points issue raised by the
member's tier. Mutations queue outbox operations (202); refusals are problem+json."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from ledger.memberships import service as memberships
from ledger.points import service as points

from ..deps import AllianceDep, BodyDep, MerchantDep
from ..idempotency import run_idempotent
from ..schemas.common import AddressPath, OperationOut
from ..schemas.memberships import (
    CardEarnRequest,
    CardIssueRequest,
    CardRenewRequest,
    MemberCardsOut,
    MemberTierOut,
    TierGrantRequest,
    TierIssueRequest,
    TierLockOut,
    TierLockRequest,
    TiersOut,
    TiersRequest,
)
from .points import ACCEPTED, queue

router = APIRouter(prefix="/v1/memberships", tags=["memberships"])

CampaignIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]


@router.post("/cards", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def issue_card(req: CardIssueRequest, request: Request, body: BodyDep, alliance: AllianceDep,
               who: MerchantDep) -> Response:
    """Issue a member your non-transferable card, paid by an off-chain payment reference
    (each reference pays once)."""
    return queue(request, body, alliance, who, lambda s, mid: memberships.request_issue_card(
        alliance, s, merchant_id=mid, **req.model_dump()))


@router.post("/cards/earn", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def earn_card(req: CardEarnRequest, request: Request, body: BodyDep, alliance: AllianceDep,
              who: MerchantDep) -> Response:
    """Issue a member your card paid with points: name the member's confirmed redemption
    (``/v1/points/redeem`` at you) of at least ``price_points``."""
    return queue(request, body, alliance, who, lambda s, mid: memberships.request_earn_card(
        alliance, s, merchant_id=mid, **req.model_dump()))


@router.post("/cards/renew", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def renew_card(req: CardRenewRequest, request: Request, body: BodyDep, alliance: AllianceDep,
               who: MerchantDep) -> Response:
    """Renew a member's card of yours: its expiry moves ``days`` later."""
    return queue(request, body, alliance, who, lambda s, mid: memberships.request_renew_card(
        alliance, s, merchant_id=mid, **req.model_dump()))


@router.get("/members/{member}/cards", response_model=MemberCardsOut)
def member_cards(member: AddressPath, alliance: AllianceDep, who: MerchantDep
                 ) -> dict[str, Any]:
    """A wallet's membership cards (every merchant's), valid or expired now."""
    with alliance.store.read_session() as s:
        return {"cards": [memberships.card_view(c)
                          for c in memberships.member_cards(alliance, s, member=member)]}


@router.post("/tiers", response_model=TiersOut)
def set_tiers(req: TiersRequest, request: Request, body: BodyDep, alliance: AllianceDep,
              who: MerchantDep) -> Response:
    """Replace your tiers (levels 1..n, thresholds rising with the level)."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        defs = [memberships.TierDef(**t.model_dump()) for t in req.tiers]
        out = memberships.set_tiers(s, merchant_id=mid, tiers=defs)
        return 200, {"merchant_id": mid, "tiers": [asdict(t) for t in out]}

    return run_idempotent(request, body, alliance, who, work)


@router.get("/tiers/{merchant_id}", response_model=TiersOut)
def get_tiers(merchant_id: Annotated[int, Path(ge=0, le=2**32 - 1)], alliance: AllianceDep,
              who: MerchantDep) -> dict[str, Any]:
    """A merchant's tiers (0: the alliance-wide ones)."""
    with alliance.store.read_session() as s:
        return {"merchant_id": merchant_id,
                "tiers": [asdict(t) for t in memberships.get_tiers(s, merchant_id=merchant_id)]}


@router.get("/tiers/{merchant_id}/members/{member}", response_model=MemberTierOut)
def member_tier(merchant_id: Annotated[int, Path(ge=0, le=2**32 - 1)], member: AddressPath,
                alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """A member's tier in a merchant's tiers (0: alliance-wide) now, with the points earned
    in the window."""
    with alliance.store.read_session() as s:
        return asdict(memberships.member_tier(alliance, s, merchant_id=merchant_id,
                                              member=member))


@router.post("/campaigns/{campaign_id}/tier", response_model=TierLockOut)
def lock_campaign(campaign_id: CampaignIdPath, req: TierLockRequest, request: Request,
                  body: BodyDep, alliance: AllianceDep, who: MerchantDep) -> Response:
    """Lock one of your campaigns to a tier: grants through ``/grant`` below refuse members
    under it."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        scope = memberships.lock_campaign(s, merchant_id=mid, campaign_id=campaign_id,
                                          min_level=req.min_level,
                                          scope_merchant_id=req.scope_merchant_id)
        return 200, {"campaign_id": campaign_id, "min_level": req.min_level,
                     "scope_merchant_id": scope}

    return run_idempotent(request, body, alliance, who, work)


@router.post("/campaigns/{campaign_id}/grant", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def tier_grant(campaign_id: CampaignIdPath, req: TierGrantRequest, request: Request,
               body: BodyDep, alliance: AllianceDep, who: MerchantDep) -> Response:
    """Grant coupons of a tier-locked campaign of yours (409 ``tier-too-low`` if a member is
    below its tier)."""
    return queue(request, body, alliance, who, lambda s, mid: memberships.request_tier_grant(
        alliance, s, merchant_id=mid, campaign_id=campaign_id, members=req.members))


@router.post("/issue", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def tier_issue(req: TierIssueRequest, request: Request, body: BodyDep, alliance: AllianceDep,
               who: MerchantDep) -> Response:
    """Issue points for one of your orders raised by the member's tier (the points service
    issues them; points imports nothing of memberships)."""
    return queue(request, body, alliance, who, lambda s, mid: points.request_issue(
        alliance, s, merchant_id=mid, member=req.member, order_id=req.order_id,
        points=memberships.boosted_points(alliance, s, merchant_id=mid, member=req.member,
                                          points=req.points), spend=req.spend))
