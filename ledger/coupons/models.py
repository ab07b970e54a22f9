"""The coupons read model (filled by :mod:`ledger.coupons.projection`) and the redemption
locks that make concurrent redemption requests of one coupon conflict at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store.models import Base, IntText, UTCDateTime, utcnow


class CouponCampaign(Base):
    """A campaign as created on chain (its terms never change; pause state is in events)."""

    __tablename__ = "coupon_campaigns"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    issuer: Mapped[int] = mapped_column(Integer, index=True)
    terms: Mapped[dict[str, Any]] = mapped_column(JSON)
    block_number: Mapped[int] = mapped_column(Integer, index=True)


class CouponEvent(Base):
    """One coupon book event: granted (a mint), transferred, redeemed, rolled back, paused,
    resumed, voucher claimed or cancelled. Stats and a member's coupons are read from these."""

    __tablename__ = "coupon_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_coupon_events_log"),
                      Index("ix_coupon_events_coupon", "coupon_id", "block_number",
                            "log_index"),
                      Index("ix_coupon_events_campaign", "campaign_id", "kind"),
                      Index("ix_coupon_events_holder", "holder"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[int] = mapped_column(Integer)
    coupon_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    holder: Mapped[str | None] = mapped_column(String(42), nullable=True)
    merchant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    order_ref: Mapped[str | None] = mapped_column(String(66), nullable=True)
    amount: Mapped[int | None] = mapped_column(IntText, nullable=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    block_time: Mapped[int] = mapped_column(BigInteger)


class CouponRedemptionLock(Base):
    """At most one redemption of a coupon in flight: the request that inserts the row queues
    its operation; a concurrent one finds it and gets a conflict. A lock whose operation
    failed is taken over; a rollback request removes it."""

    __tablename__ = "coupon_redemption_locks"

    coupon_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(36))
    merchant_id: Mapped[int] = mapped_column(Integer)
    order_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
