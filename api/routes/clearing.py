"""Clearing and settlement: merchants see positions and statements, deposit into escrow and
confirm off-chain payments; the operator closes periods, settles, anchors statements, sets caps
and acceptance, and mints settlement tokens."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ledger.clearing import service as clearing
from ledger.clearing import statements
from ledger.clearing.service import PeriodView, PositionView
from ledger.clearing.statements import Statement

from ..deps import AdminDep, AllianceDep, BodyDep, MerchantDep, MerchantEvenSuspendedDep
from ..idempotency import run_idempotent
from ..schemas.clearing import (
    AcceptanceUpdate,
    CapsUpdate,
    DepositRequest,
    MintRequest,
    OffChainPaymentRequest,
    OperatorOffChainPayment,
    StatementOut,
    SweepRequest,
)
from ..schemas.common import MerchantIdPath, OperationOut, PeriodPath, PeriodQuery
from .points import ACCEPTED, queue

router = APIRouter(prefix="/v1/clearing", tags=["clearing"])
admin_router = APIRouter(prefix="/v1/admin/clearing", tags=["admin"])


def _period_out(view: PeriodView) -> dict[str, Any]:
    return asdict(view)


def _statement_out(st: Statement) -> StatementOut:
    return StatementOut(hash=st.hash, anchored_hash=st.anchored_hash,
                        matches_anchor=st.matches_anchor, statement=st.document,
                        as_of_block=st.as_of_block)


# ---------------------------------------------------------------------- merchants


@router.get("/position", response_model=PositionView)
def my_position(alliance: AllianceDep, who: MerchantDep,
                period: PeriodQuery = None) -> PositionView:
    """Your net in a period (default: the open one): positive, the alliance owes you."""
    assert who.merchant_id is not None
    return clearing.position(alliance, merchant_id=who.merchant_id, period=period)


@router.get("/statements/{period}", response_model=StatementOut,
            responses={200: {"content": {"text/csv": {}}}})
def my_statement(period: PeriodPath, alliance: AllianceDep, who: MerchantDep,
                 format: Literal["json", "csv"] = "json") -> Any:
    """Your statement for a period: every counterparty (gross receivable, payable, net),
    every underlying redemption/conversion/refund with its transaction; its keccak-256 and,
    once the operator anchored it, the hash on chain. ``?format=csv`` for a spreadsheet."""
    assert who.merchant_id is not None
    st = statements.statement(alliance, period=period, merchant_id=who.merchant_id)
    if format == "csv":
        return Response(st.to_csv(), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="statement-{period}-'
                                   f'{who.merchant_id}.csv"', "X-Statement-Hash": st.hash})
    return _statement_out(st)


@router.post("/deposits", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def deposit(req: DepositRequest, request: Request, body: BodyDep, alliance: AllianceDep,
            who: MerchantEvenSuspendedDep) -> Response:
    """Pay settlement tokens into escrow for a closed period you owe in (at most what you
    still owe). A suspended merchant may still pay its debts."""
    return queue(request, body, alliance, who, lambda s, mid: clearing.request_deposit(
        alliance, s, merchant_id=mid, period=req.period, amount=req.amount))


@router.post("/offchain-payments", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def confirm_offchain(req: OffChainPaymentRequest, request: Request, body: BodyDep,
                     alliance: AllianceDep, who: MerchantDep) -> Response:
    """Confirm a debtor paid you off chain for a closed period; recorded on chain."""
    return queue(request, body, alliance, who, lambda s, mid: clearing.request_confirm_payment(
        alliance, s, merchant_id=mid, period=req.period, debtor=req.debtor, amount=req.amount))


# ---------------------------------------------------------------------- operator


def _operator(request: Request, body: bytes, alliance: Any, who: Any, status: int,
              action: Any) -> Response:
    def work(_: Session | None) -> tuple[int, Any]:
        return status, action()

    return run_idempotent(request, body, alliance, who, work, in_transaction=False)


@admin_router.get("/periods/{period}", response_model=PeriodView)
def period_detail(period: PeriodPath, alliance: AllianceDep, who: AdminDep) -> Any:
    """Every merchant's position in a period, and its settlement progress once closed."""
    return _period_out(clearing.period_view(alliance, period))


@admin_router.get("/current", response_model=PeriodView)
def current(alliance: AllianceDep, who: AdminDep) -> Any:
    """The open period's positions (they always sum to zero)."""
    return _period_out(clearing.period_view(alliance))


