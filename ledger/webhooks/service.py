"""What the API and the CLI call for webhooks: register an endpoint (its secret shown once),
list, delete, resume a paused one, read its delivery log, replay it from an event.

Endpoints belong to one merchant; another merchant's endpoint id is "not found" (nothing
says it exists). A URL is checked by :func:`ledger.webhooks.delivery.validate_url` when it
is registered and again before every delivery (a name may resolve elsewhere later).
"""

from __future__ import annotations

import logging
import secrets as pysecrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ..alliance import Alliance
from ..crypto import fingerprint, new_api_secret
from ..errors import LedgerConflictError, LedgerNotFoundError, LedgerValidationError
from ..store.models import utcnow
from ..types import MerchantId
from . import delivery, repos
from .events import (
    ALL,
    MAX_ENDPOINTS,
    MAX_URL_LENGTH,
    SUBSCRIBABLE,
    DeliveryState,
    EndpointStatus,
)

log = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True)
class EndpointView:
    """An endpoint as its merchant sees it (never its secret)."""

    id: str
    url: str
    events: list[str]
    status: str
    failures: int
    paused_reason: str | None
    paused_at: datetime | None
    created_at: datetime
    pending: int


@dataclass(frozen=True)
class CreatedEndpoint:
    endpoint: EndpointView
    secret: str
    """Shown once: the store keeps it only encrypted with the master key."""


@dataclass(frozen=True)
class DeliveryView:
    """One line of an endpoint's delivery log."""

    event_id: str
    type: str
    block: int
    tx_hash: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    next_at: datetime | None


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryView]
    next_after: str | None
    """The event id to pass as ``after`` for the next page (None: this was the last)."""


def check_url(alliance: Alliance, url: str) -> str:
    """The URL if deliveries may go there under this service's settings."""
    if len(url) > MAX_URL_LENGTH:
        raise LedgerValidationError(f"a webhook URL is at most {MAX_URL_LENGTH} characters",
                                    field="url")
    return delivery.validate_url(url, api_port=alliance.settings.api_port,
                                 allow_private=alliance.settings.webhooks_allow_private)


def _check_events(events: Sequence[str]) -> list[str]:
    if not events:
        raise LedgerValidationError("subscribe to at least one event type", field="events")
    out: list[str] = []
    for e in events:
        if e != ALL and e not in SUBSCRIBABLE:
            raise LedgerValidationError(
                f"unknown event type {e!r}: one of {', '.join(SUBSCRIBABLE)} or {ALL!r}",
                field="events")
        if e not in out:
            out.append(e)
    return out


def view(session: Session, ep: repos.WebhookEndpoint) -> EndpointView:
    return EndpointView(id=ep.id, url=ep.url, events=list(ep.events), status=ep.status,
                        failures=ep.failures, paused_reason=ep.paused_reason,
                        paused_at=ep.paused_at, created_at=ep.created_at,
                        pending=repos.count_pending(session, ep.id))


def create_endpoint(alliance: Alliance, session: Session, *, merchant_id: MerchantId,
                    url: str, events: Sequence[str]) -> CreatedEndpoint:
    """Register an endpoint for the merchant's events of ``events`` from now on."""
    check_url(alliance, url)
    types = _check_events(events)
    if len(repos.endpoints_of(session, merchant_id)) >= MAX_ENDPOINTS:
        raise LedgerConflictError(f"a merchant has at most {MAX_ENDPOINTS} webhook endpoints",
                                  merchant_id=merchant_id)
    secret = SECRET_PREFIX + new_api_secret()
    ep = repos.WebhookEndpoint(
        id="wh_" + pysecrets.token_hex(8), merchant_id=merchant_id, url=url, events=types,
        status=EndpointStatus.ACTIVE, secret_enc=alliance.master_key.encrypt(secret.encode()),
        secret_fingerprint=fingerprint(secret), failures=0, created_at=utcnow())
    session.add(ep)
    session.flush()
    log.info("webhook %s registered for merchant %d (%s)", ep.id, merchant_id,
             ", ".join(types))
    return CreatedEndpoint(view(session, ep), secret)


def _own(session: Session, merchant_id: int, endpoint_id: str) -> repos.WebhookEndpoint:
    ep = repos.endpoint(session, endpoint_id)
    if ep is None or ep.merchant_id != merchant_id or ep.status == EndpointStatus.DELETED:
        raise LedgerNotFoundError(f"no webhook {endpoint_id}", webhook_id=endpoint_id)
    return ep


