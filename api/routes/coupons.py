"""Coupons: campaigns (create, pause, resume, list, stats), grants, vouchers (create, claim,
cancel), validate, redeem, rollback, a member's coupons. Mutations queue outbox operations
(202); refusals are problem+json (409 with a ``coupon-…`` type)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy.orm import Session

from ledger.coupons import service as coupons
from ledger.memberships import service as memberships

from ..deps import AllianceDep, BodyDep, MerchantDep
from ..idempotency import run_idempotent
from ..schemas.common import AddressPath, OperationOut
from ..schemas.coupons import (
    CampaignCreateRequest,
    CampaignsOut,
    CampaignStatsOut,
    CouponRedeemRequest,
    GrantRequest,
    MemberCouponsOut,
    RollbackRequest,
    ValidateOut,
    ValidateRequest,
    VoucherCancelRequest,
    VoucherClaimRequest,
    VoucherCreateRequest,
    VoucherOut,
)
from .points import ACCEPTED, BATCH_MAX_BODY, queue
from .public import TOO_MANY, public_client

router = APIRouter(prefix="/v1/coupons", tags=["coupons"])

CouponIdPath = Annotated[str, Path(pattern=r"^[1-9][0-9]{0,77}$")]
CampaignIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, examples=[1])]


@router.post("/campaigns", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def create_campaign(req: CampaignCreateRequest, request: Request, body: BodyDep,
                    alliance: AllianceDep, who: MerchantDep) -> Response:
    """Create a campaign of yours (its id comes with the mined ``CampaignCreated``)."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_create_campaign(
        alliance, s, merchant_id=mid, **req.model_dump()))


@router.post("/campaigns/{campaign_id}/pause", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def pause_campaign(campaign_id: CampaignIdPath, request: Request, body: BodyDep,
                   alliance: AllianceDep, who: MerchantDep) -> Response:
    """Pause one of your campaigns: no grants, claims or redemptions until resumed."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_set_paused(
        alliance, s, merchant_id=mid, campaign_id=campaign_id, paused=True))


@router.post("/campaigns/{campaign_id}/resume", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def resume_campaign(campaign_id: CampaignIdPath, request: Request, body: BodyDep,
                    alliance: AllianceDep, who: MerchantDep) -> Response:
    """Resume one of your paused campaigns."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_set_paused(
        alliance, s, merchant_id=mid, campaign_id=campaign_id, paused=False))


