"""The outbox's tables: queued operations, their claims, and the transactions that carry them.

Claims are single statements, so several workers never take the same operation.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    null,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from ..store.models import (
    ChainTx,
    ChainTxOperation,
    Merchant,
    Operation,
    OperationStatus,
    SignerNonce,
    utcnow,
)
from ..store.tables import table_of
from . import bell
from .kinds import OperationKind, P

OperationRow = Operation

# The tables themselves, for the hot path's Core statements (an ORM-enabled statement walks
# the mapper and the session's identity map on every execution: recording and confirming a
# transaction cost ~20 us of the outbox thread per operation of a 200-line batch that way).
_OPERATIONS = table_of(Operation)
_CHAIN_TXS = table_of(ChainTx)
_CHAIN_TX_OPS = table_of(ChainTxOperation)

# The statements of recording and confirming a transaction, built once (each call built its
# three or four statements anew: the clauses' coercions and cache keys were about a fifth of the
# outbox thread's CPU in the ledger layer's benchmark; a built statement memoizes its key).
_c, _t = _OPERATIONS.c, _CHAIN_TXS.c
_OPS_IN = _c.id.in_(bindparam("op_ids", expanding=True))
_TX_EXISTS = select(_t.tx_hash).where(_t.tx_hash == bindparam("b_tx"))
_INSERT_TX = insert(_CHAIN_TXS)
_INSERT_LINKS = insert(_CHAIN_TX_OPS)
# On PostgreSQL the operations go as one array parameter (``= ANY(:op_ids)``), on SQLite as
# an expanding IN (a parameter each). With a parameter each, every count of operations was
# another statement text on PostgreSQL, parsed and planned anew at each execution (none
# reached psycopg's prepare threshold, and a text of 200 ids is too long for its conversion
# cache): ~13 ms of the server per 200-operation update under single requests from the API
# processes (scripts/bench_http.py, pg_stat_statements).
_OPS_ANY = _c.id == any_(bindparam("op_ids", type_=ARRAY(String)))
_SUBMITTED = update(_OPERATIONS).where(_OPS_IN).values(
    status=OperationStatus.SUBMITTED, tx_hash=bindparam("b_tx"),
    updated_at=bindparam("b_now", type_=_c.updated_at.type))
_CONFIRMED = update(_OPERATIONS).where(_OPS_IN).values(
    status=bindparam("b_status", type_=_c.status.type), tx_hash=bindparam("b_tx"),
    block_number=bindparam("b_block"), error_code=None, error_message=None,
    updated_at=bindparam("b_now", type_=_c.updated_at.type))
# On PostgreSQL recording a transaction is one statement, and so is confirming one: the
# outbox thread waits for each round trip, and on two busy cores a round trip is a wait for
# the server's backend to be scheduled (about 40 a signer's round, 4 a transaction recorded
# and 3 confirmed, made a round of 1,600 single requests' operations last ~2 s under
# bench_http.py; each operation waited about two rounds from queued to confirmed). The
# record's links go in one INSERT ... SELECT unnest(...), where executemany sent an INSERT
# per operation (9,056 statements for 9,056 operations in one run). The very same
# transaction signed again (same operations, nonce and fees, after the chain lost it and its
# operations were queued again) keeps its record: pending again, links it has kept (``xmax =
# 0``: the row was inserted, not updated, so it has no links yet: a plain INSERT of them).
_RECORD_PG = text("""\
WITH tx AS (
  INSERT INTO chain_txs
    (tx_hash, chain_id, signer, nonce, raw, max_fee, priority_fee, status, lines, sent_at)
  VALUES (:b_tx, :chain_id, :signer, :nonce, :raw, :max_fee, :priority_fee, 'pending', :lines,
          :b_now)
  ON CONFLICT (tx_hash) DO UPDATE
    SET status = 'pending', mined_block = NULL, sent_at = EXCLUDED.sent_at
  RETURNING (xmax = 0) AS inserted),
