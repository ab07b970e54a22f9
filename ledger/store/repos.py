"""Repository functions: every read and write the service makes to the store.

Each takes the caller's ``Session``, so a request can write its outbox operation and its
idempotency record in one transaction. Functions that must be atomic across processes
(nonce reservation, outbox claims) are single statements or retry on the unique constraint.
"""

from __future__ import annotations

import secrets as pysecrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .. import crypto
from ..crypto import MasterKey
from ..errors import LedgerConflictError, LedgerNotFoundError
from .models import (
    ApiCredential,
    ChainTx,
    ChainTxOperation,
    IdempotencyRecord,
    IndexerCursor,
    Member,
    Merchant,
    Operation,
    PointEvent,
    Secret,
    SignerNonce,
    UsedSignature,
    utcnow,
)

# Expired replay and idempotency records are purged at most this often (seconds), not on
# every request: a purge is a write on the hot path.
PURGE_INTERVAL_S = 60.0
_last_purge: dict[str, float] = {}


def _due(name: str) -> bool:
    now = time.monotonic()
    if now - _last_purge.get(name, float("-inf")) < PURGE_INTERVAL_S:
        return False
    _last_purge[name] = now
    return True


MerchantRow = Merchant
OperationRow = Operation

PSEUDONYM_KEY = "pseudonym-key"
MIN_IDEMPOTENCY_TTL = timedelta(hours=24)


# ---------------------------------------------------------------------- secrets


def get_or_create_secret(session: Session, master: MasterKey, name: str,
                         make: Callable[[], bytes]) -> bytes:
    """A named secret, created (and stored encrypted) on first use."""
    row = session.get(Secret, name)
    if row is not None:
        return master.decrypt(row.value_enc)
    value = make()
    try:
        with session.begin_nested():
            session.add(Secret(name=name, value_enc=master.encrypt(value)))
    except IntegrityError:
        row = session.get(Secret, name)
        assert row is not None
        return master.decrypt(row.value_enc)
    return value


# ---------------------------------------------------------------------- merchants


def add_merchant(session: Session, *, merchant_id: int, name: str, account: str,
                 program: str | None, signing_key: bytes) -> Merchant:
    """Record a merchant admitted on chain; ``signing_key`` is already encrypted."""
    row = Merchant(id=merchant_id, name=name, status="active", account_address=account,
                   program_address=program, signing_key_enc=signing_key)
    session.add(row)
    session.flush()
    return row


def get_merchant(session: Session, merchant_id: int) -> Merchant | None:
    return session.get(Merchant, merchant_id)


def list_merchants(session: Session) -> list[Merchant]:
    return list(session.scalars(select(Merchant).order_by(Merchant.id)))


def set_merchant_status(session: Session, merchant_id: int, status: str) -> None:
    row = session.get(Merchant, merchant_id)
    if row is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    row.status = status


def set_merchant_program(session: Session, merchant_id: int, program: str) -> None:
    """Record the address of the merchant's point program once it is deployed."""
    row = session.get(Merchant, merchant_id)
    if row is None:
        raise LedgerNotFoundError(f"no merchant {merchant_id}")
    row.program_address = program


# ---------------------------------------------------------------------- credentials


@dataclass(frozen=True)
class CredentialView:
    """What request authentication needs to know of a key."""

    key_id: str
    secret: str
    merchant_id: int | None
    role: str
    revoked: bool


def create_credential(session: Session, master: MasterKey, *, merchant_id: int | None,
                      role: str) -> tuple[str, str]:
    """New API credentials; gives (key id, secret). Only the encrypted secret is kept."""
    key_id = ("mk_" if role == "merchant" else "ak_") + pysecrets.token_hex(8)
    secret = crypto.new_api_secret()
    session.add(ApiCredential(key_id=key_id, merchant_id=merchant_id, role=role,
                              secret_enc=master.encrypt(secret.encode()),
                              secret_fingerprint=crypto.fingerprint(secret)))
    session.flush()
    return key_id, secret


