"""Points: issue, batch issue, reverse, redeem (own or another merchant's points), convert,
refund a redemption. Each queues outbox operations (202)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ledger.alliance import Alliance
from ledger.outbox.views import OperationView
from ledger.points import service as points
from ledger.store.db import note_timing
from ledger.types import MerchantId

from ..auth import Principal
from ..deps import AllianceDep, BodyDep, MerchantQueueDep, QueueingDep
from ..idempotency import run_idempotent
from ..schemas.common import OperationOut, OperationsOut
from ..schemas.points import (
    CancelSignaturesRequest,
    ConvertRequest,
    IssueBatchRequest,
    IssueRequest,
    RedeemBatchRequest,
    RedeemRequest,
    RefundRedemptionRequest,
    ReverseRequest,
)

router = APIRouter(prefix="/v1/points", tags=["points"])

# Up to 1,000 lines of a few hundred bytes each (other routes take the default 64 KiB).
BATCH_MAX_BODY = 1024 * 1024

# ALLIANCE_WRITER_TIMING set: the batch routes record their phases (ledger.store.db).
TIMING = bool(os.environ.get("ALLIANCE_WRITER_TIMING"))

ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": OperationOut, "description": "queued; poll /v1/operations/{id}"}}


def operation_out(view: OperationView) -> dict[str, Any]:
    # Read from the view's attributes: ``asdict`` deep-copied every field first (its two
    # datetimes by pickling protocol), 0.15 of 0.18 ms here on every 202.
    return OperationOut.model_validate(view, from_attributes=True).model_dump(mode="json")


def queue(request: Request, body: bytes, alliance: Alliance, who: Principal,
          call: Callable[[Session, MerchantId], OperationView | list[OperationView]]) -> Response:
    """Queue operations for the calling merchant, idempotently; 202 with their status (403
    ``merchant-suspended`` for a suspended merchant, checked in the same transaction)."""
    mid = who.merchant_id
    assert mid is not None

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None
        result = call(s, mid)
        if isinstance(result, list):
            return 202, {"operations": [operation_out(v) for v in result]}
        return 202, operation_out(result)

    # The suspension check runs in the request's own transaction (see merchant_queueing).
    return run_idempotent(request, body, alliance, who, work, active_merchant=mid)


@router.post("/issue", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def issue(req: IssueRequest, request: Request, q: QueueingDep) -> Response:
    """Issue points for one of your orders (the order id can never issue twice)."""
    alliance = q.alliance
    return queue(request, q.body, alliance, q.principal, lambda s, mid: points.request_issue(
        alliance, s, merchant_id=mid, member=req.member, member_id=req.member_id,
        points=req.points, order_id=req.order_id, release_at=req.release_at,
        spend=req.spend))


@router.post("/issue-batch", status_code=202, responses=ACCEPTED, response_model=OperationOut,
             max_body_size=BATCH_MAX_BODY)
def issue_batch(req: IssueBatchRequest, request: Request, body: BodyDep, alliance: AllianceDep,
                who: MerchantQueueDep) -> Response:
    """Issue many lines as one operation: one transaction, all lines or none."""
    t0 = time.perf_counter() if TIMING else 0.0
    lines = [points.IssueLine(points=i.points, order_id=i.order_id, member=i.member,
                              member_id=i.member_id, release_at=i.release_at,
                              spend=i.spend)
             for i in req.items]
    assert who.merchant_id is not None
    # Checked before the write transaction (bounds, checksums, order references, the
    # payload's JSON); what the check found, a refusal included, is queued or raised in the
    # request's own transaction, after the suspension check and the idempotency claim.
    checked = points.check_issue_batch(alliance, merchant_id=who.merchant_id, items=lines)
    if not TIMING:
        return queue(request, body, alliance, who,
                     lambda s, mid: points.queue_issues(alliance, s, checked))
    # ALLIANCE_WRITER_TIMING: the checks, the work under the writer and the whole handler.
    t1 = time.perf_counter()

    def work(s: Session, mid: MerchantId) -> OperationView:
        w0 = time.perf_counter()
        try:
            return points.queue_issues(alliance, s, checked)
        finally:
            note_timing("batch work", w0, time.perf_counter() - w0, 0.0)

    try:
        return queue(request, body, alliance, who, work)
    finally:
        note_timing("batch handler", t0, t1 - t0, time.perf_counter() - t0)


@router.post("/reverse", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def reverse(req: ReverseRequest, request: Request, body: BodyDep, alliance: AllianceDep,
            who: MerchantQueueDep) -> Response:
    """Take back points one of your orders issued (a refund), up to what it has left."""
    return queue(request, body, alliance, who, lambda s, mid: points.request_reverse(
        alliance, s, merchant_id=mid, order_id=req.order_id, points=req.points))


@router.post("/redeem", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def redeem(req: RedeemRequest, request: Request, body: BodyDep, alliance: AllianceDep,
           who: MerchantQueueDep) -> Response:
    """Relay a member's signed redemption, of your points or (``program_merchant_id``)
    another merchant's; the member pays no gas; foreign points clear in the same transaction."""
    return queue(request, body, alliance, who, lambda s, mid: points.request_redeem(
        alliance, s, merchant_id=mid, member=req.member, points=req.points,
        order_id=req.order_id, nonce=req.nonce, deadline=req.deadline,
        signature=req.signature, program_merchant_id=req.program_merchant_id))


