"""Repository functions of the shared infrastructure: secrets, API credentials and their
replay records, idempotency records, and signers' nonce counters.

Each takes the caller's ``Session``, so a request can write its outbox operation and its
idempotency record in one transaction. Functions that must be atomic across processes
(nonce reservation) are single statements or retry on the unique constraint.
"""

from __future__ import annotations

import logging
import secrets as pysecrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Executable,
    Select,
    String,
    bindparam,
    case,
    delete,
    exists,
    select,
    update,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from .. import crypto
from ..crypto import MasterKey
from ..errors import (
    LedgerConflictError,
    LedgerNotFoundError,
    LedgerValidationError,
    StoreUnavailableError,
)
from .models import (
    ApiCredential,
    IdempotencyRecord,
    Merchant,
    Secret,
    SignerNonce,
    UsedSignature,
    UTCDateTime,
    utcnow,
)
from .tables import table_of

log = logging.getLogger(__name__)

# Expired replay and idempotency records are purged at most this often (seconds), not on
# every request: a purge is a write on the hot path.
PURGE_INTERVAL_S = 60.0
_last_purge: dict[str, float] = {}


def _is_due(name: str, now: float) -> bool:
    return now - _last_purge.get(name, float("-inf")) >= PURGE_INTERVAL_S


def _due(name: str) -> bool:
    now = time.monotonic()
    if not _is_due(name, now):
        return False
    _last_purge[name] = now
    return True


MIN_IDEMPOTENCY_TTL = timedelta(hours=24)


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


# (dialect, model) -> its INSERT ... ON CONFLICT DO NOTHING RETURNING key, built once per
# process: every request inserts its replay record and idempotency claim through it, and a
# statement built afresh each time costs its construction and cache-key walk per call.
_INSERT_IF_NEW: dict[tuple[str, type[Any]], Executable] = {}


def _insert_if_new(session: Session, model: type[Any], values: dict[str, Any]) -> bool | None:
    """Insert one row unless its key exists, in one statement (``INSERT ... ON CONFLICT DO
    NOTHING``, PostgreSQL and SQLite); give whether it was inserted, or None on another
    database (the caller falls back to a savepoint). The statement is built once per
    (dialect, model) with no values of its own: each call's ``values`` are its parameters."""
    name = session.get_bind().dialect.name
    stmt = _INSERT_IF_NEW.get((name, model))
    if stmt is None:
        # RETURNING tells whether the row went in (psycopg gives rowcount -1 here).
        key = sa_inspect(model).primary_key[0]
        if name == "postgresql":
            stmt = pg_insert(model).on_conflict_do_nothing().returning(key)
        elif name == "sqlite":
            stmt = sqlite_insert(model).on_conflict_do_nothing().returning(key)
        else:
            return None
        _INSERT_IF_NEW[(name, model)] = stmt
    return session.execute(stmt, values).first() is not None


def remember_signature(session: Session, key_id: str, signature: str, *,
                       max_age: timedelta) -> bool:
    """Record a request signature; False if it was seen before (a replay). One statement
    (no savepoint) on PostgreSQL and SQLite."""
    inserted = _insert_if_new(session, UsedSignature, {"key_id": key_id, "signature": signature,
                                                       "seen_at": utcnow()})
    if inserted is None:
        try:
            with session.begin_nested():
                session.add(UsedSignature(key_id=key_id, signature=signature))
        except IntegrityError:
            return False
    elif not inserted:
        return False
    if _due("signatures"):
        purge_signatures(session, max_age=max_age)
    return True