links AS (
  INSERT INTO chain_tx_operations (tx_hash, operation_id)
  SELECT :b_tx, op FROM tx, unnest(CAST(:op_ids AS VARCHAR[])) AS op
  WHERE tx.inserted OR NOT EXISTS (
    SELECT 1 FROM chain_tx_operations l WHERE l.tx_hash = :b_tx AND l.operation_id = op))
UPDATE operations SET status = :b_status, tx_hash = :b_tx, updated_at = :b_now
WHERE id = ANY(CAST(:op_ids AS VARCHAR[]))""")
# (and the transaction recorded at the same nonce, if another is, can no longer land)
_CONFIRM_PG = text("""\
WITH ops AS (
  UPDATE operations SET status = :b_status, tx_hash = :b_tx, block_number = :b_block,
    error_code = NULL, error_message = NULL, updated_at = :b_now
  WHERE id = ANY(CAST(:op_ids AS VARCHAR[]))),
mined AS (
  UPDATE chain_txs SET status = 'mined', mined_block = :b_block WHERE tx_hash = :b_tx
  RETURNING signer, nonce)
UPDATE chain_txs SET status = 'replaced' FROM mined
WHERE chain_txs.signer = mined.signer AND chain_txs.nonce = mined.nonce
  AND chain_txs.tx_hash <> :b_tx AND chain_txs.status = 'pending'""")
_TX_MINED = update(_CHAIN_TXS).where(_t.tx_hash == bindparam("b_tx")).values(
    status="mined", mined_block=bindparam("b_block"))
_MINED_AT = select(_t.signer, _t.nonce).where(_t.tx_hash == bindparam("b_tx")).subquery()
# Another transaction recorded at the same nonce (a fee bump's replacement, or the original a
# replacement was meant to replace) can no longer land.
_OTHERS_REPLACED = update(_CHAIN_TXS).where(
    _t.signer == select(_MINED_AT.c.signer).scalar_subquery(),
    _t.nonce == select(_MINED_AT.c.nonce).scalar_subquery(),
    _t.tx_hash != bindparam("b_tx"), _t.status == "pending").values(status="replaced")
# The claim's: the oldest queued of a merchant (locked, skipping locked rows, on PostgreSQL:
# _CANDIDATES_PG), then those chosen moved to ``sending``.
_CANDIDATES = (select(_c.seq, _c.lines)
               .where(_c.merchant_id == bindparam("b_merchant"),
                      _c.status == OperationStatus.QUEUED)
               .order_by(_c.seq).limit(bindparam("b_limit")))
_CLAIM = (update(_OPERATIONS)
          .where(_c.seq.in_(bindparam("seqs", expanding=True)),
                 _c.status == OperationStatus.QUEUED)
          .values(status=OperationStatus.SENDING, attempts=_c.attempts + 1,
                  updated_at=bindparam("b_now", type_=_c.updated_at.type))
          .returning(_c.id, _c.seq, _c.kind, _c.lines, _c.status, _c.attempts))
# On PostgreSQL the candidates give their ids too, and the claim returns the payload of each
# operation this process does not hold (``held``): a third statement read it (a round trip
# and an index lookup an operation, for the elected worker every operation the API processes
# queued).
_CANDIDATES_PG = (select(_c.seq, _c.lines, _c.id)
                  .where(_c.merchant_id == bindparam("b_merchant"),
                         _c.status == OperationStatus.QUEUED)
                  .order_by(_c.seq).limit(bindparam("b_limit"))
                  .with_for_update(skip_locked=True))
_CLAIM_PG = (update(_OPERATIONS)
             .where(_c.seq == any_(bindparam("seqs", type_=ARRAY(Integer))),
                    _c.status == OperationStatus.QUEUED)
             .values(status=OperationStatus.SENDING, attempts=_c.attempts + 1,
                     updated_at=bindparam("b_now", type_=_c.updated_at.type))
             .returning(_c.id, _c.seq, _c.kind, _c.lines, _c.status, _c.attempts,
                        type_coerce(case((_c.id == any_(bindparam("held", type_=ARRAY(String))),
                                          null()), else_=_c.payload),
                                    _c.payload.type).label("payload")))

# The stored payloads of claimed operations this process did not queue.
_PAYLOADS = select(_c.id, _c.payload).where(_OPS_IN)
_PAYLOADS_PG = select(_c.id, _c.payload).where(_OPS_ANY)


def _on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# Lines of payloads this process queued that its outbox worker may take typed, without
# parsing them back from their JSON (:class:`QueuedPayloads`).
QUEUED_PAYLOAD_LINES = 50_000


class QueuedPayloads:
    """The typed payloads this process queued, by operation id, until its outbox worker
    claims them: the worker of the process that accepted an operation takes the very
    (frozen) payload object whose JSON it wrote, where it parsed that JSON back (a 200-line
    issue: every line's dataclass built and checked again, about a fifth of the outbox
    thread's CPU). Bounded in lines, oldest first out; an operation another process queued,
    one evicted, or one claimed again after a failure is parsed from its column as before.
    A payload whose transaction rolled back is never claimed and ages out."""

    def __init__(self, max_lines: int = QUEUED_PAYLOAD_LINES) -> None:
        self.max_lines = max_lines
        self._lock = threading.Lock()
        self._by_id: dict[str, tuple[str, Any, int]] = {}  # id -> (kind, payload, lines)
        self._lines = 0

    def put(self, op_id: str, kind: str, payload: Any, lines: int) -> None:
        with self._lock:
            self._by_id[op_id] = (kind, payload, lines)
            self._lines += lines
            while self._lines > self.max_lines and self._by_id:
                self._lines -= self._by_id.pop(next(iter(self._by_id)))[2]  # the oldest

    def take(self, op_id: str, kind: str) -> Any | None:
        """The payload queued as ``op_id`` of ``kind`` (None: not held); given once."""
        with self._lock:
            held = self._by_id.pop(op_id, None)
            if held is None:
                return None
            self._lines -= held[2]
        return held[1] if held[0] == kind else None

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, op_id: object) -> bool:
        return op_id in self._by_id


QUEUED_PAYLOADS = QueuedPayloads()


def enqueue(session: Session, *, kind: OperationKind[P], payload: P, merchant_id: int,
            signer: str, data: dict[str, Any] | None = None) -> Operation:
    """Queue an operation of ``kind`` in the caller's transaction; its payload is written
    to the JSON column once, by the kind (a payload of another type is refused), and kept
    typed for this process's worker (:class:`QueuedPayloads`). ``data``: that JSON, when the
    caller wrote it already (``kind.dump(payload)``, before its transaction began)."""
    if data is None:
        data = kind.dump(payload)
    elif not isinstance(payload, kind.payload_type):
        kind.dump(payload)  # refused as dump refuses it
    lines = kind.lines(payload)
    op = enqueue_operation(session, merchant_id=merchant_id, kind=kind.name, payload=data,
                           signer=signer, lines=lines)
    QUEUED_PAYLOADS.put(op.id, kind.name, payload, lines)
    return op


def enqueue_operation(session: Session, *, merchant_id: int, kind: str,
                      payload: dict[str, Any], signer: str, lines: int | None = None
                      ) -> Operation:
    """Queue an operation from its stored form (the kind's name and JSON payload)."""
    if lines is None:
        lines = max(1, len(payload.get("items", ())))
    op = Operation(id=str(uuid.uuid4()), merchant_id=merchant_id, kind=kind, payload=payload,
                   lines=lines, status=OperationStatus.QUEUED, signer=signer)
    session.add(op)
    session.flush()
    bell.queued(session)  # this process's outbox woken once it commits
    return op


def get_operation(session: Session, operation_id: str) -> Operation | None:
    return session.scalar(select(Operation).where(Operation.id == operation_id))


def count_operations(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Operation)) or 0)


