"""The store's tables (SQLAlchemy 2, typed). Changed only through Alembic migrations.

Money-like values are integers: ``IntText`` keeps any Python int exactly on SQLite and
PostgreSQL alike. Secrets (signing keys, API secrets, the pseudonym key) are stored only
encrypted with the master key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class IntText(TypeDecorator[int]):
    """An arbitrary-size integer stored as decimal text (exact on every database)."""

    impl = String(80)
    cache_ok = True

    def process_bind_param(self, value: int | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"IntText takes int, not {type(value).__name__}")
        return str(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else int(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, also on SQLite (which drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect
                             ) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class OperationStatus(StrEnum):
    """Where an outbox operation is: ``queued`` (waiting), ``sending`` (claimed by a worker,
    not signed yet), ``submitted`` (its transaction signed and recorded, then broadcast; mined
    but not deep enough yet when ``block_number`` is set), ``confirmed`` (mined, deep
    enough), ``failed`` (reverted on its own; ``error_code`` names the Solidity error)."""

    QUEUED = "queued"
    SENDING = "sending"
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class StatusText(TypeDecorator[OperationStatus]):
    """An :class:`OperationStatus` stored as its text (a plain ``VARCHAR(16)``)."""

    impl = String(16)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else OperationStatus(value).value

    def process_result_value(self, value: str | None, dialect: Dialect
                             ) -> OperationStatus | None:
        return None if value is None else OperationStatus(value)


class Base(DeclarativeBase):
    pass


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default="active")
    account_address: Mapped[str] = mapped_column(String(42), unique=True)
    program_address: Mapped[str | None] = mapped_column(String(42), nullable=True)
    signing_key_enc: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiCredential(Base):
    __tablename__ = "api_credentials"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    secret_fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class UsedSignature(Base):
    __tablename__ = "used_request_signatures"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    account: Mapped[str] = mapped_column(String(42), unique=True)
    wallet: Mapped[str | None] = mapped_column(String(42), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    principal: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    body: Mapped[str | None] = mapped_column(String, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Operation(Base):
    """The outbox: one row per mutating request, sent by the worker."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_status_merchant", "status", "merchant_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    lines: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[OperationStatus] = mapped_column(StatusText,
                                                    default=OperationStatus.QUEUED)
    signer: Mapped[str] = mapped_column(String(42))
    # Not indexed (migration 0017): no query finds an operation by it, and every row version
    # the outbox's status updates wrote went into its index too.
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error_message: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SignerNonce(Base):
    __tablename__ = "signer_nonces"

    chain_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    next_nonce: Mapped[int] = mapped_column(Integer)


class ChainTx(Base):
    __tablename__ = "chain_txs"

    tx_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    signer: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(Integer)
    raw: Mapped[str] = mapped_column(String)
    max_fee: Mapped[int] = mapped_column(IntText)
    priority_fee: Mapped[int] = mapped_column(IntText)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    lines: Mapped[int] = mapped_column(Integer, default=0)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    mined_block: Mapped[int | None] = mapped_column(Integer, nullable=True)

    # A confirmation's "replaced" update and the recovery's lookups filter on both (migration
    # 0018; the signer alone made them read the key's whole history of transactions).
    __table_args__ = (Index("ix_chain_txs_signer_nonce", "signer", "nonce"),)


class ChainTxOperation(Base):
    __tablename__ = "chain_tx_operations"

    tx_hash: Mapped[str] = mapped_column(ForeignKey("chain_txs.tx_hash"), primary_key=True)
    operation_id: Mapped[str] = mapped_column(ForeignKey("operations.id"), primary_key=True)


class Secret(Base):
    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value_enc: Mapped[bytes] = mapped_column(LargeBinary)