def purge_signatures(session: Session, *, max_age: timedelta) -> int:
    """Forget request signatures older than ``max_age`` (requests that old are refused
    anyway); give how many."""
    res = session.execute(delete(UsedSignature).where(UsedSignature.seen_at < utcnow() - max_age))
    return int(getattr(res, "rowcount", 0) or 0)


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
    now = utcnow()
    # The common case, a new key, is one statement: the claim itself.
    claimed = _insert_if_new(session, IdempotencyRecord, {
        "principal": principal, "key": key, "fingerprint": fingerprint, "created_at": now,
        "expires_at": now + ttl})
    if claimed:
        return None
    existing = session.get(IdempotencyRecord, (principal, key))
    if existing is not None and existing.expires_at < now:
        # An expired record is claimed anew in place; of two racing requests, only one
        # UPDATE still sees it expired.
        res = session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.principal == principal, IdempotencyRecord.key == key,
                   IdempotencyRecord.expires_at < now)
            .values(fingerprint=fingerprint, status_code=None, body=None, content_type=None,
                    created_at=now, expires_at=now + ttl)
            .execution_options(synchronize_session="fetch"))
        if int(getattr(res, "rowcount", 0) or 0) == 1:
            return None
        session.refresh(existing)
    if existing is None and claimed is None:  # neither PostgreSQL nor SQLite: a savepoint
        try:
            with session.begin_nested():
                session.add(IdempotencyRecord(principal=principal, key=key,
                                              fingerprint=fingerprint, created_at=now,
                                              expires_at=now + ttl))
            return None
        except IntegrityError:
            existing = session.get(IdempotencyRecord, (principal, key))
    if existing is None:  # deleted (purged) between the claim and the read: claim again
        return idempotency_begin(session, principal=principal, key=key,
                                 fingerprint=fingerprint, ttl=ttl, lease=lease)
    if existing.fingerprint != fingerprint:
        raise LedgerConflictError("this Idempotency-Key was used with another request",
                                  code="idempotency-key-reused")
    if (existing.status_code is None and lease is not None
            and existing.created_at < utcnow() - lease):
        existing.created_at = utcnow()
        return None
    return StoredResponse(existing.status_code, existing.body, existing.content_type)


@dataclass(frozen=True)
class RequestClaim:
    """What :func:`claim_merchant_request` found and wrote, in the caller's transaction."""

    merchant: Merchant | None  # None: no such merchant (nothing was written)
    signature_new: bool  # False: a replay, or the merchant is not active (nothing written)
    claim_new: bool  # True: the signature is spent and the key claimed by this request


_CLAIM_REQUEST: Select[Merchant, bool, bool] | None = None


def _claim_request_statement() -> Select[Merchant, bool, bool]:
    """The one PostgreSQL statement of :func:`claim_merchant_request`, built once per process
    (each call's values are its parameters). Data-modifying CTEs: the replay record goes in
    only if the merchant is active, the claim only if the replay record went in; the SELECT
    gives the merchant's row (loaded into the session) and what was inserted."""
    global _CLAIM_REQUEST
    if _CLAIM_REQUEST is not None:
        return _CLAIM_REQUEST
    mid = bindparam("merchant_id", type_=Merchant.id.type)
    now = bindparam("now", type_=UTCDateTime())
    active = exists().where(Merchant.id == mid, Merchant.status == "active")
    sig = (pg_insert(UsedSignature)
           .from_select(["key_id", "signature", "seen_at"],
                        select(bindparam("key_id", type_=String()),
                               bindparam("signature", type_=String()), now)
                        .where(active))
           .on_conflict_do_nothing()
           .returning(UsedSignature.key_id)
           .cte("new_signature"))
    claim = (pg_insert(IdempotencyRecord)
             .from_select(["principal", "key", "fingerprint", "created_at", "expires_at"],
                          select(bindparam("principal", type_=String()),
                                 bindparam("key", type_=String()),
                                 bindparam("fingerprint", type_=String()), now,
                                 bindparam("expires_at", type_=UTCDateTime()))
                          .where(exists(select(sig.c.key_id))))
             .on_conflict_do_nothing()
             .returning(IdempotencyRecord.key)
             .cte("new_claim"))
    statement = select(
        Merchant,
        exists(select(sig.c.key_id)).label("signature_new"),
        exists(select(claim.c.key)).label("claim_new"),
    ).where(Merchant.id == mid)
    _CLAIM_REQUEST = statement
    return statement


