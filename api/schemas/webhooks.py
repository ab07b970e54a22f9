"""Bodies and answers of the webhook routes: register an endpoint (its secret once), list,
delete, resume, the delivery log, replay."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field

from ledger.webhooks import events

from .common import Strict

# One of the subscribable types or "*" (the service checks against the same list).
EventTypeName = Annotated[str, Field(
    max_length=40, examples=["points.issued"],
    pattern="^(" + "|".join(re.escape(t) for t in (events.ALL, *events.SUBSCRIBABLE)) + ")$")]
EventId = Annotated[str, Field(max_length=80, pattern=events.EVENT_ID_PATTERN,
                               examples=["evt_6c1f0e3b9a7d4c2e8f5a1b0c9d8e7f6a"])]
WebhookIdPath = Annotated[str, Path(pattern=events.ENDPOINT_ID_PATTERN,
                                    examples=["wh_1a2b3c4d5e6f7a8b"])]
AfterQuery = Annotated[str | None, Query(max_length=80, pattern=events.EVENT_ID_PATTERN,
                                         description="``next_after`` of the previous page")]
LimitQuery = Annotated[int, Query(ge=1, le=events.MAX_DELIVERIES_PAGE)]


class WebhookCreateRequest(Strict):
    """An endpoint of the calling merchant and the event types it wants (``*``: all)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"url": "https://pos.example.com/alliance/hooks",
         "events": ["points.issued", "points.foreign_accepted"]}]})

    url: Annotated[str, Field(min_length=8, max_length=events.MAX_URL_LENGTH)]
    events: Annotated[list[EventTypeName], Field(min_length=1, max_length=16)]


class WebhookOut(BaseModel):
    """An endpoint (never its secret). ``status`` paused: it failed too often in a row
    (``paused_reason`` says how); resume it to deliver what queued meanwhile."""

    id: str
    url: str
    events: list[str]
    status: Literal["active", "paused", "deleted"]
    failures: int
    paused_reason: str | None
    paused_at: datetime | None
    created_at: datetime
    pending: int


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="Verifies the deliveries' signatures. Shown only once.")


class WebhooksOut(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    event_id: str
    type: str
    block: int
    tx_hash: str
    state: Literal["pending", "delivered", "withdrawn"]
    attempts: int
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None
    next_at: datetime | None


class DeliveriesOut(BaseModel):
    deliveries: list[DeliveryOut]
    next_after: str | None


class ReplayRequest(Strict):
    from_event_id: EventId


class ReplayOut(BaseModel):
    queued: int
