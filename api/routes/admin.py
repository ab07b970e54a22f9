"""The operator's routes: admit, suspend, reinstate merchants; set rates."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ledger import merchants
from ledger.contracts.clients import ProgramConfig

from ..deps import AdminDep, AllianceDep, BodyDep
from ..idempotency import run_idempotent
from ..schemas import MerchantCreate, MerchantCreated, MerchantIdPath, MerchantOut, RateUpdate

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/merchants", status_code=201, response_model=MerchantCreated)
def admit(req: MerchantCreate, request: Request, body: BodyDep, alliance: AllianceDep,
          who: AdminDep) -> Response:
    """Admit a merchant on chain with its point program and rate; credentials shown once."""

    def work(_: Session | None) -> tuple[int, Any]:
        m = merchants.admit_merchant(alliance, name=req.name, symbol=req.symbol, rate=req.rate,
                                     config=ProgramConfig(req.period_days * 86400,
                                                          req.expiry_periods,
                                                          req.max_pending_days))
        out = MerchantCreated(merchant_id=m.merchant_id, name=m.name, status="active",
                              account=m.account, program=m.program, rate=m.rate,
                              key_id=m.key_id, secret=m.secret)
        return 201, out.model_dump(mode="json")

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)


def _status_change(request: Request, body: bytes, alliance: Any, who: Any,
                   action: Any, merchant_id: int) -> Response:
    def work(_: Session | None) -> tuple[int, Any]:
        return 200, asdict(action(alliance, merchant_id=merchant_id))

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)


@router.post("/merchants/{merchant_id}/suspend", response_model=MerchantOut)
def suspend(merchant_id: MerchantIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
            who: AdminDep) -> Response:
    """Suspend a merchant: it can no longer issue, reverse or redeem (on chain)."""
    return _status_change(request, body, alliance, who, merchants.suspend_merchant,
                          merchant_id)


@router.post("/merchants/{merchant_id}/reinstate", response_model=MerchantOut)
def reinstate(merchant_id: MerchantIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
              who: AdminDep) -> Response:
    """Let a suspended merchant act again."""
    return _status_change(request, body, alliance, who, merchants.reinstate_merchant,
                          merchant_id)


@router.put("/merchants/{merchant_id}/rate", response_model=MerchantOut)
def set_rate(merchant_id: MerchantIdPath, req: RateUpdate, alliance: AllianceDep,
             who: AdminDep) -> MerchantOut:
    """Set the program's value in settlement units (fen) per point. Idempotent by nature."""
    return MerchantOut(**asdict(merchants.set_rate(alliance, merchant_id=merchant_id,
                                                   rate=req.rate)))


@router.get("/merchants", response_model=list[MerchantOut])
def list_all(alliance: AllianceDep, who: AdminDep) -> list[MerchantOut]:
    """Every merchant with status, program and rate."""
    return [MerchantOut(**asdict(m)) for m in merchants.list_merchants(alliance)]
