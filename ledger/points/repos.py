"""The points read model: one row per point event, as the indexer found it on chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ..store.models import Merchant, PointEvent
from ..store.tables import insert_new


def insert_point_events(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert events not seen before (keyed by tx hash and log index); give how many.

    Rows are inserted in the order given, which the indexer keeps to chain order: ids then
    follow chain order. An event already stored is skipped by the database (ON CONFLICT DO
    NOTHING), so a re-run or a concurrent indexer cannot fail the transaction."""
    # (a row without an order reference gets one of None; the projection's rows all have
    # it, and are not copied: a copy of every row was ~1.6% of an indexer round)
    return insert_new(session, PointEvent, [r if "order_ref" in r else {"order_ref": None, **r}
                                            for r in rows], ("tx_hash", "log_index"))


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
