"""Public, read-only member info: what a wallet needs to sign, without credentials.

No authentication; every request is rate-limited per client IP (``429`` problem+json with
``Retry-After``). Nothing here reads personal data: the alliance's chain, registry and
programs are public on chain anyway (registry ``merchant(id)``, program ``eip712Domain()``,
``nonceBitmap``), and these routes only save a wallet the RPC endpoint and the ABI.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Request

from ledger.points import reads as points

from ..deps import AllianceDep
from ..schemas.common import AddressPath, MerchantIdPath, NonceQuery
from ..schemas.public import NoncesOut, PublicAllianceOut


async def public_client(request: Request) -> None:
    """Take one token of the caller's IP from the public rate limit, or raise 429."""
    host = request.client.host if request.client is not None else "unknown"
    request.app.state.public_rate_limiter.check("ip:" + host)


router = APIRouter(prefix="/v1/public", tags=["public"], dependencies=[Depends(public_client)])

TOO_MANY: dict[int | str, dict[str, Any]] = {
    429: {"description": "too many requests from this address (problem+json, Retry-After)"}}


@router.get("/alliance", response_model=PublicAllianceOut, responses=TOO_MANY)
def alliance_info(alliance: AllianceDep) -> PublicAllianceOut:
    """Chain id, registry, settlement unit, every program (address, symbol, rate, EIP-712
    domain) and the typed-data types members sign (``Redeem``, ``Convert``, ...)."""
    return PublicAllianceOut.model_validate(asdict(points.public_alliance(alliance)))


@router.get("/programs/{merchant_id}/nonces/{member}", response_model=NoncesOut,
            responses=TOO_MANY)
def nonces(merchant_id: MerchantIdPath, member: AddressPath, alliance: AllianceDep,
           nonce: NonceQuery = None) -> NoncesOut:
    """Unused signature nonces of ``member`` in the merchant's program to sign with, and with
    ``?nonce=`` whether that one is used (nonces are unordered: any unused one works)."""
    return NoncesOut.model_validate(asdict(points.member_nonces(
        alliance, merchant_id=merchant_id, member=member, nonce=nonce)))