def queued_counts(session: Session, *, cap: int | None = None) -> dict[int, int]:
    """Queued operations per merchant that has any (read from the status index alone);
    ``cap``: each count stops there (the worker asks whether a batch's worth is queued).

    Capped, it is one statement that walks the index to each merchant's first queued
    operation and counts at most ``cap`` from there: the uncapped count walked the whole
    backlog on every round of the worker (4,000 queued operations: 0.26 ms of SQLite and
    0.5 ms of the ORM statement around it, 13x the capped text's CPU side by side)."""
    if cap is not None:
        return {int(m): int(n) for m, n in session.execute(
            _QUEUED_HEADS, {"queued": OperationStatus.QUEUED.value, "cap": cap})}
    return {int(m): int(n) for m, n in session.execute(
        select(Operation.merchant_id, func.count())
        .where(Operation.status == OperationStatus.QUEUED).group_by(Operation.merchant_id))}


# The merchants with queued operations found by a skip-scan of ix_operations_status_merchant
# (the next merchant id above the last, one index seek each), and each one's queued count up
# to :cap. The same SQL on SQLite and PostgreSQL.
_QUEUED_HEADS = text("""
WITH RECURSIVE heads(merchant_id) AS (
    SELECT min(merchant_id) FROM operations WHERE status = :queued
    UNION ALL
    SELECT (SELECT min(o.merchant_id) FROM operations o
            WHERE o.status = :queued AND o.merchant_id > heads.merchant_id)
    FROM heads WHERE heads.merchant_id IS NOT NULL)
SELECT heads.merchant_id,
       (SELECT count(*) FROM (SELECT 1 FROM operations o
                              WHERE o.status = :queued AND o.merchant_id = heads.merchant_id
                              LIMIT :cap) AS upto)
FROM heads WHERE heads.merchant_id IS NOT NULL""")


