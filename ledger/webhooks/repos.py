"""The webhook tables: endpoints, events (one per merchant and chain event, in chain order)
and the delivery log (one row per event and endpoint)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from ..store.models import WebhookDelivery, WebhookEndpoint, WebhookEvent
from ..store.tables import table_of
from .events import ALL, DeliveryState, EndpointStatus, EventType

__all__ = ["WebhookDelivery", "WebhookEndpoint", "WebhookEvent"]


def endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id)


def endpoints_of(session: Session, merchant_id: int) -> list[WebhookEndpoint]:
    """A merchant's endpoints that are not deleted, oldest first."""
    return list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id,
                                      WebhookEndpoint.status != EndpointStatus.DELETED)
        .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def live_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Every endpoint not deleted (paused ones still collect their events)."""
    return list(session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.status != EndpointStatus.DELETED)))


def active_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).where(
        WebhookEndpoint.status == EndpointStatus.ACTIVE)))


def wants(ep: WebhookEndpoint, type_: str) -> bool:
    return type_ in ep.events or (ALL in ep.events and type_ != EventType.EVENT_REVERTED)


def event_by_id(session: Session, merchant_id: int, event_id: str) -> WebhookEvent | None:
    return session.scalars(select(WebhookEvent).where(
        WebhookEvent.id == event_id, WebhookEvent.merchant_id == merchant_id)).first()


def ids_like(session: Session, base: str) -> dict[str, bool]:
    """Ids of the events whose id starts with ``base`` (the same log for the same merchant,
    written again after a reorg), and whether each was reverted."""
    # A range on the unique index ("." < "/"): LIKE would scan the table on SQLite.
    rows = session.execute(select(WebhookEvent.id, WebhookEvent.reverted).where(
        WebhookEvent.id >= base, WebhookEvent.id < base + "/"))
    # base itself and base.2, base.3 ... (not base.reverted, the notice of one of them)
    return {i: bool(r) for i, r in rows
            if i == base or i.removeprefix(base + ".").isdigit()}


# Ids per IN (...) query: well under SQLite's and PostgreSQL's bound parameter limits.
_IN_CHUNK = 500


def existing_ids(session: Session, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are ids of stored events (one query per 500 ids: the indexer asks
    for a whole chunk of blocks' events at once)."""
    found: set[str] = set()
    unique = sorted(set(ids))
    for i in range(0, len(unique), _IN_CHUNK):
        found.update(session.scalars(select(WebhookEvent.id).where(
            WebhookEvent.id.in_(unique[i:i + _IN_CHUNK]))))
    return found


def add_event(session: Session, row: dict[str, Any], endpoints: Sequence[WebhookEndpoint],
              now: datetime) -> int:
    """Insert one event and a pending delivery of it to each of ``endpoints``; its seq."""
    return add_events(session, [(row, endpoints)], now)[0]


def add_events(session: Session,
               rows: Sequence[tuple[dict[str, Any], Sequence[WebhookEndpoint]]],
               now: datetime) -> list[int]:
    """Insert events in order (their ``seq`` follows it), each with a pending delivery to
    each of its endpoints, as two bulk INSERTs (no ORM object per row: the indexer writes a
    whole block's events at once); gives their seqs in order."""
    if not rows:
        return []
    session.flush()  # anything pending first: the seqs follow what the session holds
    # Core statements on the tables, not the ORM's bulk insert of the classes: the ORM
    # builds an insert command per row (a third of a follower round under the points
    # benchmark's load went there).
    seqs = list(session.connection().scalars(
        insert(table_of(WebhookEvent)).returning(table_of(WebhookEvent).c.seq,
                                                 sort_by_parameter_order=True),
        [{"reverted": False, "created_at": now, **row} for row, _ in rows]))
    deliveries = [{"endpoint_id": ep.id, "event_seq": seq, "event_id": row["id"],
                   "state": DeliveryState.PENDING.value, "attempts": 0, "next_at": now}
                  for seq, (row, endpoints) in zip(seqs, rows, strict=True)
                  for ep in endpoints]
    if deliveries:
        session.connection().execute(insert(table_of(WebhookDelivery)), deliveries)
    return seqs


def events_after(session: Session, after_block: int) -> list[WebhookEvent]:
    """Events of blocks after ``after_block`` a reorg may undo (reverted notices excluded:
    they are never withdrawn), in the order they were written."""
    return list(session.scalars(select(WebhookEvent).where(
        WebhookEvent.block_number > after_block, WebhookEvent.reverted.is_(False),
        WebhookEvent.type != EventType.EVENT_REVERTED).order_by(WebhookEvent.seq)))


def deliveries_of_event(session: Session, seq: int) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).where(
        WebhookDelivery.event_seq == seq)))


def drop_event(session: Session, ev: WebhookEvent) -> None:
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.event_seq == ev.seq))
    session.delete(ev)


def head_pending(session: Session, endpoint_id: str) -> tuple[WebhookDelivery, WebhookEvent] | None:
    """An endpoint's oldest undelivered delivery and its event (deliveries go in order: the
    next one waits for this one)."""
    rows = pending(session, endpoint_id, 1)
    return rows[0] if rows else None


def pending(session: Session, endpoint_id: str, limit: int
            ) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    """An endpoint's oldest ``limit`` undelivered deliveries with their events, in order."""
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint_id,
               WebhookDelivery.state == DeliveryState.PENDING)
        .order_by(WebhookDelivery.event_seq).limit(limit)).all()
    return [(r[0], r[1]) for r in rows]


def delivery(session: Session, endpoint_id: str, seq: int) -> WebhookDelivery | None:
    return session.get(WebhookDelivery, (endpoint_id, seq))


def log_page(session: Session, endpoint_id: str, *, after_seq: int, limit: int
             ) -> list[tuple[WebhookDelivery, WebhookEvent]]:
    rows = session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.seq == WebhookDelivery.event_seq)
        .where(WebhookDelivery.endpoint_id == endpoint_id,
               WebhookDelivery.event_seq > after_seq)
        .order_by(WebhookDelivery.event_seq).limit(limit)).all()
    return [(r[0], r[1]) for r in rows]


def requeue_from(session: Session, endpoint_id: str, from_seq: int, now: datetime) -> int:
    """Every delivery of the endpoint from ``from_seq`` on pending again, due now."""
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id,
               WebhookDelivery.event_seq >= from_seq,
               WebhookDelivery.state != DeliveryState.WITHDRAWN)
        .values(state=DeliveryState.PENDING, next_at=now))
    return int(getattr(result, "rowcount", 0) or 0)


def merchant_events_from(session: Session, merchant_id: int, from_seq: int
                         ) -> list[WebhookEvent]:
    return list(session.scalars(select(WebhookEvent).where(
        WebhookEvent.merchant_id == merchant_id, WebhookEvent.seq >= from_seq,
        WebhookEvent.reverted.is_(False)).order_by(WebhookEvent.seq)))


def delivered_seqs(session: Session, endpoint_id: str, from_seq: int) -> set[int]:
    return set(session.scalars(select(WebhookDelivery.event_seq).where(
        WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.event_seq >= from_seq)))


def count_pending(session: Session, endpoint_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(WebhookDelivery).where(
        WebhookDelivery.endpoint_id == endpoint_id,
        WebhookDelivery.state == DeliveryState.PENDING)) or 0)