@router.post("/redeem-batch", status_code=202, response_model=OperationsOut,
             max_body_size=BATCH_MAX_BODY,
             responses={202: {"model": OperationsOut}})
def redeem_batch(req: RedeemBatchRequest, request: Request, body: BodyDep,
                 alliance: AllianceDep, who: MerchantQueueDep) -> Response:
    """Relay many signed redemptions: one operation (one transaction) per program spent."""
    items = [points.SignedRedemption(i.member, i.points, i.order_id, i.nonce, i.deadline,
                                     i.signature, i.program_merchant_id) for i in req.items]
    assert who.merchant_id is not None
    # Checked before the write transaction (signatures, the chain's reads); what the check
    # found, a refusal included, is queued or raised in the request's own transaction, after
    # the suspension check and the idempotency claim, as when it was checked there.
    checked = points.check_redeem_batch(alliance, merchant_id=who.merchant_id, items=items)
    return queue(request, body, alliance, who,
                 lambda s, mid: points.queue_redemptions(alliance, s, checked))


@router.post("/convert", status_code=202, responses=ACCEPTED, response_model=OperationOut)
def convert(req: ConvertRequest, request: Request, body: BodyDep, alliance: AllianceDep,
            who: MerchantQueueDep) -> Response:
    """Relay a member's signed conversion of another merchant's points into yours."""
    return queue(request, body, alliance, who, lambda s, mid: points.request_convert(
        alliance, s, merchant_id=mid, member=req.member, from_merchant_id=req.from_merchant_id,
        points=req.points, min_out=req.min_out, order_id=req.order_id, nonce=req.nonce,
        deadline=req.deadline, signature=req.signature))


@router.post("/refund-redemption", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def refund_redemption(req: RefundRedemptionRequest, request: Request, body: BodyDep,
                      alliance: AllianceDep, who: MerchantQueueDep) -> Response:
    """Give back points a redemption took for one of your orders; cleared value moves back."""
    return queue(request, body, alliance, who, lambda s, mid: points.request_refund_redemption(
        alliance, s, merchant_id=mid, order_id=req.order_id, points=req.points,
        program_merchant_id=req.program_merchant_id))


@router.post("/cancel-signatures", status_code=202, responses=ACCEPTED,
             response_model=OperationOut)
def cancel_signatures(req: CancelSignaturesRequest, request: Request, body: BodyDep,
                      alliance: AllianceDep, who: MerchantQueueDep) -> Response:
    """Relay a member's signed cancellation of unused signature nonces (a payment abandoned
    before it landed): signatures with those nonces can never be used."""
    return queue(request, body, alliance, who, lambda s, mid: points.request_cancel_signatures(
        alliance, s, merchant_id=mid, member=req.member, word_pos=req.word_pos,
        mask=int(req.mask, 16), deadline=req.deadline, signature=req.signature,
        program_merchant_id=req.program_merchant_id))
