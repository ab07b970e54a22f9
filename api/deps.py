"""Dependencies of the routes, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger.alliance import Alliance

from .auth import Principal, authenticate
from .errors import ApiError


def get_alliance(request: Request) -> Alliance:
    alliance: Alliance = request.app.state.alliance
    return alliance


AllianceDep = Annotated[Alliance, Depends(get_alliance)]


async def principal(request: Request, alliance: AllianceDep) -> Principal:
    """Who sent the request. :class:`api.guard.RequestGuard` authenticated it on its raw
    bytes before anything parsed the body; any route that depends on this is guarded so."""
    p = getattr(request.state, "principal", None)
    if isinstance(p, Principal):
        return p
    # Only without the guard (an app built by hand): authenticate here, after parsing.
    p = await authenticate(request, alliance)
    request.app.state.rate_limiter.check(p.key_id)
    return p


async def merchant(p: Annotated[Principal, Depends(principal)]) -> Principal:
    if p.role != "merchant" or p.merchant_id is None:
        raise ApiError(403, "forbidden", "this route is for merchant credentials")
    return p


async def admin(p: Annotated[Principal, Depends(principal)]) -> Principal:
    if p.role != "admin":
        raise ApiError(403, "forbidden", "this route is for operator credentials")
    return p


async def raw_body(request: Request) -> bytes:
    return await request.body()


MerchantDep = Annotated[Principal, Depends(merchant)]
AdminDep = Annotated[Principal, Depends(admin)]
AnyPrincipalDep = Annotated[Principal, Depends(principal)]
BodyDep = Annotated[bytes, Depends(raw_body)]