@router.get("/campaigns", response_model=CampaignsOut)
def list_campaigns(alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """Your campaigns, as indexed."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return {"campaigns": coupons.list_campaigns(s, merchant_id=who.merchant_id)}


@router.get("/campaigns/{campaign_id}/stats", response_model=CampaignStatsOut)
def campaign_stats(campaign_id: CampaignIdPath, alliance: AllianceDep,
                   who: MerchantDep) -> dict[str, Any]:
    """Live counts of one of your campaigns: granted, claimed, redeemed, budget used."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return coupons.campaign_stats(s, merchant_id=who.merchant_id, campaign_id=campaign_id)


@router.post("/grant", status_code=202, responses=ACCEPTED, response_model=OperationOut,
             max_body_size=BATCH_MAX_BODY)
def grant(req: GrantRequest, request: Request, body: BodyDep, alliance: AllianceDep,
          who: MerchantDep) -> Response:
    """Grant coupons of one of your campaigns, one per member (one or a batch); a campaign
    locked to a tier refuses members below it (409 ``tier-too-low``)."""
    return queue(request, body, alliance, who, lambda s, mid: memberships.request_tier_grant(
        alliance, s, merchant_id=mid, campaign_id=req.campaign_id, members=req.members))


@router.post("/vouchers", response_model=VoucherOut)
def create_voucher(req: VoucherCreateRequest, request: Request, body: BodyDep,
                   alliance: AllianceDep, who: MerchantDep) -> Response:
    """Sign a voucher of one of your campaigns: a code for a link or QR; nothing goes on
    chain until it is claimed (a retry with the same Idempotency-Key gives the same code)."""

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None and who.merchant_id is not None
        v = coupons.create_voucher(alliance, s, merchant_id=who.merchant_id,
                                   campaign_id=req.campaign_id, expires_at=req.expires_at)
        return 200, {"campaign_id": v.campaign_id, "voucher_id": str(v.voucher_id),
                     "expires_at": v.expires_at, "code": v.code}

    return run_idempotent(request, body, alliance, who, work)


@router.post("/vouchers/claim", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def claim_voucher(req: VoucherClaimRequest, request: Request, body: BodyDep,
                  alliance: AllianceDep, who: MerchantDep) -> Response:
    """Claim one of your vouchers for a member's wallet (once; not if cancelled); a voucher
    of a campaign locked to a tier refuses a member below it (409 ``tier-too-low``)."""
    return queue(request, body, alliance, who,
                 lambda s, mid: memberships.request_tier_claim_voucher(
                     alliance, s, merchant_id=mid, code=req.code, to=req.to))


@router.post("/vouchers/cancel", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def cancel_voucher(req: VoucherCancelRequest, request: Request, body: BodyDep,
                   alliance: AllianceDep, who: MerchantDep) -> Response:
    """Cancel one of your vouchers on chain: it can never be claimed."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_cancel_voucher(
        alliance, s, merchant_id=mid, code=req.code))


@router.post("/validate", response_model=ValidateOut)
def validate(req: ValidateRequest, request: Request, body: BodyDep, alliance: AllianceDep,
             who: MerchantDep) -> Response:
    """Would this coupon apply to this order of yours now, and with what discount (nothing
    is used)."""

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None and who.merchant_id is not None
        v = coupons.validate(alliance, s, merchant_id=who.merchant_id, coupon_id=req.coupon_id,
                             order_id=req.order_id, order_amount=req.order_amount)
        return 200, {**asdict(v), "coupon_id": str(v.coupon_id)}

    return run_idempotent(request, body, alliance, who, work)


@router.post("/redeem", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def redeem(req: CouponRedeemRequest, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantDep) -> Response:
    """Relay a holder's signed redemption of a coupon for one of your orders; a coupon of
    another merchant clears the discount to you in the same transaction. 409
    ``coupon-redemption-in-progress`` while another redemption of it is in flight."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_redeem(
        alliance, s, merchant_id=mid, coupon_id=req.coupon_id, order_id=req.order_id,
        order_amount=req.order_amount, nonce=req.nonce, deadline=req.deadline,
        signature=req.signature))


@router.post("/rollback", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def rollback(req: RollbackRequest, request: Request, body: BodyDep, alliance: AllianceDep,
             who: MerchantDep) -> Response:
    """Roll back a redemption made at you (a refund of the order) within the refund window:
    the coupon is usable again while valid; cleared value moves back."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_rollback(
        alliance, s, merchant_id=mid, coupon_id=req.coupon_id, order_id=req.order_id))


@router.post("/{coupon_id}/revoke", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def revoke(coupon_id: CouponIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantDep) -> Response:
    """Take back (burn) an unused coupon of one of your campaigns, e.g. one granted by
    mistake or for an order refunded. 404 for a coupon that is not yours; 409
    ``coupon-already-used`` for a used one (it stays in its holder's history)."""
    return queue(request, body, alliance, who, lambda s, mid: coupons.request_revoke(
        alliance, s, merchant_id=mid, coupon_id=coupon_id))


@router.get("/members/{holder}", response_model=MemberCouponsOut)
def member_coupons(holder: AddressPath, alliance: AllianceDep,
                   who: MerchantDep) -> dict[str, Any]:
    """The coupons a wallet holds: valid, used or expired."""
    with alliance.store.read_session() as s:
        return {"coupons": coupons.member_coupons(alliance, s, holder=holder)}


public_router = APIRouter(prefix="/v1/public/coupons", tags=["public"],
                          dependencies=[Depends(public_client)])


@public_router.get("/{coupon_id}/metadata", responses=TOO_MANY)
def coupon_metadata(coupon_id: CouponIdPath, request: Request,
                    alliance: AllianceDep) -> dict[str, Any]:
    """ERC-721 metadata JSON of a coupon (name, description, terms as attributes); what the
    coupon book's ``tokenURI`` points wallets to. No login."""
    base = str(request.base_url).rstrip("/")
    with alliance.store.read_session() as s:
        return coupons.coupon_metadata(alliance, s, coupon_id=coupon_id, base_url=base)