@admin_router.post("/close", response_model=PeriodView)
def close(request: Request, body: BodyDep, alliance: AllianceDep, who: AdminDep) -> Response:
    """Close the open period: every merchant's net is recorded on chain."""
    return _operator(request, body, alliance, who, 200,
                     lambda: _period_out(clearing.close_period(alliance)))


@admin_router.post("/periods/{period}/settle", response_model=PeriodView)
def settle(period: PeriodPath, request: Request, body: BodyDep, alliance: AllianceDep,
           who: AdminDep) -> Response:
    """Pay every creditor what it can claim from escrow now (its net pro rata of what debtors
    paid), at its payout address; 422 when nobody can claim anything."""
    return _operator(request, body, alliance, who, 200,
                     lambda: _period_out(clearing.settle(alliance, period=period)))


@admin_router.post("/periods/{period}/offchain-payments", response_model=PositionView)
def confirm_for_suspended(period: PeriodPath, req: OperatorOffChainPayment, request: Request,
                          body: BodyDep, alliance: AllianceDep, who: AdminDep) -> Response:
    """Record that a debtor paid a suspended creditor off chain (an active creditor confirms
    for itself)."""
    return _operator(request, body, alliance, who, 200, lambda: asdict(
        clearing.confirm_for_suspended(alliance, period=period, debtor=req.debtor,
                                       creditor=req.creditor, amount=req.amount)))


@admin_router.post("/sweep")
def sweep(req: SweepRequest, request: Request, body: BodyDep, alliance: AllianceDep,
          who: AdminDep) -> Response:
    """Send settlement tokens the clearing holds beyond escrow (sent by plain transfer, not
    deposited) to ``to``; escrowed tokens cannot be swept."""
    return _operator(request, body, alliance, who, 200, lambda: {
        "to": req.to, "amount": clearing.sweep_stray(alliance, to=req.to)})


@admin_router.post("/periods/{period}/anchor")
def anchor(period: PeriodPath, request: Request, body: BodyDep, alliance: AllianceDep,
           who: AdminDep) -> Response:
    """Anchor every merchant's statement hash of a closed period on chain."""
    return _operator(request, body, alliance, who, 200, lambda: {"statements": [
        {"merchant_id": st.document["merchant_id"], "hash": st.hash}
        for st in statements.anchor_statements(alliance, period=period)]})


@admin_router.get("/statements/{period}/{merchant_id}", response_model=StatementOut)
def any_statement(period: PeriodPath, merchant_id: MerchantIdPath, alliance: AllianceDep,
                  who: AdminDep) -> StatementOut:
    """Any merchant's statement (the operator's and auditors' view)."""
    return _statement_out(statements.statement(alliance, period=period, merchant_id=merchant_id))


@admin_router.put("/caps/{merchant_id}")
def caps(merchant_id: MerchantIdPath, req: CapsUpdate, alliance: AllianceDep, who: AdminDep
         ) -> dict[str, int]:
    """Set a merchant's liability cap and per-period foreign cap, through the timelock (the
    old caps hold while pending: see /v1/admin/actions). Idempotent by nature."""
    clearing.set_caps(alliance, merchant_id=merchant_id, liability_cap=req.liability_cap,
                      foreign_cap=req.foreign_cap)
    t = alliance.contracts.registry.terms_of(merchant_id)
    return {"merchant_id": merchant_id, "rate": t.rate, "liability_cap": t.liability_cap,
            "foreign_cap": t.foreign_cap}


@admin_router.put("/acceptance")
def acceptance(req: AcceptanceUpdate, alliance: AllianceDep, who: AdminDep) -> dict[str, Any]:
    """Whether a merchant accepts another's points, through the timelock. Idempotent by
    nature."""
    clearing.set_acceptance(alliance, acceptor=req.acceptor,
                            program_merchant=req.program_merchant, accepted=req.accepted)
    return {"acceptor": req.acceptor, "program_merchant": req.program_merchant,
            "accepted": alliance.contracts.registry.accepts(req.acceptor, req.program_merchant)}


@admin_router.post("/settlement-tokens/mint")
def mint(req: MintRequest, request: Request, body: BodyDep, alliance: AllianceDep,
         who: AdminDep) -> Response:
    """Mint settlement tokens (the minter's key) to a merchant against cash received."""
    return _operator(request, body, alliance, who, 200, lambda: {
        "merchant_id": req.merchant_id,
        "balance": clearing.mint_settlement_tokens(alliance, merchant_id=req.merchant_id,
                                                   amount=req.amount)})
