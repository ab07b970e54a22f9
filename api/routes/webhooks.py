"""Webhooks: a merchant registers endpoints for event types, reads each one's delivery log,
replays it from an event, resumes one the service paused after repeated failures, deletes
one. Deliveries themselves are the webhook worker's (``ledger.webhooks.worker``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from ledger.webhooks import service as webhooks

from ..deps import AllianceDep, BodyDep, MerchantDep
from ..idempotency import run_idempotent
from ..schemas.webhooks import (
    AfterQuery,
    DeliveriesOut,
    LimitQuery,
    ReplayOut,
    ReplayRequest,
    WebhookCreatedOut,
    WebhookCreateRequest,
    WebhookIdPath,
    WebhookOut,
    WebhooksOut,
)

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("", status_code=201, response_model=WebhookCreatedOut)
def create_webhook(req: WebhookCreateRequest, request: Request, body: BodyDep,
                   alliance: AllianceDep, who: MerchantDep) -> Response:
    """Register an endpoint for your events of the given types, from now on. The answer
    holds its signing secret, once (a retry with the same Idempotency-Key replays it)."""

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None and who.merchant_id is not None
        made = webhooks.create_endpoint(alliance, s, merchant_id=who.merchant_id,
                                        url=req.url, events=req.events)
        return 201, {**asdict(made.endpoint), "secret": made.secret}

    return run_idempotent(request, body, alliance, who, work)


@router.get("", response_model=WebhooksOut)
def list_webhooks(alliance: AllianceDep, who: MerchantDep) -> dict[str, Any]:
    """Your endpoints (deleted ones left out), without secrets."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return {"webhooks": [asdict(v) for v in
                             webhooks.list_endpoints(s, merchant_id=who.merchant_id)]}


@router.get("/{webhook_id}", response_model=WebhookOut)
def get_webhook(webhook_id: WebhookIdPath, alliance: AllianceDep,
                who: MerchantDep) -> dict[str, Any]:
    """One of your endpoints: its status and how many deliveries wait."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        return asdict(webhooks.get_endpoint(s, merchant_id=who.merchant_id,
                                            endpoint_id=webhook_id))


@router.delete("/{webhook_id}", response_model=WebhookOut)
def delete_webhook(webhook_id: WebhookIdPath, alliance: AllianceDep,
                   who: MerchantDep) -> dict[str, Any]:
    """Stop delivering to one of your endpoints, for good."""
    assert who.merchant_id is not None
    with alliance.store.session() as s:
        return asdict(webhooks.delete_endpoint(s, merchant_id=who.merchant_id,
                                               endpoint_id=webhook_id))


@router.post("/{webhook_id}/resume", response_model=WebhookOut)
def resume_webhook(webhook_id: WebhookIdPath, request: Request, body: BodyDep,
                   alliance: AllianceDep, who: MerchantDep) -> Response:
    """Deliver again to an endpoint that was paused, from its oldest undelivered event."""

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None and who.merchant_id is not None
        return 200, asdict(webhooks.resume_endpoint(s, merchant_id=who.merchant_id,
                                                    endpoint_id=webhook_id))

    return run_idempotent(request, body, alliance, who, work)


@router.get("/{webhook_id}/deliveries", response_model=DeliveriesOut)
def list_deliveries(webhook_id: WebhookIdPath, alliance: AllianceDep, who: MerchantDep,
                    after: AfterQuery = None, limit: LimitQuery = 100) -> dict[str, Any]:
    """The endpoint's delivery log in event order: each event's id, type, block, attempts,
    last answer, when delivered or when the next attempt is due."""
    assert who.merchant_id is not None
    with alliance.store.read_session() as s:
        page = webhooks.deliveries(s, merchant_id=who.merchant_id, endpoint_id=webhook_id,
                                   after=after, limit=limit)
        return asdict(page)


@router.post("/{webhook_id}/replay", response_model=ReplayOut)
def replay_webhook(webhook_id: WebhookIdPath, req: ReplayRequest, request: Request,
                   body: BodyDep, alliance: AllianceDep, who: MerchantDep) -> Response:
    """Queue the endpoint's events again from ``from_event_id`` on, in order (delivered
    ones too: receivers de-duplicate by event id)."""

    def work(s: Session | None) -> tuple[int, Any]:
        assert s is not None and who.merchant_id is not None
        return 200, {"queued": webhooks.replay(s, merchant_id=who.merchant_id,
                                               endpoint_id=webhook_id,
                                               from_event_id=req.from_event_id)}

    return run_idempotent(request, body, alliance, who, work)
