"""Points: issue, batch issue, reverse, redeem. Each queues one outbox operation (202)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ledger import points
from ledger.alliance import Alliance
from ledger.points import OperationView

from ..auth import Principal
from ..deps import AllianceDep, BodyDep, MerchantDep
from ..idempotency import run_idempotent
from ..schemas import (
    IssueBatchRequest,
    IssueRequest,
    OperationOut,
    RedeemRequest,
    ReverseRequest,
)

router = APIRouter(prefix="/v1/points", tags=["points"])

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": OperationOut, "description": "queued; poll /v1/operations/{id}"}}


def operation_out(view: OperationView) -> dict[str, Any]:
    return OperationOut.model_validate(asdict(view)).model_dump(mode="json")


def _queue(request: Request, body: bytes, alliance: Alliance, who: Principal,
           call: Callable[[Session, int], OperationView]) -> Response:
    """Queue one operation for the calling merchant, idempotently; 202 with its status."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        return 202, operation_out(call(s, mid))

    return run_idempotent(request, body, alliance, who, work)


@router.post("/issue", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def issue(req: IssueRequest, request: Request, body: BodyDep, alliance: AllianceDep,
          who: MerchantDep) -> Response:
    """Issue points for one of your orders (the order id can never issue twice)."""
    return _queue(request, body, alliance, who, lambda s, mid: points.request_issue(
        alliance, s, merchant_id=mid, member=req.member, member_id=req.member_id,
        points=req.points, order_id=req.order_id, release_at=req.release_at))


@router.post("/issue-batch", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def issue_batch(req: IssueBatchRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                who: MerchantDep) -> Response:
    """Issue many lines as one operation: one transaction, all lines or none."""
    lines = [points.IssueLine(points=i.points, order_id=i.order_id, member=i.member,
                              member_id=i.member_id, release_at=i.release_at)
             for i in req.items]
    return _queue(request, body, alliance, who, lambda s, mid: points.request_issue_batch(
        alliance, s, merchant_id=mid, items=lines))


@router.post("/reverse", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def reverse(req: ReverseRequest, request: Request, body: BodyDep, alliance: AllianceDep,
            who: MerchantDep) -> Response:
    """Take back points one of your orders issued (a refund), up to what it has left."""
    return _queue(request, body, alliance, who, lambda s, mid: points.request_reverse(
        alliance, s, merchant_id=mid, order_id=req.order_id, points=req.points))


@router.post("/redeem", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def redeem(req: RedeemRequest, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantDep) -> Response:
    """Relay a member's signed redemption; the member pays no gas."""
    return _queue(request, body, alliance, who, lambda s, mid: points.request_redeem(
        alliance, s, merchant_id=mid, member=req.member, points=req.points,
        order_id=req.order_id, nonce=req.nonce, deadline=req.deadline,
        signature=req.signature))