def signers(session: Session) -> list[str]:
    """Every signer that ever had an operation queued (the recovery aligns their nonces)."""
    return list(session.scalars(select(Operation.signer).distinct()))


@dataclass
class ClaimedRow:
    """An operation as a claim gives it: ``held``, the typed payload this process queued it
    with (:class:`QueuedPayloads`, taken by the claim), else ``payload``, its stored JSON
    (None when ``held`` is given: the column was not read)."""

    id: str
    seq: int
    kind: str
    lines: int
    status: OperationStatus
    attempts: int
    held: Any | None = None
    payload: dict[str, Any] | None = None


def claim_operations(session: Session, *, merchant_id: int, max_lines: int
                     ) -> list[ClaimedRow]:
    """Move the oldest queued operations of a merchant, up to ``max_lines`` lines in all (at
    least one operation), to ``sending``, and give them.

    No operation is handed out twice: on PostgreSQL the candidates are locked with SKIP
    LOCKED; on SQLite the session's transaction began IMMEDIATE, holding the write lock.

    The payload column (~40 kB JSON for a 200-line issue) is read back, and decoded, only for
    operations whose typed payload this process does not hold: the claim runs holding the
    store's writer, and the worker of the process that queued them never used that JSON. On
    PostgreSQL the claim's own statement returns those payloads."""
    pg = _on_postgresql(session)
    chosen: list[int] = []
    held: list[str] = []  # (PostgreSQL) ids of candidates whose payload this process holds
    total = 0
    for row in session.execute(_CANDIDATES_PG if pg else _CANDIDATES,
                               {"b_merchant": merchant_id, "b_limit": max_lines}):
        if chosen and total + row.lines > max_lines:
            break
        chosen.append(row.seq)
        total += row.lines
        if pg and row.id in QUEUED_PAYLOADS:
            held.append(row.id)
    if not chosen:
        return []
    if pg:
        rows = session.execute(_CLAIM_PG, {"seqs": chosen, "b_now": utcnow(), "held": held})
        out = [ClaimedRow(r.id, r.seq, r.kind, r.lines, r.status, r.attempts,
                          QUEUED_PAYLOADS.take(r.id, r.kind), r.payload) for r in rows]
    else:
        out = [ClaimedRow(r.id, r.seq, r.kind, r.lines, r.status, r.attempts,
                          QUEUED_PAYLOADS.take(r.id, r.kind))
               for r in session.execute(_CLAIM, {"seqs": chosen, "b_now": utcnow()})]
    out.sort(key=lambda o: o.seq)
    for o in out:
        if o.held is not None:
            o.payload = None  # (given if it was held when the claim asked)
    # (PostgreSQL: a payload the claim did not return and this process no longer holds:
    # evicted from QUEUED_PAYLOADS between the two statements)
    unread = [o.id for o in out if o.held is None and o.payload is None]
    if unread:
        payloads = dict(session.execute(_PAYLOADS_PG if pg else _PAYLOADS,
                                        {"op_ids": unread}).all())
        for o in out:
            if o.held is None and o.payload is None:
                o.payload = payloads[o.id]
    return out


