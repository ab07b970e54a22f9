"""What a webhook can carry: the event types a merchant subscribes to, the statuses of an
endpoint and of a delivery, the bounds the API and the service both read, and the stable id
of an event."""

from __future__ import annotations

import hashlib
from enum import StrEnum


class EventType(StrEnum):
    """The event types of a webhook, each from one chain event of the confirmed read model
    and addressed to the merchant it concerns."""

    POINTS_ISSUED = "points.issued"
    """Points of your program issued (PointsIssued)."""
    POINTS_REVERSED = "points.reversed"
    """Points of your program taken back for a refunded order (PointsReversed)."""
    POINTS_REDEEMED = "points.redeemed"
    """Your program's points spent at your store (PointsRedeemed)."""
    POINTS_FOREIGN_ACCEPTED = "points.foreign_accepted"
    """Another merchant's points spent at your store (PointsRedeemed of its program)."""
    POINTS_REFUNDED = "points.refunded"
    """Points you had taken given back to the member (RedemptionRefunded)."""
    POINTS_CONVERTED_IN = "points.converted_in"
    """Points converted from another program into yours (PointsConvertedIn)."""
    CLEARING_PERIOD_CLOSED = "clearing.period_closed"
    """A settlement period closed, with your net in it (PeriodClosed, NetRecorded)."""
    CLEARING_STATEMENT_READY = "clearing.statement_ready"
    """Your statement of a closed period was anchored on chain (StatementAnchored)."""
    COUPONS_REDEEMED = "coupons.redeemed"
    """A coupon redeemed at your store, or one of your campaigns' coupons redeemed anywhere."""
    COUPONS_ROLLED_BACK = "coupons.rolled_back"
    """Such a redemption rolled back."""
    COUPONS_GRANTED = "coupons.granted"
    """A coupon of your campaign granted to a member (ERC-721 Transfer from zero: a grant
    or a voucher claimed)."""
    COUPONS_VOUCHER_CLAIMED = "coupons.voucher_claimed"
    """A voucher of your campaign claimed, minting a coupon (VoucherClaimed)."""
    COUPONS_VOUCHER_CANCELLED = "coupons.voucher_cancelled"
    """A voucher of your campaign cancelled before it was claimed (VoucherCancelled)."""
    ITEMS_RECALLED = "items.recalled"
    """An item (or a batch) of your brand recalled; also sent to each merchant holding a
    recalled item then (for a batch: once, with the ids of the items it holds)."""
    ITEMS_FLAGGED = "items.flagged"
    """An item of your brand flagged (a likely clone)."""
    ITEMS_CLAIMED = "items.claimed"
    """An item of your brand claimed by a member (scan to earn)."""
    ITEMS_CUSTODY_RECORDED = "items.custody_recorded"
    """A custody event of an item (CustodyRecorded: commissioning, shipping, receiving,
    selling, returning, recalling, destroying): sent to the merchant that recorded it, the
    item's brand, and for a shipment the merchant it is shipped to."""
    EVENT_REVERTED = "event.reverted"
    """A chain reorganisation undid an event you were already sent: not subscribable, sent to
    every endpoint that received the original."""


SUBSCRIBABLE = tuple(t for t in EventType if t is not EventType.EVENT_REVERTED)
# "*" subscribes to every type (also types added later).
ALL = "*"


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    """Failed PAUSE_AFTER times in a row; events still queue; resume to deliver them."""
    DELETED = "deleted"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    WITHDRAWN = "withdrawn"
    """Kept in the log only for a reverted event's undelivered copies (none at present: an
    undelivered event a reorg undid is dropped with its deliveries)."""


# Bounds (the API's schemas read these too).
MAX_ENDPOINTS = 10
"""Endpoints (not deleted) one merchant may have."""
MAX_URL_LENGTH = 2048
MAX_DELIVERIES_PAGE = 500
EVENT_ID_PATTERN = r"^evt_[0-9a-f]{32}(\.[0-9]+)?(\.reverted)?$"
ENDPOINT_ID_PATTERN = r"^wh_[0-9a-f]{16}$"


def event_id(*, tx_hash: str, log_index: int, merchant_id: int, type_: str) -> str:
    """The stable id of one event for one merchant: the same chain log always gives the
    same id, across retries, restarts and re-reads of a block."""
    raw = f"{tx_hash.lower()}:{log_index}:{merchant_id}:{type_}".encode()
    return "evt_" + hashlib.sha256(raw).hexdigest()[:32]