def get_credential(session: Session, master: MasterKey, key_id: str) -> CredentialView | None:
    row = session.get(ApiCredential, key_id)
    if row is None:
        return None
    return CredentialView(row.key_id, master.decrypt(row.secret_enc).decode(), row.merchant_id,
                          row.role, row.revoked_at is not None)


def revoke_credential(session: Session, key_id: str) -> None:
    row = session.get(ApiCredential, key_id)
    if row is None:
        raise LedgerNotFoundError(f"no key {key_id}")
    row.revoked_at = utcnow()


def remember_signature(session: Session, key_id: str, signature: str, *,
                       max_age: timedelta) -> bool:
    """Record a request signature; False if it was seen before (a replay)."""
    try:
        with session.begin_nested():
            session.add(UsedSignature(key_id=key_id, signature=signature))
    except IntegrityError:
        return False
    if _due("signatures"):
        purge_signatures(session, max_age=max_age)
    return True


def purge_signatures(session: Session, *, max_age: timedelta) -> int:
    """Forget request signatures older than ``max_age`` (requests that old are refused
    anyway); give how many."""
    res = session.execute(delete(UsedSignature).where(UsedSignature.seen_at < utcnow() - max_age))
    return int(getattr(res, "rowcount", 0) or 0)


# ---------------------------------------------------------------------- members


@dataclass(frozen=True)
class MemberView:
    """A member as the service knows it: never the alliance member id itself."""

    pseudonym: str
    account: str
    wallet: str | None

    @property
    def address(self) -> str:
        """The address the member's points live at: the linked wallet, else the custodial
        account."""
        return self.wallet or self.account


def _member_view(row: Member) -> MemberView:
    return MemberView(row.pseudonym, row.account, row.wallet)


def get_or_create_member(session: Session, master: MasterKey, *, member_id: str) -> MemberView:
    """The member known by an alliance member id, recorded on first sight with its keyed
    pseudonym and custodial account. The member id itself is never stored."""
    key = get_or_create_secret(session, master, PSEUDONYM_KEY, lambda: pysecrets.token_bytes(32))
    pseud = crypto.pseudonym(member_id, key)
    row = session.scalar(select(Member).where(Member.pseudonym == pseud))
    if row is None:
        address = crypto.custodial_address(member_id, key)
        try:
            with session.begin_nested():
                row = Member(pseudonym=pseud, account=address)
                session.add(row)
        except IntegrityError:
            row = session.scalar(select(Member).where(Member.pseudonym == pseud))
            assert row is not None
    return _member_view(row)


def member_account(session: Session, master: MasterKey, *, member_id: str) -> str:
    """The on-chain account of an alliance member id (its linked wallet if any), created on
    first sight."""
    return get_or_create_member(session, master, member_id=member_id).address


def link_wallet(session: Session, master: MasterKey, *, member_id: str,
                wallet: str) -> MemberView:
    """Link a wallet the member proved to control; give the member as now recorded.

    Raises LedgerConflictError if the wallet is already linked to another member."""
    view = get_or_create_member(session, master, member_id=member_id)
    row = session.scalar(select(Member).where(Member.pseudonym == view.pseudonym))
    assert row is not None
    if row.wallet == wallet:
        return view
    try:
        with session.begin_nested():
            row.wallet = wallet
    except IntegrityError as exc:
        raise LedgerConflictError("this wallet is linked to another member",
                                  code="wallet-linked") from exc
    return _member_view(row)


# ---------------------------------------------------------------------- idempotency


@dataclass(frozen=True)
class StoredResponse:
    """A response recorded under an idempotency key (``status_code`` None: in progress)."""

    status_code: int | None
    body: str | None
    content_type: str | None