def claimed_payload(session: Session, op: ClaimedRow) -> dict[str, Any]:
    """A claimed operation's stored JSON, read if the claim did not (it held the payload)."""
    if op.payload is None:
        op.payload = session.scalar(select(_OPERATIONS.c.payload)
                                    .where(_OPERATIONS.c.id == op.id))
    return op.payload or {}


def unclaim_operations(session: Session, op_ids: Sequence[str]) -> None:
    """Give claimed (``sending``) operations back to the queue untouched, as if never
    claimed: they keep their place (``seq``) for the next round."""
    session.execute(update(Operation).where(Operation.id.in_(op_ids),
                                            Operation.status == OperationStatus.SENDING)
                    .values(status=OperationStatus.QUEUED, attempts=Operation.attempts - 1)
                    .execution_options(synchronize_session=False))


def record_submission(session: Session, *, op_ids: Sequence[str], chain_id: int, signer: str,
                      tx_hash: str, nonce: int, raw: str, max_fee: int,
                      priority_fee: int, lines: int | None = None) -> None:
    """Record a signed transaction and mark its operations submitted, before broadcasting
    (``lines``: the operations' lines, when the caller knows them)."""
    if lines is None:
        lines = int(session.scalar(select(func.sum(_OPERATIONS.c.lines))
                                   .where(_OPERATIONS.c.id.in_(op_ids))) or 0)
    if _on_postgresql(session):
        session.execute(_RECORD_PG, {
            "b_tx": tx_hash, "chain_id": chain_id, "signer": signer, "nonce": nonce,
            "raw": raw, "max_fee": str(max_fee), "priority_fee": str(priority_fee),
            "lines": lines, "b_now": utcnow(), "op_ids": list(op_ids),
            "b_status": OperationStatus.SUBMITTED.value})
        return
    linked: set[str] = set()
    existing = session.execute(_TX_EXISTS, {"b_tx": tx_hash}).first()
    if existing is None:
        session.execute(_INSERT_TX, {
            "tx_hash": tx_hash, "chain_id": chain_id, "signer": signer, "nonce": nonce,
            "raw": raw, "max_fee": max_fee, "priority_fee": priority_fee, "status": "pending",
            "lines": lines})
    else:
        # The very same transaction signed again (same operations, nonce and fees) after the
        # chain lost it and its operations were queued again: the record lives on.
        session.execute(update(_CHAIN_TXS).where(_CHAIN_TXS.c.tx_hash == tx_hash)
                        .values(status="pending", mined_block=None, sent_at=utcnow()))
        linked = set(session.scalars(select(_CHAIN_TX_OPS.c.operation_id)
                                     .where(_CHAIN_TX_OPS.c.tx_hash == tx_hash)))
    links = [{"tx_hash": tx_hash, "operation_id": op_id} for op_id in op_ids
             if op_id not in linked]
    if links:
        session.execute(_INSERT_LINKS, links)
    session.execute(_SUBMITTED, {"op_ids": list(op_ids), "b_tx": tx_hash, "b_now": utcnow()})


