"""The operator's routes: admit merchants, suspend (at once), reinstate, set rates and payout
addresses (admin actions through the timelock), list and execute pending admin actions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy.orm import Session

from ledger import governance
from ledger.merchants import service as merchants
from ledger.merchants.clients import ProgramConfig

from ..deps import AdminDep, AllianceDep, BodyDep
from ..idempotency import run_idempotent
from ..schemas.admin import AdminActionOut, MerchantAdmission, PayoutUpdate
from ..schemas.common import MerchantIdPath
from ..schemas.merchants import MerchantCreated, MerchantOut, RateUpdate

# A timelock operation id (bytes32, hex) or a prefix of one.
ActionIdPath = Annotated[str, Path(min_length=1, max_length=66, pattern=r"^(0x)?[0-9a-fA-F]+$")]

router = APIRouter(prefix="/v1/admin", tags=["admin"])


def _merchant_out(m: merchants.MerchantView) -> MerchantOut:
    return MerchantOut(merchant_id=m.merchant_id, name=m.name, status=m.status,
                       account=m.account, program=m.program, rate=m.rate, payout=m.payout)


def _created(m: merchants.AdmittedMerchant) -> dict[str, Any]:
    return MerchantCreated(merchant_id=m.merchant_id, name=m.name, status="active",
                           account=m.account, program=m.program, rate=m.rate,
                           payout=m.payout, key_id=m.key_id,
                           secret=m.secret).model_dump(mode="json")


def _action_out(a: governance.AdminAction) -> AdminActionOut:
    return AdminActionOut(id=a.id, kind=a.kind, summary=a.summary, ready_at=a.ready_at)


@router.post("/merchants", status_code=201, response_model=MerchantCreated,
             responses={202: {"model": AdminActionOut,
                              "description": "scheduled in the timelock (a delay is set)"}})
def admit(req: MerchantAdmission, request: Request, body: BodyDep, alliance: AllianceDep,
          who: AdminDep) -> Response:
    """Admit a merchant with its point program, rate and payout address in one admin action;
    credentials shown once. With a timelock delay: 202 and the pending action (execute it at
    ``/v1/admin/actions/{id}/execute`` once ready; the credentials come then). Every bound is
    checked before anything is sent."""

    def work(_: Session | None) -> tuple[int, Any]:
        m = merchants.propose_admission(
            alliance, name=req.name, symbol=req.symbol, rate=req.rate, payout=req.payout,
            config=ProgramConfig(req.period_days * 86400, req.expiry_periods,
                                 req.max_pending_days))
        if isinstance(m, merchants.PendingAdmission):
            return 202, AdminActionOut(id=m.action_id, kind="admit",
                                       summary=f"admit {m.name}",
                                       ready_at=m.ready_at).model_dump(mode="json")
        return 201, _created(m)

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)


def _status_change(request: Request, body: bytes, alliance: Any, who: Any,
                   action: Any, merchant_id: int) -> Response:
    def work(_: Session | None) -> tuple[int, Any]:
        return 200, _merchant_out(action(alliance, merchant_id=merchant_id)).model_dump()

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)


@router.post("/merchants/{merchant_id}/suspend", response_model=MerchantOut)
def suspend(merchant_id: MerchantIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
            who: AdminDep) -> Response:
    """Suspend a merchant at once (the emergency brake): it can no longer issue, reverse or
    redeem (on chain)."""
    return _status_change(request, body, alliance, who, merchants.suspend_merchant,
                          merchant_id)


@router.post("/merchants/{merchant_id}/reinstate", response_model=MerchantOut)
def reinstate(merchant_id: MerchantIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
              who: AdminDep) -> Response:
    """Let a suspended merchant act again: an admin action through the timelock (the merchant
    stays suspended while it is pending)."""
    return _status_change(request, body, alliance, who, merchants.reinstate_merchant,
                          merchant_id)


@router.put("/merchants/{merchant_id}/rate", response_model=MerchantOut)
def set_rate(merchant_id: MerchantIdPath, req: RateUpdate, alliance: AllianceDep,
             who: AdminDep) -> MerchantOut:
    """Set the program's value in settlement units (fen) per point, through the timelock (the
    old rate holds while pending). Idempotent by nature."""
    return _merchant_out(merchants.set_rate(alliance, merchant_id=merchant_id, rate=req.rate))


@router.put("/merchants/{merchant_id}/payout", response_model=MerchantOut)
def set_payout(merchant_id: MerchantIdPath, req: PayoutUpdate, alliance: AllianceDep,
               who: AdminDep) -> MerchantOut:
    """Change where the clearing pays the merchant, through the governance."""
    return _merchant_out(merchants.set_payout(alliance, merchant_id=merchant_id,
                                              payout=req.payout))


@router.get("/merchants", response_model=list[MerchantOut])
def list_all(alliance: AllianceDep, who: AdminDep) -> list[MerchantOut]:
    """Every merchant with status, program and rate."""
    return [_merchant_out(m) for m in merchants.list_merchants(alliance)]


@router.get("/actions", response_model=list[AdminActionOut])
def pending_actions(alliance: AllianceDep, who: AdminDep) -> list[AdminActionOut]:
    """Admin actions scheduled in the timelock and not yet executed."""
    return [_action_out(a) for a in governance.pending(alliance)]


@router.post("/actions/{action_id}/execute")
def execute_action(action_id: ActionIdPath, request: Request, body: BodyDep, alliance: AllianceDep,
                   who: AdminDep) -> Response:
    """Execute a scheduled admin action once its delay has passed (409 before). An admission
    gives the merchant's credentials, once."""

    def work(_: Session | None) -> tuple[int, Any]:
        out = merchants.execute_action(alliance, action_id)
        if isinstance(out, merchants.AdmittedMerchant):
            return 200, {"executed": action_id, "merchant": _created(out)}
        merchant = _merchant_out(out).model_dump() if out is not None else None
        return 200, {"executed": action_id, "merchant": merchant}

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)
