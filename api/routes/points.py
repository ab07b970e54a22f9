"""Points: issue, batch issue, reverse, redeem (own or another merchant's points), convert,
refund a redemption. Each queues outbox operations (202)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request, Response
from sqlalchemy.orm import Session
from starlette.types import Message, Send

from ledger.alliance import Alliance
from ledger.errors import LedgerError
from ledger.outbox.views import OperationView
from ledger.points import kinds
from ledger.points import service as points
from ledger.points.service import LeanIssue
from ledger.store.db import TIMING, note_timing
from ledger.store.models import OperationStatus, utcnow
from ledger.store.repos import MAX_GROUP, QueuedRequest, purge_due
from ledger.types import MerchantId

from ..auth import Principal
from ..deps import AllianceDep, BodyDep, MerchantQueueDep, QueueingDep
from ..errors import ledger_response
from ..idempotency import (
    fingerprint_of,
    key_is_valid,
    record_ttl,
    run_idempotent,
    seal,
    url_path,
)
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


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": OperationOut, "description": "queued; poll /v1/operations/{id}"}}


# Threads of a process that run the lean issue's one statement (each holds a pooled
# connection only for its round trip; with anyio's 40 the engine's 60 are never all taken).
LEAN_THREADS = 16
_lean_pool: ThreadPoolExecutor | None = None
_lean_pool_lock = threading.Lock()
T = TypeVar("T")


async def in_lean_thread(func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` in one of the process's :data:`LEAN_THREADS` threads, awaited on the
    event loop. Not anyio's ``to_thread``: its hop costs ~75 us of CPU a call (a capacity
    limiter, a cancel scope, a ``Condition`` per handover; ~27% of an API process's busy
    samples on the issue path under load, py-spy) against ~44 us for the executor's, which
    hands over through a ``SimpleQueue``. A cancelled caller still waits for ``func`` to end
    (then the cancellation goes on), as under ``to_thread``: the key's in-flight slot the
    caller holds is not given back while its statement still runs."""
    global _lean_pool
    pool = _lean_pool
    if pool is None:
        with _lean_pool_lock:
            if _lean_pool is None:
                _lean_pool = ThreadPoolExecutor(LEAN_THREADS, thread_name_prefix="lean-issue")
            pool = _lean_pool
    fut = asyncio.get_running_loop().run_in_executor(pool, func, *args)
    return await _through_cancellation(fut)


async def _through_cancellation(fut: asyncio.Future[T]) -> T:
    """``fut``'s result; a cancelled caller waits for it first, then is cancelled."""
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(fut)
        except asyncio.CancelledError:
            if fut.done():
                raise
            cancelled = True  # the thread runs on: wait for it, then be cancelled
            continue
        if cancelled:
            raise asyncio.CancelledError
        return result


# A group commit of the lean issue's statement, per merchant and event loop: while one
# statement of a merchant's requests is in flight, the merchant's next requests wait here,
# and whatever waits when it ends goes next, in one statement and one transaction (up to
# MAX_GROUP; ledger.store.repos.queue_merchant_requests). No wait of its own: a request that
# finds no statement in flight goes at once, alone. Per merchant, so that one merchant's
# statement held in PostgreSQL (its row locked) holds no other merchant's requests; each
# merchant's requests in flight are still those its key's cap let through (api.guard).
@dataclass
class _LeanGroup:
    pending: list[tuple[LeanIssue, QueuedRequest, asyncio.Future[bool]]] = field(
        default_factory=list)
    writer: asyncio.Task[None] | None = None
    in_flight: int = 0  # requests in the statement now running


_lean_groups: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, _LeanGroup]] = (
    weakref.WeakKeyDictionary())


async def queue_in_group(alliance: Alliance, issue: LeanIssue, queued: QueuedRequest) -> bool:
    """:func:`ledger.points.service.queue_lean_issues`' answer for one request, written with
    the merchant's other requests pending at that moment (see :class:`_LeanGroup`). A
    cancelled caller still waits for its request's statement to end, as
    :func:`in_lean_thread`'s caller does."""
    loop = asyncio.get_running_loop()
    groups = _lean_groups.get(loop)
    if groups is None:
        groups = _lean_groups[loop] = {}
    group = groups.get(queued.merchant_id)
    if group is None:
        group = groups[queued.merchant_id] = _LeanGroup()
    fut: asyncio.Future[bool] = loop.create_future()
    group.pending.append((issue, queued, fut))
    if group.writer is None:
        group.writer = loop.create_task(_write_groups(alliance, group))
    return await _through_cancellation(fut)