def confirm_operations(session: Session, op_ids: Sequence[str], *, tx_hash: str,
                       block_number: int, final: bool = True) -> None:
    """Record that the operations' transaction was mined; ``final`` marks them confirmed,
    otherwise they stay ``submitted`` (with their block) until deep enough. (The transaction
    recorded at the same nonce, if another is, can no longer land: ``replaced``.)"""
    tx_hash = tx_hash if tx_hash.startswith("0x") else "0x" + tx_hash
    status = OperationStatus.CONFIRMED if final else OperationStatus.SUBMITTED
    if _on_postgresql(session):
        session.execute(_CONFIRM_PG, {"op_ids": list(op_ids), "b_tx": tx_hash,
                                      "b_block": block_number, "b_now": utcnow(),
                                      "b_status": status.value})
        return
    session.execute(_CONFIRMED, {
        "op_ids": list(op_ids), "b_tx": tx_hash, "b_block": block_number, "b_now": utcnow(),
        "b_status": status})
    session.execute(_TX_MINED, {"b_tx": tx_hash, "b_block": block_number})
    session.execute(_OTHERS_REPLACED, {"b_tx": tx_hash})


def record_replacement(session: Session, *, replaced: str, tx_hash: str, raw: str,
                       max_fee: int, priority_fee: int) -> bool:
    """Record a fee-bumped replacement of ``replaced`` (same signer, nonce and operations),
    before it is broadcast: the replaced one is ``replaced`` (a rollback rebroadcasts the
    replacement; if the replaced one lands after all, settling it says so), and the
    operations point at the replacement. Gives False if ``replaced`` was never recorded (a
    transaction the outbox does not carry)."""
    old = session.get(ChainTx, replaced)
    if old is None:
        return False
    if session.get(ChainTx, tx_hash) is None:
        session.add(ChainTx(tx_hash=tx_hash, chain_id=old.chain_id, signer=old.signer,
                            nonce=old.nonce, raw=raw, max_fee=max_fee,
                            priority_fee=priority_fee, status="pending", lines=old.lines))
    if old.status == "pending":
        old.status = "replaced"
    session.flush()
    op_ids = list(session.scalars(select(ChainTxOperation.operation_id)
                                  .where(ChainTxOperation.tx_hash == replaced)))
    linked = set(session.scalars(select(ChainTxOperation.operation_id)
                                 .where(ChainTxOperation.tx_hash == tx_hash)))
    for op_id in op_ids:
        if op_id not in linked:
            session.add(ChainTxOperation(tx_hash=tx_hash, operation_id=op_id))
    session.execute(update(Operation).where(Operation.id.in_(op_ids),
                                            Operation.status == OperationStatus.SUBMITTED)
                    .values(tx_hash=tx_hash, updated_at=utcnow())
                    .execution_options(synchronize_session=False))
    return True


def promote_confirmed(session: Session, *, max_block: int) -> int:
    """Mark mined operations at or below ``max_block`` confirmed; give how many."""
    mined = select(ChainTx.tx_hash).where(ChainTx.status == "mined")
    res = session.execute(update(Operation).where(
        Operation.status == OperationStatus.SUBMITTED, Operation.block_number <= max_block,
        Operation.tx_hash.in_(mined)).values(status=OperationStatus.CONFIRMED, updated_at=utcnow()))
    return int(getattr(res, "rowcount", 0) or 0)


def fail_operations(session: Session, op_ids: Sequence[str], *, error_code: str,
                    error_message: str) -> None:
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status=OperationStatus.FAILED, error_code=error_code,
                            error_message=error_message[:500], updated_at=utcnow()))


