"""Triggered offers and gifts: rules (create, list, show, disable), members' birth months,
invite codes and referrals, the gift catalogue (create, list, show, update) and gift
redemptions (a member's signed points redemption; the gift coupon follows once it is
confirmed). Refusals are problem+json (409 with an ``offers-…`` code)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from ledger.offers import service as offers

from ..deps import AllianceDep, BodyDep, MerchantDep
from ..idempotency import run_idempotent
from ..schemas.common import OperationOut
from ..schemas.offers import (
    BirthMonthOut,
    BirthMonthRequest,
    GiftCreateRequest,
    GiftOut,
    GiftRedeemRequest,
    GiftRedemptionOut,
    GiftsOut,
    GiftUpdateRequest,
    InviteOut,
    MemberRef,
    ReferralOut,
    ReferralRequest,
    RuleCreateRequest,
    RuleOut,
    RulesOut,
)
from .points import ACCEPTED, queue

router = APIRouter(prefix="/v1/offers", tags=["offers"])

RuleIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]
GiftIdPath = Annotated[int, Path(ge=1, le=2**31 - 1, examples=[1])]
RequestIdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]


def _write(request: Request, body: bytes, alliance: Any, who: Any, status: int,
           call: Callable[[Session, int], dict[str, Any]]) -> Response:
    """Run a store write of the calling merchant idempotently; ``status`` with its answer."""

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None and who.merchant_id is not None
        return status, call(s, who.merchant_id)

    return run_idempotent(request, body, alliance, who, work)


# ---------------------------------------------------------------------- rules


@router.post("/rules", status_code=201, response_model=RuleOut)
def create_rule(req: RuleCreateRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                who: MerchantDep) -> Response:
    """Create a triggered offer of yours, active at once (a rule on another merchant's
    campaign is 403; an unknown campaign 404)."""
    return _write(request, body, alliance, who, 201, lambda s, mid: offers.create_rule(
        alliance, s, merchant_id=mid, kind=req.kind, campaign_id=req.campaign_id,
        min_points=req.min_points, min_spend=req.min_spend))


@router.get("/rules", response_model=RulesOut)
def list_rules(alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """Your rules, active or not."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return {"rules": offers.list_rules(s, merchant_id=who.merchant_id)}


@router.get("/rules/{rule_id}", response_model=RuleOut)
def show_rule(rule_id: RuleIdPath, alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """One of your rules, with how often it fired (and was skipped)."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return offers.show_rule(s, merchant_id=who.merchant_id, rule_id=rule_id)


@router.post("/rules/{rule_id}/disable", response_model=RuleOut)
def disable_rule(rule_id: RuleIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
                 who: MerchantDep) -> Response:
    """Disable one of your rules: it never fires again (409 ``offers-rule-disabled`` if it
    is already)."""
    return _write(request, body, alliance, who, 200, lambda s, mid: offers.disable_rule(
        s, merchant_id=mid, rule_id=rule_id))


# ---------------------------------------------------------------------- members


@router.post("/birth-months", response_model=BirthMonthOut)
def set_birth_month(req: BirthMonthRequest, request: Request, body: BodyDep,
                    alliance: AllianceDep, who: MerchantDep) -> Response:
    """Record a member's birth month for your birthday rules (encrypted at rest, never on
    chain, never logged)."""
    return _write(request, body, alliance, who, 200, lambda s, mid: {
        "member": offers.set_birth_month(alliance, s, merchant_id=mid, member=req.member,
                                         member_id=req.member_id, month=req.month)})


@router.post("/invites", response_model=InviteOut)
def invite(req: MemberRef, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantDep) -> Response:
    """A member's invite code at your shop (the same code every time)."""
    return _write(request, body, alliance, who, 200, lambda s, mid: offers.invite_code(
        alliance, s, merchant_id=mid, member=req.member, member_id=req.member_id))


@router.post("/referrals", status_code=201, response_model=ReferralOut)
def refer(req: ReferralRequest, request: Request, body: BodyDep, alliance: AllianceDep,
          who: MerchantDep) -> Response:
    """A new member who came with an invite code of yours: on their first purchase your
    referral rules grant both (409 ``offers-referral-exists`` / ``-self`` / ``-not-new``)."""
    return _write(request, body, alliance, who, 201, lambda s, mid: offers.refer(
        alliance, s, merchant_id=mid, code=req.code, member=req.member,
        member_id=req.member_id))


# ---------------------------------------------------------------------- gifts


@router.post("/gifts", status_code=201, response_model=GiftOut)
def create_gift(req: GiftCreateRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                who: MerchantDep) -> Response:
    """List a gift for points of your program (409 ``offers-campaign-not-gift`` unless its
    campaign is one of yours of kind gift)."""
    return _write(request, body, alliance, who, 201, lambda s, mid: offers.create_gift(
        alliance, s, merchant_id=mid, name=req.name, points=req.points,
        campaign_id=req.campaign_id, stock=req.stock, per_member_limit=req.per_member_limit))


@router.get("/gifts", response_model=GiftsOut)
def list_gifts(alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """Your gift catalogue, with what is left of each."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return {"gifts": offers.list_gifts(s, merchant_id=who.merchant_id)}


@router.get("/gifts/{gift_id}", response_model=GiftOut)
def show_gift(gift_id: GiftIdPath, alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """One of your gifts."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return offers.show_gift(s, merchant_id=who.merchant_id, gift_id=gift_id)


@router.post("/gifts/{gift_id}", response_model=GiftOut)
def update_gift(gift_id: GiftIdPath, req: GiftUpdateRequest, request: Request, body: BodyDep,
                alliance: AllianceDep, who: MerchantDep) -> Response:
    """Restock, reprice, withdraw or relist one of your gifts."""
    return _write(request, body, alliance, who, 200, lambda s, mid: offers.update_gift(
        s, merchant_id=mid, gift_id=gift_id, stock=req.stock, points=req.points,
        active=req.active))


@router.post("/gifts/{gift_id}/redeem", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def redeem_gift(gift_id: GiftIdPath, req: GiftRedeemRequest, request: Request, body: BodyDep,
                alliance: AllianceDep, who: MerchantDep) -> Response:
    """Relay a member's signed points redemption for one of your gifts; the gift coupon is
    granted once it is confirmed. 409 ``offers-gift-out-of-stock``, ``-disabled``,
    ``-member-limit``, ``-request-replayed``, ``offers-insufficient-points``."""
    return queue(request, body, alliance, who, lambda s, mid: offers.request_gift_redemption(
        alliance, s, merchant_id=mid, gift_id=gift_id, member=req.member,
        request_id=req.request_id, nonce=req.nonce, deadline=req.deadline,
        signature=req.signature))


@router.get("/gifts/{gift_id}/redemptions/{request_id}", response_model=GiftRedemptionOut)
def show_gift_redemption(gift_id: GiftIdPath, request_id: RequestIdPath, alliance: AllianceDep,
                         who: MerchantDep) -> dict[str, Any]:
    """A gift redemption: paying, paid (its coupon grant queued) or failed."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return offers.show_gift_redemption(s, merchant_id=who.merchant_id, gift_id=gift_id,
                                           request_id=request_id)