async def _write_groups(alliance: Alliance, group: _LeanGroup) -> None:
    """Write ``group``'s pending requests, a statement at a time, until none is left."""
    batch: list[tuple[LeanIssue, QueuedRequest, asyncio.Future[bool]]] = []
    try:
        while group.pending:
            batch = group.pending[:MAX_GROUP]
            del group.pending[:MAX_GROUP]
            group.in_flight = len(batch)
            results: list[bool | Exception]
            try:
                results = await in_lean_thread(points.queue_lean_issues, alliance,
                                               [(i, q) for i, q, _ in batch])
            except Exception as exc:  # the store down (its 503) or a bug: every request's
                results = [exc] * len(batch)
            finally:
                group.in_flight = 0
            for (_, _, fut), result in zip(batch, results, strict=True):
                if fut.done():
                    continue
                if isinstance(result, Exception):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)
            batch = []
    finally:
        group.writer = None
        # Only if this task itself was cancelled (the loop closing): nobody waits for ever.
        for _, _, fut in batch + group.pending:
            if not fut.done():
                fut.cancel()
        if batch:
            group.pending.clear()


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


async def issue_lean(api: FastAPI, scope: MutableMapping[str, Any], body: bytes,
                     send: Send) -> bool:
    """:func:`issue` on PostgreSQL for the common request (a wallet's line, no spend, a
    body that parses, a new key, an active merchant), called by the request guard after it
    authenticated the request on its raw bytes, within the key's in-flight cap: the body
    parsed once, no dependency solving, and the replay record, the idempotency record (the
    response already in it) and the operation written by one statement and committed in the
    same round trip (:func:`ledger.store.repos.queue_merchant_requests`, with the
    merchant's other requests pending: :func:`queue_in_group`).

    False: declined, nothing written; the request then takes :func:`issue` as before, which
    gives every other answer (a bad body, a refusal, a replayed signature or response, a
    reused key, a suspended merchant, a purge due) exactly as it always has."""
    alliance: Alliance = api.state.alliance
    dialect = alliance.store.engine.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg" or purge_due():
        return False
    state = scope.get("state") or {}
    who, guard = state.get("principal"), state.get("replay_guard")
    if (not isinstance(who, Principal) or who.role != "merchant" or who.merchant_id is None
            or guard is None):
        return False
    key = ctype = None
    for name, value in scope.get("headers", ()):
        if name == b"idempotency-key" and key is None:
            key = value.decode("latin-1")
        elif name == b"content-type" and ctype is None:
            ctype = value.decode("latin-1")
    if (not key or not key_is_valid(key) or ctype is None
            or ctype.split(";")[0].strip().lower() != "application/json"):
        return False
    try:
        req = IssueRequest.model_validate(json.loads(body))
    except Exception:  # any bad body: the route answers it (400, 422) as FastAPI does
        return False
    mid = who.merchant_id
    issue = points.lean_issue(alliance, merchant_id=mid, member=req.member,
                              member_id=req.member_id, points=req.points,
                              order_id=req.order_id, release_at=req.release_at,
                              spend=req.spend)
    if issue is None:
        return False
    now = utcnow()
    op_id = str(uuid.uuid4())
    view = OperationView(id=op_id, kind=kinds.ISSUE.name, status=OperationStatus.QUEUED,
                         merchant_id=mid, items=1, tx_hash=None, block_number=None,
                         error_code=None, error_message=None, created_at=now, updated_at=now)
    text = json.dumps(operation_out(view), default=str, separators=(",", ":"))
    key_id, signature, _ = guard
    queued = QueuedRequest(
        merchant_id=mid, key_id=key_id, signature=signature, principal=who.key_id, key=key,
        fingerprint=fingerprint_of(str(scope["method"]), url_path(scope), body),
        ttl=record_ttl(alliance), status_code=202,
        body=seal(alliance, text), content_type="application/json", operation_id=op_id,
        kind=kinds.ISSUE.name, payload_json=json.dumps(issue.data), lines=1, now=now)
    try:
        done = await queue_in_group(alliance, issue, queued)
    except LedgerError as exc:  # the store down: its 503, as the route gives it
        await ledger_response(exc)(scope, _no_receive, send)
        return True
    if not done:
        return False
    await Response(text, status_code=202, media_type="application/json")(
        scope, _no_receive, send)
    return True


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


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