def requeue_operations(session: Session, op_ids: Sequence[str], *, error_code: str,
                       status: OperationStatus = OperationStatus.QUEUED,
                       error_message: str | None = None) -> None:
    """Give operations another attempt: back to the queue, or kept claimed (``sending``) by
    a worker that retries them at once."""
    tx_hashes = list(session.scalars(select(Operation.tx_hash).where(Operation.id.in_(op_ids))))
    session.execute(update(ChainTx).where(ChainTx.tx_hash.in_([h for h in tx_hashes if h]))
                    .values(status="failed"))
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status=status, error_code=error_code, tx_hash=None,
                            error_message=None if error_message is None
                            else error_message[:500], updated_at=utcnow()))


def unrecord_submissions(session: Session, tx_hashes: Sequence[str], *, error_code: str,
                         error_message: str) -> None:
    """Forget transactions the node refused outright (never in any mempool; their nonces are
    given back) and put their operations back in the queue, saying why. The same operations
    signed again at the same nonce give the same hash, so the records must go, not linger."""
    op_ids = list(session.scalars(select(ChainTxOperation.operation_id)
                                  .where(ChainTxOperation.tx_hash.in_(tx_hashes))))
    session.execute(delete(ChainTxOperation).where(ChainTxOperation.tx_hash.in_(tx_hashes)))
    session.execute(delete(ChainTx).where(ChainTx.tx_hash.in_(tx_hashes)))
    session.execute(update(Operation).where(Operation.id.in_(op_ids))
                    .values(status=OperationStatus.QUEUED, error_code=error_code,
                            error_message=error_message[:500], tx_hash=None,
                            updated_at=utcnow()))


def requeue_sending(session: Session) -> int:
    """Operations claimed but never signed (a crash) go back to the queue."""
    res = session.execute(update(Operation).where(Operation.status == OperationStatus.SENDING)
                          .values(status=OperationStatus.QUEUED, updated_at=utcnow()))
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
            .where(ChainTxOperation.tx_hash == tx.tx_hash,
                   Operation.status == OperationStatus.SUBMITTED)))
        if ops:
            out.append(UnsettledTx(tx.tx_hash, tx.signer, tx.nonce, tx.raw, tx.max_fee,
                                   tx.priority_fee, ops))
    return out


def merchant_of_signer(session: Session, signer: str) -> int | None:
    """The merchant whose operations ``signer`` sends (None: none queued any)."""
    return session.scalar(select(Operation.merchant_id).where(Operation.signer == signer)
                          .limit(1))


def given_up_transactions(session: Session, op_ids: Sequence[str]) -> list[tuple[str, str]]:
    """(operation id, tx hash) of the transactions once recorded for these operations that
    the outbox gave up on (``failed``: reverted, requeued, or refused on rebroadcast) or
    replaced with a fee bump (``replaced``: the original may still have landed)."""
    return [(op_id, tx_hash) for op_id, tx_hash in session.execute(
        select(ChainTxOperation.operation_id, ChainTxOperation.tx_hash)
        .join(ChainTx, ChainTx.tx_hash == ChainTxOperation.tx_hash)
        .where(ChainTxOperation.operation_id.in_(op_ids),
               ChainTx.status.in_(["failed", "replaced"])))]


@dataclass(frozen=True)
class SignerHead:
    """What the store believes of one signer's nonces: the highest nonce of a transaction
    seen mined (None: none), and the next nonce its counter hands out (None: no counter)."""

    signer: str
    mined: int | None
    next_nonce: int | None


