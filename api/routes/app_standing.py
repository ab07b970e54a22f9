"""The member's membership cards and tiers in the member app (behind the member's session
cookie, like every ``/app/api`` route; not in the OpenAPI document)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from ledger.members import standing

from ..deps import AllianceDep
from ..schemas.app_standing import MyStandingOut, StandingOut
from .members import MemberDep

router = APIRouter(prefix="/app/api/memberships", tags=["member app"],
                   include_in_schema=False)


@router.get("", response_model=MyStandingOut)
def my_standing(me: MemberDep, alliance: AllianceDep) -> MyStandingOut:
    """The member's cards (valid or expired) and tiers, alliance-wide first, then per shop."""
    with alliance.store.read_session() as s:
        rows = standing.my_standing(alliance, s, member=me.address)
    return MyStandingOut(scopes=[StandingOut.model_validate(asdict(r)) for r in rows])
