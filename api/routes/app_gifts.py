"""Gifts in the member app (behind the member's session cookie, like every ``/app/api``
route; not in the OpenAPI document): the alliance's gift catalogue as the member sees it, a
gift's quote (the exact points redemption to sign), the signed redemption (relayed by the
gift's shop; the gift coupon follows once it is confirmed) and where it is. Refusals are 409
with the offers service's codes (``offers-gift-out-of-stock``, ``-member-limit``,
``offers-insufficient-points``) and change nothing."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Path

from ledger.errors import LedgerConflictError
from ledger.members import gifts

from ..deps import AllianceDep
from ..schemas.app_gifts import (
    CatalogueGiftOut,
    CatalogueOut,
    GiftQuoteOut,
    GiftRedeemSigned,
    MyGiftRedemptionOut,
    MyGiftRedemptionsOut,
)
from .members import MemberDep

REPLAYED = "offers-gift-request-replayed"

router = APIRouter(prefix="/app/api/gifts", tags=["member app"], include_in_schema=False)
GiftIdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]
RequestIdPath = Annotated[str, Path(pattern=r"^app-[0-9a-f]{24}$")]


@router.get("", response_model=CatalogueOut)
def catalogue(me: MemberDep, alliance: AllianceDep) -> CatalogueOut:
    """Every active gift of the alliance, with what is left and whether the member can take
    it now."""
    with alliance.store.read_session() as s:
        rows = gifts.catalogue(alliance, s, member=me.address)
    return CatalogueOut(gifts=[CatalogueGiftOut.model_validate(asdict(g)) for g in rows])


@router.get("/redemptions", response_model=MyGiftRedemptionsOut)
def my_redemptions(me: MemberDep, alliance: AllianceDep) -> MyGiftRedemptionsOut:
    """The member's gift redemptions, newest first."""
    with alliance.store.read_session() as s:
        rows = gifts.my_redemptions(s, member=me.address)
    return MyGiftRedemptionsOut(redemptions=[
        MyGiftRedemptionOut.model_validate(asdict(r)) for r in rows])


@router.post("/{gift_id}/quote", response_model=GiftQuoteOut)
def quote(gift_id: GiftIdPath, me: MemberDep, alliance: AllianceDep) -> GiftQuoteOut:
    """What to sign for the gift (409 if the member cannot take it now)."""
    with alliance.store.read_session() as s:
        q = gifts.quote(alliance, s, member=me.address, gift_id=gift_id)
    return GiftQuoteOut.model_validate({**asdict(q.sign), "gift_id": q.gift_id,
                                        "request_id": q.request_id})


@router.post("/{gift_id}/redeem", response_model=MyGiftRedemptionOut, status_code=202)
def redeem(gift_id: GiftIdPath, req: GiftRedeemSigned, me: MemberDep,
           alliance: AllianceDep) -> MyGiftRedemptionOut:
    """Queue the member's signed redemption, once (the same request again answers the
    same); poll ``/redemptions/{request_id}``."""
    try:
        with alliance.store.session() as s:
            r = gifts.redeem(alliance, s, member=me.address, gift_id=gift_id,
                             request_id=req.request_id, nonce=req.nonce,
                             deadline=req.deadline, signature=req.signature)
    except LedgerConflictError as exc:
        if exc.code != REPLAYED:
            raise
        # The same request sent twice at once: the other send recorded it between this one's
        # look and its insert (this one's transaction rolled back, nothing of it stays).
        # Answer the redemption that was made, as a later send would get.
        with alliance.store.read_session() as s:
            r = gifts.my_redemption(s, member=me.address, gift_id=gift_id,
                                    request_id=req.request_id)
    return MyGiftRedemptionOut.model_validate(asdict(r))


@router.get("/{gift_id}/redemptions/{request_id}", response_model=MyGiftRedemptionOut)
def my_redemption(gift_id: GiftIdPath, request_id: RequestIdPath, me: MemberDep,
                  alliance: AllianceDep) -> MyGiftRedemptionOut:
    with alliance.store.read_session() as s:
        return MyGiftRedemptionOut.model_validate(asdict(gifts.my_redemption(
            s, member=me.address, gift_id=gift_id, request_id=request_id)))
