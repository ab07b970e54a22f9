"""Points: issue, batch issue, reverse, redeem. Each queues one outbox operation (202)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ledger import points
from ledger.points import OperationView

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


@router.post("/issue", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def issue(req: IssueRequest, request: Request, body: BodyDep, alliance: AllianceDep,
          who: MerchantDep) -> Response:
    """Issue points for one of your orders (the order id can never issue twice)."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        return 202, operation_out(points.request_issue(
            alliance, s, merchant_id=mid, member=req.member,
            member_id=req.member_id, points=req.points, order_id=req.order_id,
            release_at=req.release_at))

    return run_idempotent(request, body, alliance, who, work)


@router.post("/issue-batch", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def issue_batch(req: IssueBatchRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                who: MerchantDep) -> Response:
    """Issue many lines as one operation: one transaction, all lines or none."""
    mid = who.merchant_id
    assert mid is not None
    lines = [points.IssueLine(points=i.points, order_id=i.order_id, member=i.member,
                              member_id=i.member_id, release_at=i.release_at)
             for i in req.items]

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        return 202, operation_out(points.request_issue_batch(
            alliance, s, merchant_id=mid, items=lines))

    return run_idempotent(request, body, alliance, who, work)


@router.post("/reverse", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def reverse(req: ReverseRequest, request: Request, body: BodyDep, alliance: AllianceDep,
            who: MerchantDep) -> Response:
    """Take back points one of your orders issued (a refund), up to what it has left."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        return 202, operation_out(points.request_reverse(
            alliance, s, merchant_id=mid, order_id=req.order_id,
            points=req.points))

    return run_idempotent(request, body, alliance, who, work)


@router.post("/redeem", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def redeem(req: RedeemRequest, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantDep) -> Response:
    """Relay a member's signed redemption; the member pays no gas."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        return 202, operation_out(points.request_redeem(
            alliance, s, merchant_id=mid, member=req.member, points=req.points,
            order_id=req.order_id, nonce=req.nonce, deadline=req.deadline,
            signature=req.signature))

    return run_idempotent(request, body, alliance, who, work)