def idempotency_begin(session: Session, *, principal: str, key: str, fingerprint: str,
                      ttl: timedelta, lease: timedelta | None = None) -> StoredResponse | None:
    """Claim ``key`` for this request; give the stored response if the key was used before
    (``status_code`` None while that first request is still in progress), or None if the
    claim is new. Race-safe: the unique (principal, key) decides between concurrent claims.

    A claim still in progress after ``lease`` (its request died with its process) is taken
    over: the caller runs the request again.

    Raises LedgerConflictError if the key was used with another request body."""
    ttl = max(ttl, MIN_IDEMPOTENCY_TTL)
    if _due("idempotency"):
        purge_idempotency(session)
    existing = session.get(IdempotencyRecord, (principal, key))
    if existing is not None and existing.expires_at < utcnow():
        session.delete(existing)
        session.flush()
        existing = None
    if existing is None:
        try:
            now = utcnow()
            with session.begin_nested():
                session.add(IdempotencyRecord(principal=principal, key=key,
                                              fingerprint=fingerprint, created_at=now,
                                              expires_at=now + ttl))
            return None
        except IntegrityError:
            existing = session.get(IdempotencyRecord, (principal, key))
            assert existing is not None
    if existing.fingerprint != fingerprint:
        raise LedgerConflictError("this Idempotency-Key was used with another request",
                                  code="idempotency-key-reused")
    if (existing.status_code is None and lease is not None
            and existing.created_at < utcnow() - lease):
        existing.created_at = utcnow()
        return None
    return StoredResponse(existing.status_code, existing.body, existing.content_type)


def idempotency_release(session: Session, *, principal: str, key: str) -> None:
    """Forget a claim whose request failed without a response worth replaying (5xx)."""
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.principal == principal,
                                                    IdempotencyRecord.key == key,
                                                    IdempotencyRecord.status_code.is_(None)))


def idempotency_complete(session: Session, *, principal: str, key: str, status_code: int,
                         body: str, content_type: str) -> None:
    """Store the response of the request that claimed ``key``, for replays."""
    row = session.get(IdempotencyRecord, (principal, key))
    if row is None:
        raise LedgerNotFoundError("idempotency record vanished")
    row.status_code = status_code
    row.body = body
    row.content_type = content_type


def purge_idempotency(session: Session) -> int:
    """Delete expired idempotency records; give how many."""
    res = session.execute(delete(IdempotencyRecord)
                          .where(IdempotencyRecord.expires_at < utcnow()))
    return int(getattr(res, "rowcount", 0) or 0)


# ---------------------------------------------------------------------- outbox


def enqueue_operation(session: Session, *, merchant_id: int, kind: str,
                      payload: dict[str, Any], signer: str) -> Operation:
    op = Operation(id=str(uuid.uuid4()), merchant_id=merchant_id, kind=kind, payload=payload,
                   lines=max(1, len(payload.get("items", ()))), status="queued", signer=signer)
    session.add(op)
    session.flush()
    return op


def get_operation(session: Session, operation_id: str) -> Operation | None:
    return session.scalar(select(Operation).where(Operation.id == operation_id))


def count_operations(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Operation)) or 0)


def merchants_with_queued(session: Session) -> list[int]:
    return list(session.scalars(select(Operation.merchant_id).where(Operation.status == "queued")
                                .distinct()))


def claim_operations(session: Session, *, merchant_id: int, max_lines: int
                     ) -> list[Operation]:
    """Move the oldest queued operations of a merchant, up to ``max_lines`` lines in all (at
    least one operation), to ``sending``, and give them.

    No operation is handed out twice: on PostgreSQL the candidates are locked with SKIP
    LOCKED; on SQLite the session's transaction began IMMEDIATE, holding the write lock."""
    candidates = (select(Operation.seq, Operation.lines)
                  .where(Operation.merchant_id == merchant_id, Operation.status == "queued")
                  .order_by(Operation.seq).limit(max_lines))
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    chosen: list[int] = []
    total = 0
    for seq, lines in session.execute(candidates):
        if chosen and total + lines > max_lines:
            break
        chosen.append(seq)
        total += lines
    if not chosen:
        return []
    rows = session.scalars(
        update(Operation).where(Operation.seq.in_(chosen), Operation.status == "queued")
        .values(status="sending", attempts=Operation.attempts + 1, updated_at=utcnow())
        .returning(Operation).execution_options(synchronize_session=False))
    return sorted(rows, key=lambda o: o.seq)


