"""The calling merchant's own record."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from ledger.merchants import service as merchants

from ..deps import AllianceDep, MerchantDep
from ..schemas.merchants import MerchantOut

router = APIRouter(prefix="/v1/merchants", tags=["merchants"])


@router.get("/me", response_model=MerchantOut)
def me(alliance: AllianceDep, who: MerchantDep) -> MerchantOut:
    """Your merchant id, status, program and rate."""
    assert who.merchant_id is not None
    return MerchantOut(**asdict(merchants.get_merchant(alliance, merchant_id=who.merchant_id)))