class PointEvent(Base):
    """The indexed read model of point events."""

    __tablename__ = "point_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_point_events_log"),
                      Index("ix_point_events_member", "member", "block_number", "log_index"),
                      Index("ix_point_events_kind_release", "kind", "release_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    program: Mapped[str] = mapped_column(String(42))
    merchant_id: Mapped[int] = mapped_column(Integer)
    member: Mapped[str] = mapped_column(String(42))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(IntText)
    order_ref: Mapped[str | None] = mapped_column(String(66), nullable=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    period: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    release_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    burned: Mapped[int | None] = mapped_column(IntText, nullable=True)
    block_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class IndexerCursor(Base):
    __tablename__ = "indexer_cursors"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_block: Mapped[int] = mapped_column(Integer)
    last_block_hash: Mapped[str] = mapped_column(String(66))


class ClearedAct(Base):
    """The read model of the Clearing's ``Cleared`` acts: one row per event."""

    __tablename__ = "cleared_acts"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_cleared_acts_log"),
                      Index("ix_cleared_acts_period", "period", "block_number", "log_index"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chain_id: Mapped[int] = mapped_column(Integer)
    period: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    debtor: Mapped[int] = mapped_column(Integer)
    creditor: Mapped[int] = mapped_column(Integer)
    value: Mapped[int] = mapped_column(IntText)
    rate: Mapped[int] = mapped_column(IntText)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)


class ClearedLine(Base):
    """What makes up a cleared act: a program's redemption, conversion or refund event of the
    act's transaction, as a statement line (``act_log_index`` names the act in that
    transaction)."""

    __tablename__ = "cleared_lines"
    __table_args__ = (UniqueConstraint("tx_hash", "act_log_index", "log_index",
                                       name="uq_cleared_lines_log"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    act_log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    points_of: Mapped[int] = mapped_column(Integer)
    accepted_by: Mapped[int] = mapped_column(Integer)
    order_ref: Mapped[str] = mapped_column(String(66))
    points: Mapped[int] = mapped_column(IntText)
    rate: Mapped[int] = mapped_column(IntText)
    value: Mapped[int] = mapped_column(IntText)


class MemberLoginNonce(Base):
    """A Sign-In with Ethereum nonce the service handed out: used once (deleted on sign-in),
    refused after ``expires_at``."""

    __tablename__ = "member_login_nonces"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class MemberSession(Base):
    """A member app session: the cookie's token is kept only as its SHA-256."""

    __tablename__ = "member_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(42), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class PaymentRequest(Base):
    """A merchant's request to be paid with points (a link / QR for the member app): one
    payment at most; ``operation_id`` is the redemption queued for it."""

    __tablename__ = "payment_requests"
    __table_args__ = (UniqueConstraint("merchant_id", "order_id",
                                       name="uq_payment_requests_order"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    order_id: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(IntText)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    payer: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    program_merchant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    points: Mapped[int | None] = mapped_column(IntText, nullable=True)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


# ---------------------------------------------------------------------- items (issue 11)


class ItemProduct(Base):
    """A brand's product (GTIN-14 as an integer) and the points a claim of one of its items
    earns in the brand's program (0: none)."""

    __tablename__ = "item_products"

    gtin: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    brand_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(128))
    claim_points: Mapped[int] = mapped_column(Integer)


class ItemLocation(Base):
    """A merchant's location: its on-chain id (keccak256 of the GLN or store id)."""

    __tablename__ = "item_locations"

    location: Mapped[str] = mapped_column(String(66), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer, index=True)
    label: Mapped[str] = mapped_column(String(128))


class ItemBatch(Base):
    """A production batch: its Merkle root and the seed its label secrets derive from
    (encrypted with the master key); ``chain_batch_id`` once the indexer saw it registered."""

    __tablename__ = "item_batches"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    brand_id: Mapped[int] = mapped_column(Integer, index=True)
    gtin: Mapped[int] = mapped_column(BigInteger)
    count: Mapped[int] = mapped_column(Integer)
    root: Mapped[str] = mapped_column(String(66), unique=True)
    seed: Mapped[bytes] = mapped_column(LargeBinary)
    chain_batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    recalled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ItemSerial(Base):
    """A serial of a batch and what its leaf commits to (never the secret itself)."""

    __tablename__ = "item_serials"
    __table_args__ = (Index("ix_item_serials_batch_index", "batch_id", "batch_index",
                            unique=True),)

    item_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    batch_id: Mapped[int] = mapped_column(Integer, index=True)
    serial: Mapped[str] = mapped_column(String(20))
    secret_hash: Mapped[str] = mapped_column(String(66))
    # the serial's position in its batch: its on-chain key is chain_batch_id << 32 | index
    batch_index: Mapped[int | None] = mapped_column(Integer, nullable=True)


class ItemState(Base):
    """The indexed read model of an item's state (as the ItemRegistry's events left it)."""

    __tablename__ = "item_states"

    item_id: Mapped[str] = mapped_column(String(66), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    custodian: Mapped[int] = mapped_column(Integer)
    destination: Mapped[int | None] = mapped_column(Integer, nullable=True)
    chain_batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    recalled: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_by: Mapped[str | None] = mapped_column(String(42), nullable=True, index=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    block_number: Mapped[int] = mapped_column(Integer, index=True)


class ItemEvent(Base):
    """The indexed read model of the ItemRegistry's item events (custody, recall, claim,
    flag), in chain order: an item's history."""

    __tablename__ = "item_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_item_events_log"),
                      Index("ix_item_events_item", "item_id", "block_number", "log_index"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(66))
    kind: Mapped[str] = mapped_column(String(24))
    merchant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    location: Mapped[str | None] = mapped_column(String(66), nullable=True)
    destination: Mapped[str | None] = mapped_column(String(66), nullable=True)
    disposition: Mapped[str | None] = mapped_column(String(24), nullable=True)
    event_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    event_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    member: Mapped[str | None] = mapped_column(String(42), nullable=True)
    reason: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    block_time: Mapped[int] = mapped_column(BigInteger)


class ItemEpcisDocument(Base):
    """The full EPCIS 2.0 event kept off chain, under the EPCIS event hash the chain carries."""

    __tablename__ = "item_epcis_documents"

    event_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(66), index=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)


class ItemScan(Base):
    """A public verification of a code (where, when): what clone detection reads."""

    __tablename__ = "item_scans"
    __table_args__ = (Index("ix_item_scans_item", "item_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(66))
    at: Mapped[int] = mapped_column(BigInteger)
    lat_e6: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lon_e6: Mapped[int | None] = mapped_column(Integer, nullable=True)


# ---------------------------------------------------------------------- coupons


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



# ---------------------------------------------------------------------- offers (branch offers)


class OfferRule(Base):
    """A merchant's triggered offer: on a purchase (points issued >= ``min_points`` for one
    order), in a member's birth month, or on a referred member's first purchase, grant a coupon
    of ``campaign_id`` (one of the merchant's own campaigns)."""

    __tablename__ = "offer_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    min_points: Mapped[int | None] = mapped_column(IntText, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # offers2: a purchase rule in spend (minor units of the order amount the issue request
    # carried) instead of points; exactly one of min_points and min_spend is set.
    min_spend: Mapped[int | None] = mapped_column(IntText, nullable=True)


class OfferFiring(Base):
    """A rule fired once for one cause (an order's reference, a member and year, a referral
    pair): the unique (rule, cause) pair is what keeps a rule from granting twice, across
    retries, restarts and concurrent runs. ``operation_id`` is the queued grant; a firing the
    coupons service refused (campaign paused, supply used up) is ``skipped`` with ``reason``."""

    __tablename__ = "offer_firings"
    __table_args__ = (UniqueConstraint("rule_id", "cause", name="uq_offer_firings_cause"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(Integer, index=True)
    cause: Mapped[str] = mapped_column(String(160))
    members: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # offers2: a purchase firing remembers its order (program merchant and order ref), the
    # points the order issued, what reversals took back since, where its member sits in the
    # grant's member list (coupon ``firstId + grant_index``), and the coupon taken back when
    # the order no longer meets the rule (``revoke_operation_id``).
    order_ref: Mapped[str | None] = mapped_column(String(66), nullable=True, index=True)
    order_points: Mapped[int | None] = mapped_column(IntText, nullable=True)
    order_spend: Mapped[int | None] = mapped_column(IntText, nullable=True)
    reversed_points: Mapped[int] = mapped_column(IntText, default=0, server_default="0")
    grant_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    coupon_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    revoke_operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class OfferBirthMonth(Base):
    """A member's birth month as a merchant recorded it, encrypted with the master key (never
    on chain, never logged)."""

    __tablename__ = "offer_birth_months"

    merchant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    member: Mapped[str] = mapped_column(String(42), primary_key=True)
    month_enc: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OfferInvite(Base):
    """A member's invite code at a merchant (what the member shares with a friend)."""

    __tablename__ = "offer_invites"
    __table_args__ = (UniqueConstraint("merchant_id", "inviter", name="uq_offer_invites_inviter"),)

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer)
    inviter: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OfferReferral(Base):
    """A member who joined a merchant by another's invite code (once per merchant)."""

    __tablename__ = "offer_referrals"

    merchant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    invitee: Mapped[str] = mapped_column(String(42), primary_key=True)
    inviter: Mapped[str] = mapped_column(String(42))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Gift(Base):
    """A gift a merchant lists for ``points`` of its program: the member receives a coupon of
    ``campaign_id`` (kind gift) to collect in store. ``reserved`` counts redemptions paying or
    paid (a conditional update keeps it within ``stock``)."""

    __tablename__ = "gifts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str] = mapped_column(String(120))
    points: Mapped[int] = mapped_column(IntText)
    campaign_id: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer)
    reserved: Mapped[int] = mapped_column(Integer, default=0)
    per_member_limit: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class GiftRedemption(Base):
    """A member's redemption of points for a gift: ``paying`` while its points redemption is
    queued, ``paid`` once the redemption is confirmed (the coupon grant is queued in that same
    store transaction), ``failed`` if the redemption failed (its stock is released)."""

    __tablename__ = "gift_redemptions"
    __table_args__ = (UniqueConstraint("gift_id", "request_id", name="uq_gift_redemptions_req"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gift_id: Mapped[int] = mapped_column(Integer, index=True)
    request_id: Mapped[str] = mapped_column(String(40))
    member: Mapped[str] = mapped_column(String(42), index=True)
    order_id: Mapped[str] = mapped_column(String(64))
    order_ref: Mapped[str] = mapped_column(String(66), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    redeem_operation_id: Mapped[str] = mapped_column(String(36))
    grant_operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)



# ---------------------------------------------------------------------- member-app2 (issue 12)


class CouponPresentation(Base):
    """A coupon shown at a till as a one-time code (only its SHA-256 is kept): the first
    merchant to scan it binds its order; ``operation_id`` is the member's signed redemption
    queued for that order (see ``ledger.members.presentations``)."""

    __tablename__ = "coupon_presentations"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(42), index=True)
    coupon_id: Mapped[str] = mapped_column(String(80), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    merchant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    order_amount: Mapped[int | None] = mapped_column(IntText, nullable=True)
    discount: Mapped[int | None] = mapped_column(IntText, nullable=True)
    operation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class MemberProfile(Base):
    """Profile fields a member chose to keep with the service (the member app), shared with a
    merchant only under a live on-chain consent of that kind; erased with the member's data."""

    __tablename__ = "member_profiles"

    address: Mapped[str] = mapped_column(String(42), primary_key=True)
    birth_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ConsentReward(Base):
    """Points a merchant offers a member for granting it a consent of ``kind`` (paid once per
    member, merchant and kind, when the grant is on chain)."""

    __tablename__ = "consent_rewards"

    merchant_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    points: Mapped[int] = mapped_column(Integer)



# ---------------------------------------------------------------------- webhooks (branch webhooks)


class WebhookEndpoint(Base):
    """A merchant's webhook endpoint: where events of the types it chose are delivered.
    Its signing secret is kept only encrypted with the master key (deliveries need it in
    clear to sign); ``failures`` counts failed attempts in a row (reset by a success)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer, index=True)
    url: Mapped[str] = mapped_column(String(2048))
    events: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    secret_fingerprint: Mapped[str] = mapped_column(String(64))
    failures: Mapped[int] = mapped_column(Integer, default=0)
    paused_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class WebhookEvent(Base):
    """One event for one merchant, from the confirmed read model, in chain order (``seq``).
    ``id`` is stable (tx hash, log index, merchant, type): the receiver's de-duplication key.
    ``reverted``: a reorg undid it after it was delivered (an ``event.reverted`` follows)."""

    __tablename__ = "webhook_events"
    __table_args__ = (Index("ix_webhook_events_merchant", "merchant_id", "seq"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(80), unique=True)
    merchant_id: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    block_time: Mapped[int] = mapped_column(BigInteger)
    reverted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """The delivery of one event to one endpoint: pending (``next_at`` is when the next
    attempt is due), delivered, or withdrawn (a reorg undid the event before delivery)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "endpoint_id", "state", "event_seq"),)

    endpoint_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(300), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)



# ---------------------------------------------------------------------- memberships
# (branch memberships: membership cards' read model, tiers, tier-locked campaigns)


class MembershipEvent(Base):
    """One MembershipCards event: a card issued or renewed (its tier and expiry then). A
    card's state is its latest row; a reorg drops the rows of the blocks it undoes."""

    __tablename__ = "membership_events"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_membership_events_log"),
                      Index("ix_membership_events_card", "token_id", "block_number",
                            "log_index"),
                      Index("ix_membership_events_member", "member"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    token_id: Mapped[str] = mapped_column(String(80))
    merchant_id: Mapped[int] = mapped_column(Integer)
    member: Mapped[str] = mapped_column(String(42))
    tier: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[int] = mapped_column(BigInteger)
    payment_ref: Mapped[str] = mapped_column(String(66))
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    block_time: Mapped[int] = mapped_column(BigInteger)


class MembershipTier(Base):
    """A tier of a merchant's program (``merchant_id``) or alliance-wide (0): reached with
    ``min_points`` earned over the last ``window_days``; points earned at that merchant are
    multiplied by ``multiplier_bps`` / 10,000."""

    __tablename__ = "membership_tiers"
    __table_args__ = (UniqueConstraint("merchant_id", "level", name="uq_membership_tiers_level"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(Integer, index=True)
    level: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    min_points: Mapped[int] = mapped_column(IntText)
    window_days: Mapped[int] = mapped_column(Integer)
    multiplier_bps: Mapped[int] = mapped_column(Integer)


class CampaignTierLock(Base):
    """A coupon campaign that only members of ``min_level`` (of ``scope_merchant_id``'s tiers,
    0: alliance-wide) may be granted."""

    __tablename__ = "coupon_campaign_tiers"

    campaign_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    scope_merchant_id: Mapped[int] = mapped_column(Integer)
    min_level: Mapped[int] = mapped_column(Integer)


# ---------------------------------------------------------------------- items2 (issue 11)


class ItemRecallNotice(Base):
    """What a brand says of a recall (its reason, in English and Chinese), under the hash the
    chain's BatchRecalled / ItemRecalled events carry."""

    __tablename__ = "item_recall_notices"

    event_hash: Mapped[str] = mapped_column(String(66), primary_key=True)
    brand_id: Mapped[int] = mapped_column(Integer, index=True)
    reason: Mapped[str] = mapped_column(String(500))
    reason_zh: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ItemRecall(Base):
    """A recall as it reached one activated item (indexed): the merchant holding it then (so a
    webhook can tell that merchant), its status and claimer then."""

    __tablename__ = "item_recalls"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", "item_id",
                                       name="uq_item_recalls_log_item"),
                      Index("ix_item_recalls_item", "item_id", "block_number"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(String(66))
    event_hash: Mapped[str] = mapped_column(String(66), index=True)
    chain_batch_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    merchant_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(16))
    claimed_by: Mapped[str | None] = mapped_column(String(42), nullable=True)
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(Integer, index=True)
    log_index: Mapped[int] = mapped_column(Integer)
    block_time: Mapped[int] = mapped_column(BigInteger)


# ---------------------------------------------------------------- rollback (issue 14)

class IndexedBlock(Base):
    """A block the indexer read up to, with its hash then. After a reorganisation, or a node
    that came back from an older state, the highest of them whose hash the chain still has
    is a block both chains share: the projections rewind there."""

    __tablename__ = "indexed_blocks"

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(66))


# ---------------------------------------------------------------------- offers2 (issue 10)


class OrderSpend(Base):
    """What a merchant's order was worth (minor units), as the points issue request gave it:
    kept off chain (the chain sees only the order ref and the points), read by the offers
    projection when the order's ``PointsIssued`` is indexed. The first request of an order
    keeps it unless its operation failed (then the next request's spend replaces it)."""

    __tablename__ = "order_spends"

    merchant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    order_ref: Mapped[str] = mapped_column(String(66), primary_key=True)
    spend: Mapped[int] = mapped_column(IntText)
    operation_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# ---------------------------------------------------------------------- offers3 (issue 10)


class OfferReversal(Base):
    """A confirmed ``PointsReversed`` the offers projection counted towards its order's
    purchase firings (their ``reversed_points``), with where it was read. Read again (a
    re-read block) it is not counted twice; a reorg rollback takes back those above the
    common ancestor, and their points from the firings."""

    __tablename__ = "offer_reversals"
    __table_args__ = (UniqueConstraint("tx_hash", "log_index", name="uq_offer_reversals_log"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(Integer)
    order_ref: Mapped[str] = mapped_column(String(66))
    points: Mapped[int] = mapped_column(IntText)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(Integer, index=True)


# ---------------------------------------------------------------------- claim (issue 12)


class MemberLinkCode(Base):
    """A one-time code a merchant hands a member at the counter, to claim what the service
    kept for the member id (its custodial account) into the member's wallet. Only the code's
    hash is stored; the custodial key it unlocks is kept encrypted under the master key until
    the claim's moves are all confirmed, then erased."""

    __tablename__ = "member_link_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), index=True)
    merchant_id: Mapped[int] = mapped_column(Integer)
    key_enc: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    wallet: Mapped[str | None] = mapped_column(String(42), nullable=True)


class MemberClaimMove(Base):
    """One program's move of a claim: the operation that sends it (the latest, after a
    retry)."""

    __tablename__ = "member_claim_moves"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    program: Mapped[str] = mapped_column(String(42))
    account: Mapped[str] = mapped_column(String(42))
    wallet: Mapped[str] = mapped_column(String(42), index=True)
    operation_id: Mapped[str] = mapped_column(String(36))