def record_submission(session: Session, *, op_ids: Sequence[str], chain_id: int, signer: str,
                      tx_hash: str, nonce: int, raw: str, max_fee: int,
                      priority_fee: int) -> None:
    """Record a signed transaction and mark its operations submitted, before broadcasting."""
    lines = 0
    for op in session.scalars(select(Operation).where(Operation.id.in_(op_ids))):
        lines += len(op.payload.get("items", [])) or 1
    session.add(ChainTx(tx_hash=tx_hash, chain_id=chain_id, signer=signer, nonce=nonce, raw=raw,
                        max_fee=max_fee, priority_fee=priority_fee, status="pending",
                        lines=lines))
    session.flush()
    for op_id in op_ids:
        session.add(ChainTxOperation(tx_hash=tx_hash, operation_id=op_id))
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status="submitted", tx_hash=tx_hash, updated_at=utcnow()))


def confirm_operations(session: Session, op_ids: Sequence[str], *, tx_hash: str,
                       block_number: int, final: bool = True) -> None:
    """Record that the operations' transaction was mined; ``final`` marks them confirmed,
    otherwise they stay ``submitted`` (with their block) until deep enough."""
    tx_hash = tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status="confirmed" if final else "submitted", tx_hash=tx_hash,
                            block_number=block_number, error_code=None, error_message=None,
                            updated_at=utcnow()))
    session.execute(update(ChainTx).where(ChainTx.tx_hash == tx_hash)
                    .values(status="mined", mined_block=block_number))


def promote_confirmed(session: Session, *, max_block: int) -> int:
    """Mark mined operations at or below ``max_block`` confirmed; give how many."""
    mined = select(ChainTx.tx_hash).where(ChainTx.status == "mined")
    res = session.execute(update(Operation).where(
        Operation.status == "submitted", Operation.block_number <= max_block,
        Operation.tx_hash.in_(mined)).values(status="confirmed", updated_at=utcnow()))
    return int(getattr(res, "rowcount", 0) or 0)


def fail_operations(session: Session, op_ids: Sequence[str], *, error_code: str,
                    error_message: str) -> None:
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status="failed", error_code=error_code,
                            error_message=error_message[:500], updated_at=utcnow()))


def requeue_operations(session: Session, op_ids: Sequence[str], *, error_code: str,
                       status: str = "queued") -> None:
    """Give operations another attempt: back to the queue, or kept claimed (``sending``) by
    a worker that retries them at once."""
    tx_hashes = list(session.scalars(select(Operation.tx_hash).where(Operation.id.in_(op_ids))))
    session.execute(update(ChainTx).where(ChainTx.tx_hash.in_([h for h in tx_hashes if h]))
                    .values(status="failed"))
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status=status, error_code=error_code, tx_hash=None,
                            updated_at=utcnow()))


def requeue_sending(session: Session) -> int:
    """Operations claimed but never signed (a crash) go back to the queue."""
    res = session.execute(update(Operation).where(Operation.status == "sending")
                          .values(status="queued", updated_at=utcnow()))
    return int(getattr(res, "rowcount", 0) or 0)


@dataclass(frozen=True)
class UnsettledTx:
    tx_hash: str
    signer: str
    nonce: int
    raw: str
    max_fee: int
    priority_fee: int
    op_ids: tuple[str, ...]


def unsettled_transactions(session: Session) -> list[UnsettledTx]:
    """Recorded transactions whose operations are still ``submitted``."""
    out = []
    for tx in session.scalars(select(ChainTx).where(ChainTx.status == "pending")
                              .order_by(ChainTx.signer, ChainTx.nonce)):
        ops = tuple(session.scalars(
            select(Operation.id).join(ChainTxOperation,
                                      ChainTxOperation.operation_id == Operation.id)
            .where(ChainTxOperation.tx_hash == tx.tx_hash, Operation.status == "submitted")))
        if ops:
            out.append(UnsettledTx(tx.tx_hash, tx.signer, tx.nonce, tx.raw, tx.max_fee,
                                   tx.priority_fee, ops))
    return out