def claim_merchant_request(session: Session, *, merchant_id: int, key_id: str,
                           signature: str, signature_max_age: timedelta, principal: str,
                           key: str, fingerprint: str, ttl: timedelta) -> RequestClaim | None:
    """A merchant's request, in one round trip on PostgreSQL: read the merchant (its row
    stays in the session), and only if it is active record the request's signature, and only
    if that signature is new claim the idempotency key. None on another database (the caller
    takes the statements one by one: :func:`remember_signature`, :func:`idempotency_begin`).

    Only the common case is decided here: a key already claimed (``claim_new`` False with
    ``signature_new`` True) is for :func:`idempotency_begin` to sort out (a replayed
    response, a reused key, an expired or abandoned claim), in the same transaction."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    ttl = max(ttl, MIN_IDEMPOTENCY_TTL)
    now = utcnow()
    row = session.execute(_claim_request_statement(), {
        "merchant_id": merchant_id, "now": now, "key_id": key_id, "signature": signature,
        "principal": principal, "key": key, "fingerprint": fingerprint,
        "expires_at": now + ttl}).first()
    if row is None:
        return RequestClaim(None, False, False)
    merchant, signature_new, claim_new = row
    # The purges the one-by-one path makes (at most once a minute each).
    if signature_new and _due("signatures"):
        purge_signatures(session, max_age=signature_max_age)
    if claim_new and _due("idempotency"):
        purge_idempotency(session)
    return RequestClaim(merchant, bool(signature_new), bool(claim_new))


def idempotency_release(session: Session, *, principal: str, key: str) -> None:
    """Forget a claim whose request failed without a response worth replaying (5xx)."""
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.principal == principal,
                                                    IdempotencyRecord.key == key,
                                                    IdempotencyRecord.status_code.is_(None)))


_COMPLETE: Executable | None = None


def idempotency_complete(session: Session, *, principal: str, key: str, status_code: int,
                         body: str, content_type: str) -> None:
    """Store the response of the request that claimed ``key``, for replays (one UPDATE)."""
    global _COMPLETE
    if _COMPLETE is None:
        # Built once per process; no session synchronisation (nothing reads the record
        # again in the request's session, and evaluating the criteria against every object
        # of the session was work on every request).
        # On the table, run on the session's connection (same transaction): the ORM's
        # bulk-update path around one UPDATE was ~40% of this function's time.
        t = table_of(IdempotencyRecord)
        _COMPLETE = (update(t)
                     .where(t.c.principal == bindparam("p"), t.c.key == bindparam("k"))
                     .values(status_code=bindparam("status_code"), body=bindparam("body"),
                             content_type=bindparam("content_type")))
    res = session.connection().execute(
        _COMPLETE, {"p": principal, "k": key, "status_code": status_code, "body": body,
                    "content_type": content_type})
    if int(getattr(res, "rowcount", 0) or 0) != 1:
        raise LedgerNotFoundError("idempotency record vanished")


# PostgreSQL: the recorded response and COMMIT in one round trip. The UPDATE fails (division
# by zero: the pipeline aborts before its COMMIT, and the transaction rolls back) unless it
# found the record, as :func:`idempotency_complete` refuses before its commit.
_COMPLETE_PG = ("WITH done AS (UPDATE idempotency_records SET status_code = %(status_code)s, "
                "body = %(body)s, content_type = %(content_type)s "
                "WHERE principal = %(p)s AND key = %(k)s RETURNING 1) "
                "SELECT 1 / (SELECT count(*) FROM done)::integer")


def idempotency_complete_and_commit(session: Session, *, principal: str, key: str,
                                    status_code: int, body: str, content_type: str) -> bool:
    """:func:`idempotency_complete`, then commit the session's transaction, on PostgreSQL in
    one round trip instead of two: the UPDATE and the COMMIT go out together in psycopg's
    pipeline mode and are answered together. Nothing is committed unless the record was
    updated (``LedgerNotFoundError`` then, the transaction rolled back by the caller's
    session, as before). An error of the database is raised as SQLAlchemy raises it (an
    ``OperationalError``, so the store's 503, for a connection lost or a failed commit).

    False, with nothing done, on another database (or a driver without pipeline mode): the
    caller then completes and commits as before."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    import psycopg
    from sqlalchemy.exc import DBAPIError

    if not psycopg.Pipeline.is_supported():
        return False
    session.flush()  # nothing of the ORM's may be left to send after the COMMIT
    raw = session.connection().connection.driver_connection
    assert raw is not None
    params = {"p": principal, "k": key, "status_code": status_code, "body": body,
              "content_type": content_type}
    try:
        # Both queued, then one Sync at the pipeline's end: one round trip. (``commit()``
        # in a pipeline syncs by itself, and the pipeline's end would then send a second.)
        # psycopg reads the transaction's state from the server's answer: idle after it.
        with raw.pipeline():
            raw.execute(_COMPLETE_PG, params)
            raw.execute("COMMIT")
    except psycopg.errors.DivisionByZero as exc:
        raise LedgerNotFoundError("idempotency record vanished") from exc
    except psycopg.Error as exc:
        raise DBAPIError.instance(_COMPLETE_PG, params, exc, psycopg.Error) from exc
    # SQLAlchemy's own commit (the caller's session) then finds the connection idle: psycopg
    # sends nothing for it.
    return True


def purge_idempotency(session: Session) -> int:
    """Delete expired idempotency records; give how many."""
    res = session.execute(delete(IdempotencyRecord)
                          .where(IdempotencyRecord.expires_at < utcnow()))
    return int(getattr(res, "rowcount", 0) or 0)


def reserve_nonces(session: Session, *, chain_id: int, address: str, count: int,
                   chain_nonce: Callable[[], int], chain_floor: int | None = None) -> int:
    """Reserve ``count`` contiguous nonces of a signer; give the first.

    The counter starts from the node's pending nonce (``chain_nonce()``, asked only when the
    signer has no counter yet). ``chain_floor``, when the caller knows the node's pending
    nonce anyway, lifts a counter the chain has moved past (transactions sent elsewhere).
    One UPDATE … RETURNING does the reservation, so concurrent callers never overlap."""
    if count < 1:
        raise LedgerValidationError("count must be at least 1", field="count")
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


def purge_due() -> bool:
    """Whether a purge of expired replay or idempotency records is due in this process (the
    next request through :func:`claim_merchant_request` makes it); nothing is marked."""
    now = time.monotonic()
    return any(_is_due(name, now) for name in ("signatures", "idempotency"))


@dataclass(frozen=True)
class QueuedRequest:
    """What :func:`queue_merchant_requests` writes for one merchant's request: its replay
    record, its idempotency record with the response already recorded, and one outbox
    operation (the kind's name, its payload's JSON text, its lines)."""

    merchant_id: int
    key_id: str
    signature: str
    principal: str
    key: str
    fingerprint: str
    ttl: timedelta  # of the idempotency record (at least MIN_IDEMPOTENCY_TTL, as elsewhere)
    status_code: int
    body: str  # the response as stored (sealed)
    content_type: str
    operation_id: str
    kind: str
    payload_json: str
    lines: int
    now: datetime  # aware: seen_at, created_at, updated_at


# One statement (PostgreSQL, data-modifying CTEs), its own transaction: each write only if
# what comes before it allows. The merchant must be active and have its program; then the
# signature goes in unless seen before, the idempotency record (its response already
# recorded) unless the key is claimed, and the operation only if the claim went in. It
# divides by zero (the statement fails, nothing of it stays) when the signature went in but
# the operation did not: either everything is written or nothing.
_QUEUE_REQUEST_PG = """\
WITH m AS (
  SELECT id, account_address FROM merchants
  WHERE id = %(merchant_id)s AND status = 'active' AND program_address IS NOT NULL),
sig AS (
  INSERT INTO used_request_signatures (key_id, signature, seen_at)
  SELECT %(key_id)s, %(signature)s, %(now)s FROM m
  ON CONFLICT DO NOTHING RETURNING 1),
claim AS (
  INSERT INTO idempotency_records
    (principal, key, fingerprint, status_code, body, content_type, created_at, expires_at)
  SELECT %(principal)s, %(key)s, %(fingerprint)s, %(status_code)s, %(body)s,
         %(content_type)s, %(now)s, %(expires_at)s
  WHERE EXISTS (SELECT 1 FROM sig)
  ON CONFLICT DO NOTHING RETURNING 1),
op AS (
  INSERT INTO operations
    (id, merchant_id, kind, payload, lines, status, signer, attempts, created_at, updated_at)
  SELECT %(operation_id)s, m.id, %(kind)s, %(payload)s::json, %(lines)s, 'queued',
         m.account_address, 0, %(now)s, %(now)s
  FROM m WHERE EXISTS (SELECT 1 FROM claim)
  RETURNING 1)
SELECT 1 / (CASE WHEN EXISTS (SELECT 1 FROM sig) AND NOT EXISTS (SELECT 1 FROM op)
            THEN 0 ELSE 1 END), EXISTS (SELECT 1 FROM op)"""
# The same, and the elected worker's outbox, in another process, hears the operation at the
# statement's commit (``ledger.outbox.bell.CHANNEL``; nothing when nothing was queued or the
# statement failed: a notification is sent only by a transaction that commits).
_QUEUE_REQUEST_PG_NOTIFY = _QUEUE_REQUEST_PG + \
    ",\n       (SELECT count(pg_notify('outbox_queued', '')) FROM op)"
# When this process's last notification went (monotonic): see queue_merchant_requests.
_notified_at = [-1e9]

# The most requests one group statement writes (:func:`queue_merchant_requests`).
MAX_GROUP = 64

# Many requests' writes in one statement (PostgreSQL), all of them or none: the rows come in
# as arrays (one per column, ``unnest`` pairs them up), each table's rows go in with ON
# CONFLICT DO NOTHING (a row that meets an earlier row, of the table or of the same group,
# is skipped: a signature seen before, a key claimed, the same key twice in the group), and
# the statement divides by zero unless every table took every row and every merchant was
# active with its program. So it either writes each request whole or writes nothing; then
# the caller runs each request through the one-request statement above, which answers each
# as it always has.
_QUEUE_REQUESTS_PG = """\
WITH r AS (
  SELECT * FROM unnest(%(merchant_id)s::int4[], %(key_id)s::text[], %(signature)s::text[],
                       %(principal)s::text[], %(key)s::text[], %(fingerprint)s::text[],
                       %(status_code)s::int4[], %(body)s::text[], %(content_type)s::text[],
                       %(now)s::timestamptz[], %(expires_at)s::timestamptz[],
                       %(operation_id)s::text[], %(kind)s::text[], %(payload)s::text[],
                       %(lines)s::int4[])
    AS r(merchant_id, key_id, signature, principal, key, fingerprint, status_code, body,
         content_type, now, expires_at, operation_id, kind, payload, lines)),
m AS (
  SELECT id, account_address FROM merchants
  WHERE id = ANY(%(merchant_id)s::int4[]) AND status = 'active'
    AND program_address IS NOT NULL),
sig AS (
  INSERT INTO used_request_signatures (key_id, signature, seen_at)
  SELECT r.key_id, r.signature, r.now FROM r JOIN m ON m.id = r.merchant_id
  ON CONFLICT DO NOTHING RETURNING 1),
claim AS (
  INSERT INTO idempotency_records
    (principal, key, fingerprint, status_code, body, content_type, created_at, expires_at)
  SELECT r.principal, r.key, r.fingerprint, r.status_code, r.body, r.content_type, r.now,
         r.expires_at
  FROM r JOIN m ON m.id = r.merchant_id
  ON CONFLICT DO NOTHING RETURNING 1),
op AS (
  INSERT INTO operations
    (id, merchant_id, kind, payload, lines, status, signer, attempts, created_at, updated_at)
  SELECT r.operation_id, m.id, r.kind, r.payload::json, r.lines, 'queued',
         m.account_address, 0, r.now, r.now
  FROM r JOIN m ON m.id = r.merchant_id
  RETURNING 1)
SELECT 1 / (CASE WHEN (SELECT count(*) FROM sig) = %(n)s
                  AND (SELECT count(*) FROM claim) = %(n)s
                  AND (SELECT count(*) FROM op) = %(n)s THEN 1 ELSE 0 END)"""
# The same, notifying the outbox once for the group (delivered only if it commits).
_QUEUE_REQUESTS_PG_NOTIFY = _QUEUE_REQUESTS_PG + \
    ",\n       (SELECT count(pg_notify('outbox_queued', '')) FROM (SELECT 1 FROM op LIMIT 1) o)"


def _params(request: QueuedRequest) -> dict[str, Any]:
    return {
        "merchant_id": request.merchant_id, "key_id": request.key_id,
        "signature": request.signature, "principal": request.principal, "key": request.key,
        "fingerprint": request.fingerprint, "status_code": request.status_code,
        "body": request.body, "content_type": request.content_type, "now": request.now,
        "expires_at": request.now + max(request.ttl, MIN_IDEMPOTENCY_TTL),
        "operation_id": request.operation_id,
        "kind": request.kind, "payload": request.payload_json, "lines": request.lines}


def _notify_due(notify_spacing_s: float) -> tuple[bool, float]:
    now = time.monotonic()
    return now - _notified_at[0] >= notify_spacing_s, now


def _queue_one(conn: Any, request: QueuedRequest, notify_spacing_s: float) -> bool:
    """The one-request statement on ``conn`` (autocommit); its psycopg errors raised."""
    import psycopg

    notify, now = _notify_due(notify_spacing_s)
    try:
        row = conn.execute(_QUEUE_REQUEST_PG_NOTIFY if notify else _QUEUE_REQUEST_PG,
                           _params(request)).fetchone()
    except psycopg.errors.DivisionByZero:
        return False  # the key was claimed: the statement failed whole
    queued = bool(row is not None and row[1])
    if queued and notify:
        _notified_at[0] = now
    return queued


def _queue_group(conn: Any, requests: Sequence[QueuedRequest],
                 notify_spacing_s: float) -> list[bool | Exception]:
    """The group statement on ``conn``, then each request alone if it wrote nothing."""
    import psycopg

    notify, now = _notify_due(notify_spacing_s)
    rows = [_params(r) for r in requests]
    params: dict[str, Any] = {name: [row[name] for row in rows] for name in rows[0]}
    params["n"] = len(rows)
    try:
        conn.execute(_QUEUE_REQUESTS_PG_NOTIFY if notify else _QUEUE_REQUESTS_PG, params)
    except psycopg.OperationalError as exc:
        # A deadlock (another process's group taking two of the same keys in the other
        # order; one request alone cannot) is the group's own doing, not the store's
        # failure: each request alone then, as for a row the group could not take.
        if not isinstance(exc, psycopg.errors.DeadlockDetected):
            raise
        return _one_by_one(conn, requests, notify_spacing_s, exc)
    except psycopg.Error as exc:
        # A row the group could not take whole (DivisionByZero: see above) or any other
        # error of one request's data: nothing was written; each request alone, as before.
        return _one_by_one(conn, requests, notify_spacing_s, exc)
    if notify:
        _notified_at[0] = now
    return [True] * len(rows)


def _one_by_one(conn: Any, requests: Sequence[QueuedRequest], notify_spacing_s: float,
                exc: Exception) -> list[bool | Exception]:
    """Each request alone (the group's statement wrote nothing: ``exc``), in order."""
    import psycopg

    if not isinstance(exc, psycopg.errors.DivisionByZero):
        log.warning("a group of %d lean requests failed (%s): one by one", len(requests), exc)
    out: list[bool | Exception] = []
    for request in requests:
        try:
            out.append(_queue_one(conn, request, notify_spacing_s))
        except psycopg.OperationalError:
            raise
        except psycopg.Error as one:
            out.append(one)
    return out


def queue_merchant_requests(engine: Engine, requests: Sequence[QueuedRequest], *,
                            notify_spacing_s: float = 0.0) -> list[bool | Exception]:
    """Write up to :data:`MAX_GROUP` merchants' queueing requests (:class:`QueuedRequest`),
    each whole, on PostgreSQL's driver in one round trip and one transaction (a group
    commit; no BEGIN, no COMMIT of their own: the connection is in autocommit for it),
    durable when it returns. Each request's answer in order: True written; False nothing
    written (the merchant is not active or unknown, the signature was seen before, the key
    is claimed already: the caller then takes the request through
    :func:`claim_merchant_request` and its session, which answers each of those); or the
    database's error for that request alone.

    One request goes through the one-request statement. A group is written by one
    statement, all of it or nothing; if it cannot be written whole (a replayed signature, a
    claimed key, an inactive merchant, a key twice in the group), each request is written
    alone by the one-request statement, on the same connection, so each gets exactly the
    answer it would get alone, in the group's order. A database that cannot answer raises
    StoreUnavailableError for the group (nothing of the failed statement stays), as a
    session does.

    The statement notifies the outbox of another process (the elected worker's) unless this
    process's last one went less than ``notify_spacing_s`` ago: under a stream of requests
    the outbox reads its queue every ``batch_window_ms`` anyway, and a notification per
    request cost PostgreSQL and the listener (:class:`ledger.outbox.bell.BellListener`) a
    delivery each; one skipped is found by that read, as before the notifications."""
    import psycopg

    if not 1 <= len(requests) <= MAX_GROUP:
        raise LedgerValidationError(f"a group holds 1 to {MAX_GROUP} requests",
                                    field="requests")
    try:
        # The pool's own errors come unwrapped here (a session's connection wraps them).
        raw = engine.raw_connection()
    except (OperationalError, psycopg.OperationalError) as exc:
        log.warning("the store could not answer: %s", exc)
        raise StoreUnavailableError("the database cannot answer now; retry later") from exc
    try:
        conn = raw.driver_connection
        assert isinstance(conn, psycopg.Connection)
        conn.autocommit = True  # no round trip: the pooled connection is idle
        try:
            if len(requests) > 1:
                return _queue_group(conn, requests, notify_spacing_s)
            try:
                return [_queue_one(conn, requests[0], notify_spacing_s)]
            except psycopg.OperationalError:
                raise
            except psycopg.Error as exc:
                return [exc]
        finally:
            if not conn.closed:
                conn.autocommit = False
    except psycopg.OperationalError as exc:
        raw.invalidate(exc)
        log.warning("the store could not answer: %s", exc)
        raise StoreUnavailableError("the database cannot answer now; retry later") from exc
    finally:
        raw.close()