def list_endpoints(session: Session, *, merchant_id: MerchantId) -> list[EndpointView]:
    return [view(session, ep) for ep in repos.endpoints_of(session, merchant_id)]


def get_endpoint(session: Session, *, merchant_id: MerchantId, endpoint_id: str
                 ) -> EndpointView:
    return view(session, _own(session, merchant_id, endpoint_id))


def delete_endpoint(session: Session, *, merchant_id: MerchantId, endpoint_id: str
                    ) -> EndpointView:
    """Stop delivering to an endpoint, for good (its log stays; nothing more is sent)."""
    ep = _own(session, merchant_id, endpoint_id)
    ep.status = EndpointStatus.DELETED
    ep.deleted_at = utcnow()
    log.info("webhook %s of merchant %d deleted", ep.id, merchant_id)
    return view(session, ep)


def disable_endpoint(session: Session, *, merchant_id: MerchantId, endpoint_id: str,
                     reason: str = "disabled") -> EndpointView:
    """Stop delivering to an endpoint until it is resumed: it is paused as after repeated
    failures (its events still queue, in order), with ``reason`` for its merchant to read."""
    ep = _own(session, merchant_id, endpoint_id)
    if ep.status != EndpointStatus.PAUSED:
        ep.status = EndpointStatus.PAUSED
        ep.paused_at = utcnow()
    ep.paused_reason = reason[:200]
    log.info("webhook %s of merchant %d disabled (%s)", ep.id, merchant_id, ep.paused_reason)
    return view(session, ep)


def resume_endpoint(session: Session, *, merchant_id: MerchantId, endpoint_id: str
                    ) -> EndpointView:
    """Deliver again to a paused endpoint, from its oldest undelivered event, at once."""
    ep = _own(session, merchant_id, endpoint_id)
    ep.status = EndpointStatus.ACTIVE
    ep.failures = 0
    ep.paused_reason = None
    ep.paused_at = None
    head = repos.head_pending(session, ep.id)
    if head is not None:
        head[0].next_at = utcnow()
    log.info("webhook %s of merchant %d resumed", ep.id, merchant_id)
    return view(session, ep)


def deliveries(session: Session, *, merchant_id: MerchantId, endpoint_id: str,
               after: str | None = None, limit: int = 100) -> DeliveryPage:
    """An endpoint's delivery log in event order, after the event ``after`` (a page)."""
    ep = _own(session, merchant_id, endpoint_id)
    after_seq = 0
    if after is not None:
        ev = repos.event_by_id(session, merchant_id, after)
        if ev is None:
            raise LedgerNotFoundError(f"no event {after}", event_id=after)
        after_seq = ev.seq
    rows = repos.log_page(session, ep.id, after_seq=after_seq, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    out = [DeliveryView(event_id=ev.id, type=ev.type, block=ev.block_number,
                        tx_hash=ev.tx_hash, state=d.state, attempts=d.attempts,
                        last_status=d.last_status, last_error=d.last_error,
                        delivered_at=d.delivered_at,
                        next_at=d.next_at if d.state == DeliveryState.PENDING else None)
           for d, ev in rows]
    return DeliveryPage(out, out[-1].event_id if more and out else None)


def replay(session: Session, *, merchant_id: MerchantId, endpoint_id: str,
           from_event_id: str) -> int:
    """Queue again every event of the endpoint from ``from_event_id`` on (delivered ones
    included, in order; also those of its types it has no delivery of yet, such as events
    from before it subscribed to them); gives how many are queued."""
    ep = _own(session, merchant_id, endpoint_id)
    ev = repos.event_by_id(session, merchant_id, from_event_id)
    if ev is None:
        raise LedgerNotFoundError(f"no event {from_event_id}", event_id=from_event_id)
    now = utcnow()
    have = repos.delivered_seqs(session, ep.id, ev.seq)
    missing = [e for e in repos.merchant_events_from(session, merchant_id, ev.seq)
               if e.seq not in have and repos.wants(ep, e.type)]
    for e in missing:
        session.add(repos.WebhookDelivery(endpoint_id=ep.id, event_seq=e.seq, event_id=e.id,
                                          state=DeliveryState.PENDING, attempts=0,
                                          next_at=now))
    session.flush()
    queued = repos.requeue_from(session, ep.id, ev.seq, now)
    log.info("webhook %s of merchant %d replays %d events from %s", ep.id, merchant_id,
             queued, from_event_id)
    return queued