def transactions_of(session: Session, *, signer: str) -> list[ChainTx]:
    return list(session.scalars(select(ChainTx).where(ChainTx.signer == signer)
                                .order_by(ChainTx.nonce)))


def confirmed_transactions(session: Session, *, merchant_id: int) -> list[tuple[str, int]]:
    """(tx hash, lines) of a merchant's mined transactions, in nonce order."""
    signer = session.scalar(select(Merchant.account_address).where(Merchant.id == merchant_id))
    return [(t.tx_hash, t.lines) for t in session.scalars(
        select(ChainTx).where(ChainTx.signer == signer, ChainTx.status == "mined")
        .order_by(ChainTx.nonce))]


# ---------------------------------------------------------------------- nonces


def reserve_nonces(session: Session, *, chain_id: int, address: str, count: int,
                   chain_nonce: Callable[[], int], chain_floor: int | None = None) -> int:
    """Reserve ``count`` contiguous nonces of a signer; give the first.

    The counter starts from the node's pending nonce (``chain_nonce()``, asked only when the
    signer has no counter yet). ``chain_floor``, when the caller knows the node's pending
    nonce anyway, lifts a counter the chain has moved past (transactions sent elsewhere).
    One UPDATE … RETURNING does the reservation, so concurrent callers never overlap."""
    if count < 1:
        raise ValueError("count must be at least 1")
    for _ in range(5):
        bumped: ColumnElement[int] = SignerNonce.next_nonce + count
        if chain_floor is not None:
            bumped = case((SignerNonce.next_nonce < chain_floor, chain_floor),
                          else_=SignerNonce.next_nonce) + count
        first = session.scalar(
            update(SignerNonce)
            .where(SignerNonce.chain_id == chain_id, SignerNonce.address == address)
            .values(next_nonce=bumped)
            .returning(SignerNonce.next_nonce - count))
        if first is not None:
            return int(first)
        start = chain_nonce()
        if chain_floor is not None:
            start = max(start, chain_floor)
        try:
            with session.begin_nested():
                session.add(SignerNonce(chain_id=chain_id, address=address,
                                        next_nonce=start + count))
            return start
        except IntegrityError:
            continue  # another caller created the counter first: reserve from it
    raise LedgerConflictError(f"could not reserve a nonce for {address}")


def reset_nonce(session: Session, *, chain_id: int, address: str, next_nonce: int) -> None:
    row = session.get(SignerNonce, (chain_id, address))
    if row is None:
        session.add(SignerNonce(chain_id=chain_id, address=address, next_nonce=next_nonce))
    else:
        row.next_nonce = next_nonce


# ---------------------------------------------------------------------- read model


def get_cursor(session: Session, name: str) -> tuple[int, str] | None:
    row = session.get(IndexerCursor, name)
    return None if row is None else (row.last_block, row.last_block_hash)


def set_cursor(session: Session, name: str, block: int, block_hash: str) -> None:
    row = session.get(IndexerCursor, name)
    if row is None:
        session.add(IndexerCursor(name=name, last_block=block, last_block_hash=block_hash))
    else:
        row.last_block, row.last_block_hash = block, block_hash