def signer_heads(session: Session, *, chain_id: int) -> list[SignerHead]:
    """Every signer with transactions recorded or a nonce counter on ``chain_id`` (the
    alliance's own keys too, whose transactions the outbox does not carry), and its
    :class:`SignerHead` (the outbox compares them with the node to notice a chain that
    rolled back)."""
    mined: dict[str, int] = {sig: int(n) for sig, n in session.execute(
        select(ChainTx.signer, func.max(ChainTx.nonce))
        .where(ChainTx.chain_id == chain_id, ChainTx.status == "mined")
        .group_by(ChainTx.signer))}
    counters: dict[str, int] = {sig: int(n) for sig, n in session.execute(
        select(SignerNonce.address, SignerNonce.next_nonce)
        .where(SignerNonce.chain_id == chain_id))}
    signers_ = set(session.scalars(select(ChainTx.signer).where(ChainTx.chain_id == chain_id)
                                   .distinct())) | set(counters)
    return [SignerHead(sig, mined.get(sig), counters.get(sig)) for sig in sorted(signers_)]


def unmine_from(session: Session, *, chain_id: int, signer: str, nonce: int) -> int:
    """The chain no longer holds a signer's transactions from ``nonce`` on (it rolled back
    below them): those recorded as mined are pending again and their operations, confirmed or
    not, ``submitted`` with no block, so the recovery pass settles, rebroadcasts or requeues
    them. Gives how many operations were confirmed and are no longer."""
    gone = select(ChainTx.tx_hash).where(ChainTx.chain_id == chain_id,
                                         ChainTx.signer == signer, ChainTx.nonce >= nonce,
                                         ChainTx.status == "mined")
    res = session.execute(update(Operation).where(
        Operation.tx_hash.in_(gone),
        Operation.status.in_([OperationStatus.CONFIRMED, OperationStatus.SUBMITTED]))
        .values(status=OperationStatus.SUBMITTED, block_number=None,
                error_code="chain-rolled-back", updated_at=utcnow())
        .execution_options(synchronize_session=False))
    session.execute(update(ChainTx).where(ChainTx.chain_id == chain_id, ChainTx.signer == signer,
                                          ChainTx.nonce >= nonce, ChainTx.status == "mined")
                    .values(status="pending", mined_block=None)
                    .execution_options(synchronize_session=False))
    return int(getattr(res, "rowcount", 0) or 0)


def transactions_of(session: Session, *, signer: str) -> list[ChainTx]:
    return list(session.scalars(select(ChainTx).where(ChainTx.signer == signer)
                                .order_by(ChainTx.nonce)))


def confirmed_transactions(session: Session, *, merchant_id: int) -> list[tuple[str, int]]:
    """(tx hash, lines) of a merchant's mined transactions, in nonce order."""
    signer = session.scalar(select(Merchant.account_address).where(Merchant.id == merchant_id))
    return [(t.tx_hash, t.lines) for t in session.scalars(
        select(ChainTx).where(ChainTx.signer == signer, ChainTx.status == "mined")
        .order_by(ChainTx.nonce))]


def mined_since(session: Session, *, chain_id: int, block: int) -> dict[int, list[str]]:
    """The transactions recorded as mined in blocks from ``block`` on, by block (the outbox
    checks that each is still in the block it was seen in)."""
    out: dict[int, list[str]] = {}
    for tx_hash, mined in session.execute(
            select(ChainTx.tx_hash, ChainTx.mined_block)
            .where(ChainTx.chain_id == chain_id, ChainTx.status == "mined",
                   ChainTx.mined_block >= block)):
        out.setdefault(int(mined or 0), []).append(tx_hash)
    return out


def move_mined(session: Session, *, tx_hash: str, block_number: int) -> int:
    """A mined transaction is now in block ``block_number`` (a reorganisation mined it again
    in another block): its record and its operations follow; gives the operations moved."""
    session.execute(update(ChainTx).where(ChainTx.tx_hash == tx_hash)
                    .values(mined_block=block_number))
    res = session.execute(
        update(Operation)
        .where(Operation.tx_hash == tx_hash,
               Operation.status.in_([OperationStatus.CONFIRMED, OperationStatus.SUBMITTED]))
        .values(block_number=block_number, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    return int(getattr(res, "rowcount", 0) or 0)