def insert_point_events(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert events not seen before (keyed by tx hash and log index); give how many.

    Rows are inserted in the order given, which the indexer keeps to chain order: ids then
    follow chain order. An event already stored is skipped by the database (ON CONFLICT DO
    NOTHING), so a re-run or a concurrent indexer cannot fail the transaction."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert_fn = pg_insert if dialect == "postgresql" else sqlite_insert
    added = 0
    for start in range(0, len(rows), 500):
        # A multi-row VALUES needs the same columns in every row.
        chunk = [{"order_ref": None, **r} for r in rows[start:start + 500]]
        stmt = insert_fn(PointEvent).values(chunk).on_conflict_do_nothing(
            index_elements=["tx_hash", "log_index"]).returning(PointEvent.id)
        # RETURNING gives only the rows inserted (rowcount is not reliable here on psycopg).
        added += len(session.execute(stmt).all())
    return added


def delete_events_after(session: Session, block: int) -> None:
    session.execute(delete(PointEvent).where(PointEvent.block_number > block))


def member_events(session: Session, *, member: str, limit: int, cursor: int | None,
                  merchant_id: int | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """A member's events newest first; ``cursor`` is the id to continue below.

    With ``merchant_id``, only what that merchant may see: events of its own program, and
    events at its store (other programs' points spent or converted there)."""
    q = select(PointEvent).where(PointEvent.member == member)
    if merchant_id is not None:
        program = session.scalar(select(Merchant.program_address)
                                 .where(Merchant.id == merchant_id))
        q = q.where(or_(PointEvent.program == (program or ""),
                        PointEvent.merchant_id == merchant_id))
    if cursor is not None:
        q = q.where(PointEvent.id < cursor)
    # Ids follow chain order: the indexer inserts events block by block, log by log.
    rows = list(session.scalars(q.order_by(PointEvent.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    events = [{"id": e.id, "kind": e.kind, "merchant_id": e.merchant_id, "program": e.program,
               "amount": e.amount, "order_ref": e.order_ref, "tx_hash": e.tx_hash,
               "block_number": e.block_number, "log_index": e.log_index, "period": e.period,
               "release_at": e.release_at, "burned": e.burned, "at": e.block_time}
              for e in rows]
    return events, (rows[-1].id if more and rows else None)


@dataclass(frozen=True)
class IssueRecord:
    """An indexed issue of points to a member (for pending releases)."""

    program: str
    order_ref: str | None
    amount: int
    release_at: int


def pending_issues(session: Session, *, member: str, now: int) -> list[IssueRecord]:
    """A member's issues whose release time is still ahead of ``now``, soonest first."""
    rows = session.scalars(select(PointEvent).where(
        PointEvent.member == member, PointEvent.kind == "issued",
        PointEvent.release_at > now).order_by(PointEvent.release_at, PointEvent.id))
    return [IssueRecord(r.program, r.order_ref, r.amount, int(r.release_at or 0))
            for r in rows]


_EVENT_COLUMNS = ("chain_id", "program", "merchant_id", "member", "kind", "amount",
                  "order_ref", "tx_hash", "block_number", "log_index", "period", "release_at",
                  "burned", "block_time")


def issues_released_between(session: Session, *, after: int, until: int
                            ) -> list[dict[str, Any]]:
    """Issue events whose release time is in (``after``, ``until``], in release order."""
    rows = session.scalars(select(PointEvent).where(
        PointEvent.kind == "issued", PointEvent.release_at > after,
        PointEvent.release_at <= until).order_by(PointEvent.release_at, PointEvent.id))
    return [{c: getattr(r, c) for c in _EVENT_COLUMNS} for r in rows]


def reversed_before(session: Session, *, program: str, order_refs: Sequence[str],
                    until: int | None = None) -> dict[str, list[tuple[int, int]]]:
    """(block time, points taken) of the reversals of these orders in a program, per order,
    up to ``until`` when given."""
    if not order_refs:
        return {}
    q = select(PointEvent).where(PointEvent.program == program,
                                 PointEvent.kind == "reversed",
                                 PointEvent.order_ref.in_(list(order_refs)))
    if until is not None:
        q = q.where(PointEvent.block_time <= until)
    out: dict[str, list[tuple[int, int]]] = {}
    for r in session.scalars(q):
        assert r.order_ref is not None
        out.setdefault(r.order_ref, []).append(
            (int(r.block_time or 0), int(r.burned if r.burned is not None else r.amount)))
    return out


def members_with_lots(session: Session, *, program: str, earn_periods: Sequence[int]
                      ) -> list[str]:
    """Members that received points into any of these lots of a program (issues, conversions
    in, refunds): the candidates of an expiry sweep, from the read model alone."""
    if not earn_periods:
        return []
    return list(session.scalars(
        select(PointEvent.member).where(
            PointEvent.program == program,
            PointEvent.kind.in_(("issued", "converted_in")),
            PointEvent.period.in_(list(earn_periods))).distinct().order_by(PointEvent.member)))
